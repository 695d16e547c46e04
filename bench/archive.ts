// Benchmark `npm run bench:archive`: the deterministic archiver against git and GNU gzip, in one run, on
// one repository.
//
//   node bench/archive.ts [--files N] [--mb MB] [--runs N] [--level N] [--dir DIR] [--cli build|src|dist]
//
// 1. Builds (once: cached in DIR, default $TMPDIR/sourcemesh-bench-archive) a repository of about 20,000
//    files and 200 MB (bench/archive-tar.ts's buildRepo: packed with deltas, plus loose objects).
// 2. tar: `git archive --format=tar --prefix=P/ HEAD` against `sourcemesh archive REPO HEAD --prefix P/
//    --format tar -o -` (the CLI as users run it), each stdout hashed by this process.
// 3. deflate: GNU `gzip -n -LEVEL` against our gzip-n stream on that same tar (a file), both hashed.
// 4. end to end: `git archive | gzip -n` (two processes) against `sourcemesh archive --format tar.gz`.
// Prints median wall time, CPU time, the time ratios, peak RSS, and whether the bytes are identical
// (exit 1 if not).

import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, existsSync, mkdirSync, openSync, rmSync, statSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipChunks } from '../src/archive/compress.ts';
import { benchArgs } from './lib/args.ts';
import { buildRepo, gitEnv, type Layout } from './archive-tar.ts';
import { cleanup } from './lib/cleanup.ts';
import { prepareCli, type CliMode } from './lib/cli.ts';
import { describeMachine, formatMachine } from './lib/machine.ts';
import { hasGnuTime, median, rssMethod } from './lib/measure.ts';

const SELF = fileURLToPath(import.meta.url);
const ROOT = path.resolve(path.dirname(SELF), '..');
const MB = 1e6;
const MiB = 2 ** 20;

/** Child mode: our gzip-n of FILE to stdout (the parent hashes it, as it hashes gzip's). */
async function childDeflate(file: string, level: number): Promise<void> {
  // Read ahead 1 MiB so file reads overlap compression (gzip reads in 32-64 KiB pieces).
  await pipeline(Readable.from(gzipChunks(createReadStream(file, { highWaterMark: 1 << 20 }), 'gzip-n', level)), process.stdout);
}

interface Timed {
  seconds: number;
  cpuSeconds?: number;
  maxRssBytes?: number;
  sha256: string;
}

/**
 * Run a command with its stdout hashed here as it arrives (node:crypto, faster than any command in a
 * pipe, so the consumer never holds either side back); wall time, and CPU time and peak RSS from GNU time.
 */
function timeHashed(cmd: string, args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv; stdin?: string }): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const argv = hasGnuTime() ? ['/usr/bin/time', '-f', 'BENCH %M %U %S', cmd, ...args] : [cmd, ...args];
    const stdin = opts.stdin ? openSync(opts.stdin, 'r') : 'ignore';
    const t0 = process.hrtime.bigint();
    const p = spawn(argv[0]!, argv.slice(1), { cwd: opts.cwd, env: opts.env, stdio: [stdin, 'pipe', 'pipe'] });
    if (typeof stdin === 'number') closeSync(stdin);
    const hash = createHash('sha256');
    let stderr = '';
    p.stdout!.on('data', (d: Buffer) => hash.update(d));
    p.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8192)));
    p.on('error', reject);
    p.on('close', (code) => {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      if (code !== 0) return reject(new Error(`${cmd} exited with ${code}: ${stderr.trim().split('\n').at(-1)}`));
      const m = /BENCH (\d+) ([\d.]+) ([\d.]+)/.exec(stderr);
      resolve({ seconds, sha256: hash.digest('hex'), ...(m ? { maxRssBytes: Number(m[1]) * 1024, cpuSeconds: Number(m[2]) + Number(m[3]) } : {}) });
    });
  });
}

const sh = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

async function main(): Promise<void> {
  const { values } = benchArgs('bench:archive', {
    files: { type: 'string', default: '20000' },
    mb: { type: 'string', default: '200' },
    runs: { type: 'string', default: '3' },
    level: { type: 'string', default: '6' },
    dir: { type: 'string' },
    cli: { type: 'string', default: 'build' },
    'child-deflate': { type: 'string' },
  });
  const level = Number(values.level);
  if (values['child-deflate']) return childDeflate(values['child-deflate'], level);

  const layout: Layout = { files: Number(values.files), bytes: Number(values.mb) * MB };
  const dir = values.dir ?? path.join(os.tmpdir(), `sourcemesh-bench-archive-${layout.files}-${values.mb}`);
  const repo = path.join(dir, 'repo.git');
  if (!existsSync(path.join(dir, 'ready'))) {
    console.log(`building a repository of ${layout.files} files, ${values.mb} MB in ${dir} (cached for later runs) ...`);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const t0 = Date.now();
    await buildRepo(dir, layout);
    console.log(`  built in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  }
  const env = gitEnv(dir);
  const tar = path.join(dir, 'P.tar');
  if (!existsSync(tar)) spawnSync('sh', ['-c', `git archive --format=tar --prefix=P/ HEAD > ${sh(tar)}`], { cwd: repo, env, stdio: 'inherit' });
  const tarBytes = statSync(tar).size;
  const cli = await prepareCli(ROOT, dir, values.cli as CliMode);
  const machine = describeMachine();
  console.log(formatMachine(machine));
  console.log(`sourcemesh: ${cli.describe}`);
  for (const w of cli.warnings) console.log(`warning: ${w}`);
  console.log(`peak RSS: ${rssMethod()}; ${values.runs} runs each, medians`);

  interface Row { name: string; peer: string; peerRuns: Timed[]; ourRuns: Timed[]; goal?: number; bytes: number }
  const rows: Row[] = [];
  const runEnv = { ...process.env, ...env };
  const pair = async (name: string, peer: string, peerCmd: [string, string[], string?], ourCmd: [string, string[]], bytes: number, goal?: number) => {
    const row: Row = { name, peer, peerRuns: [], ourRuns: [], goal, bytes };
    // Alternate which side goes first, so neither always runs on a warmer page cache or a cooler CPU.
    for (let i = 0; i < Number(values.runs); i++) {
      const peerRun = () => timeHashed(peerCmd[0], peerCmd[1], { cwd: repo, env: runEnv, stdin: peerCmd[2] });
      const ourRun = () => timeHashed(ourCmd[0], ourCmd[1], { cwd: repo, env: runEnv });
      if (i % 2 === 0) {
        row.peerRuns.push(await peerRun());
        row.ourRuns.push(await ourRun());
      } else {
        row.ourRuns.push(await ourRun());
        row.peerRuns.push(await peerRun());
      }
    }
    rows.push(row);
  };
  const ourArchive = (...args: string[]): [string, string[]] => [cli.argv[0]!, [...cli.argv.slice(1), 'archive', repo, 'HEAD', '--prefix', 'P/', ...args, '-o', '-']];
  await pair('tar', 'git archive', ['git', ['archive', '--format=tar', '--prefix=P/', 'HEAD']], ourArchive('--format', 'tar'), tarBytes, 1.5);
  await pair('deflate', `gzip -n -${level}`, ['gzip', ['-n', `-${level}`], tar], [process.execPath, [SELF, '--child-deflate', tar, '--level', String(level)]], tarBytes, 2);
  await pair('tar.gz', `git archive | gzip -n -${level}`, ['sh', ['-c', `git archive --format=tar --prefix=P/ HEAD | gzip -n -${level}`]], ourArchive('--format', 'tar.gz', '--level', String(level)), tarBytes);

  console.log(`\nrepository: ${layout.files} files, ~${values.mb} MB; tar ${(tarBytes / MB).toFixed(1)} MB`);
  console.log(`${'step'.padEnd(8)} ${'peer'.padEnd(26)} ${'peer s'.padStart(7)} ${'ours s'.padStart(7)} ${'ratio'.padStart(6)} ${'cpu ratio'.padStart(9)}  ${'MB/s peer/ours'.padEnd(15)} ${'peak RSS ours'.padStart(13)}  identical`);
  let allIdentical = true;
  for (const r of rows) {
    const p = median(r.peerRuns.map((m) => m.seconds));
    const o = median(r.ourRuns.map((m) => m.seconds));
    const ratios = r.ourRuns.map((m, i) => m.seconds / r.peerRuns[i]!.seconds);
    const pc = median(r.peerRuns.map((m) => m.cpuSeconds ?? NaN));
    const oc = median(r.ourRuns.map((m) => m.cpuSeconds ?? NaN));
    const hashes = new Set([...r.peerRuns, ...r.ourRuns].map((m) => m.sha256));
    const identical = hashes.size === 1;
    allIdentical &&= identical;
    const rss = Math.max(...r.ourRuns.map((m) => m.maxRssBytes ?? 0));
    const ratio = o / p;
    const goal = r.goal ? (ratio <= r.goal ? ` (goal <= ${r.goal}x: met)` : ` (goal <= ${r.goal}x: MISSED)`) : '';
    console.log(`${r.name.padEnd(8)} ${r.peer.padEnd(26)} ${p.toFixed(2).padStart(7)} ${o.toFixed(2).padStart(7)} ${ratio.toFixed(2).padStart(5)}x ${(oc / pc).toFixed(2).padStart(8)}x  ${`${(r.bytes / MB / p).toFixed(0)}/${(r.bytes / MB / o).toFixed(0)}`.padEnd(15)} ${`${(rss / MiB).toFixed(0)} MiB`.padStart(13)}  ${identical ? 'yes' : 'NO'}${goal}; per-pair ratios ${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)}x`);
  }
  // Start-up is inside every figure above, on both sides (each run is a whole process); shown here for
  // what it weighs: our CLI's (Node, commander and the archive command's modules) against git's.
  const startup = async (cmd: string[]): Promise<number> => {
    const xs: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = process.hrtime.bigint();
      spawnSync(cmd[0]!, cmd.slice(1), { stdio: 'ignore' });
      xs.push(Number(process.hrtime.bigint() - t0) / 1e9);
    }
    return median(xs);
  };
  console.log(`\nstart-up, counted in both sides' times: sourcemesh archive --help ${(await startup([...cli.argv, 'archive', '--help'])).toFixed(3)} s, git archive --list ${(await startup(['git', 'archive', '--list'])).toFixed(3)} s`);
  if (!allIdentical) {
    console.log('the outputs differ: a conformance bug');
    process.exitCode = 1;
  }
}

try {
  await main();
} finally {
  await cleanup();
}
