// npm run bench:serve — `sourcemesh serve` against nginx (Debian, sendfile on, one worker) serving the
// same directory on loopback, in the same run, both driven by wrk: 4 KiB, 1 MiB and 64 MiB files and
// random 1 MiB ranges of a 1 GiB file, at 1, 16 and 128 connections. Prints requests/s, throughput,
// p99 latency, and the ratio ours/nginx beside the goals (0.9x on large files and ranges, 0.5x on
// small files). Each cell is the median of the runs, the two servers alternating who goes first,
// because loopback figures on a shared 2-vCPU machine move by ±20% from one second to the next.
//
// Only correct answers count: before the runs, each server's answer to each case is checked byte for
// byte with curl (status, Content-Range, body); in the runs, responses with a failed status, socket
// errors, or bytes that are not whole bodies of the size asked for void the run (bench/lib/wrk.ts),
// and throughput is body bytes of successful responses. Our server runs as users run it: the CLI built
// from the current sources with bin/sourcemesh.js's Node flags (bench/lib/cli.ts; --cli src|dist too).
//
//   node bench/serve.ts [--cli build|src|dist] [--seconds N] [--reps N] [--connections 1,16,128]
//                       [--cases 4k,1m,64m,ranges] [--workers 1,2] [--dir DIR] [--json FILE]
// --workers: for each N, nginx with `worker_processes N` against `serve --workers N` (issue 21: the
// same number of processes on both sides).
// The environment variables BENCH_DIR, BENCH_SECONDS, BENCH_REPS, BENCH_CONNECTIONS and BENCH_JSON set
// the same defaults. Per run 64 MiB files get twice --seconds.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { open, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { nodeKeyFiles, openNodeKey } from '../src/mirror/inventory.ts';
import { benchArgs } from './lib/args.ts';
import { cleanup, onCleanup } from './lib/cleanup.ts';
import { prepareCli, type CliMode } from './lib/cli.ts';
import { ensureFile, type BenchFile } from './lib/files.ts';
import { median } from './lib/measure.ts';
import { findNginx, startNginx, stopChild, type StaticServer } from './lib/nginx.ts';
import { countWrkRun, runWrk, wrkScript, type WrkRun } from './lib/wrk.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const RANGE = MiB;

const { values: flags, usage, count } = benchArgs('serve', {
  cli: { type: 'string', default: 'build' },
  seconds: { type: 'string', default: process.env.BENCH_SECONDS ?? '3' },
  reps: { type: 'string', default: process.env.BENCH_REPS ?? '3' },
  connections: { type: 'string', default: process.env.BENCH_CONNECTIONS ?? '1,16,128' },
  cases: { type: 'string', default: '4k,1m,64m,ranges' },
  workers: { type: 'string', default: process.env.BENCH_WORKERS ?? '1' },
  dir: { type: 'string', default: process.env.BENCH_DIR ?? path.join(os.tmpdir(), 'sourcemesh-bench-serve') },
  json: { type: 'string', default: process.env.BENCH_JSON },
});
if (!['build', 'src', 'dist'].includes(flags.cli)) usage(`--cli ${flags.cli}: expected build, src or dist`);
const work = flags.dir;
const seconds = count('seconds', flags.seconds);
const reps = count('reps', flags.reps);
const connections = flags.connections.split(',').map((c) => count('connections', c));
const workerCounts = flags.workers.split(',').map((w) => count('workers', w));

interface Case {
  id: string;
  label: string;
  file: string;
  size: number;
  /** Random 1 MiB ranges instead of whole-file GETs. */
  ranges?: boolean;
  goal: number | undefined;
  seconds: number;
}

const allCases: Case[] = [
  { id: '4k', label: '4 KiB file', file: 'small-4k.bin', size: 4 * KiB, goal: 0.5, seconds },
  { id: '1m', label: '1 MiB file', file: 'medium-1m.bin', size: MiB, goal: undefined, seconds },
  { id: '64m', label: '64 MiB file', file: 'large-64m.bin', size: 64 * MiB, goal: 0.9, seconds: seconds * 2 },
  { id: 'ranges', label: '1 MiB ranges of 1 GiB', file: 'huge-1g.bin', size: 1024 * MiB, ranges: true, goal: 0.9, seconds },
];
const wanted = flags.cases.split(',');
for (const w of wanted) if (!allCases.some((c) => c.id === w)) usage(`--cases ${flags.cases}: expected some of ${allCases.map((c) => c.id).join(',')}`);
const cases = allCases.filter((c) => wanted.includes(c.id));

/** Body bytes of one good response. */
const bodyOf = (c: Case) => (c.ranges ? RANGE : c.size);

function wrkVersion(): string | undefined {
  const r = spawnSync('wrk', ['-v'], { encoding: 'utf8' });
  return r.error ? undefined : /wrk (\S+)/.exec(r.stdout + r.stderr)?.[1];
}

/** Random ranges when asked (Lua's math.random, seeded by wrk per thread). */
function script(c: Case): string {
  return wrkScript(c.ranges ? `
local size, len = ${c.size}, ${RANGE}
request = function()
  local first = math.random(0, size - len)
  return wrk.format("GET", wrk.path, { ["Range"] = "bytes=" .. first .. "-" .. (first + len - 1) })
end
` : '');
}

function wrkRun(url: string, c: Case, conns: number): Promise<WrkRun> {
  return runWrk(`${url}/${c.file}`, path.join(work, `${c.id}.lua`), script(c), { connections: conns, threads: conns >= 16 ? 2 : 1, seconds: c.seconds });
}

/**
 * Ask `server` for the case once with curl and compare with the file on disk: status, Content-Length,
 * Content-Range and every byte (for ranges, one in the middle and the last one of the file).
 */
async function checkAnswers(server: StaticServer, c: Case, f: BenchFile): Promise<void> {
  const probes: ({ first: number; last: number } | undefined)[] = c.ranges ? [{ first: 123_456_789, last: 123_456_789 + RANGE - 1 }, { first: c.size - RANGE, last: c.size - 1 }] : [undefined];
  for (const probe of probes) {
    const out = path.join(work, 'probe.out');
    const args = ['-sS', '-o', out, '-D', '-', ...(probe ? ['-r', `${probe.first}-${probe.last}`] : []), `${server.url}/${c.file}`];
    const r = spawnSync('curl', args, { encoding: 'latin1', timeout: 120_000 });
    const head = r.stdout ?? '';
    const status = Number(/^HTTP\/[\d.]+ (\d{3})/.exec(head)?.[1]);
    const fail = (why: string) => new Error(`${server.kind} answers ${c.label}${probe ? ` (bytes ${probe.first}-${probe.last})` : ''} wrongly: ${why}`);
    if (r.status !== 0) throw fail(`curl exited ${r.status}: ${r.stderr}`);
    if (status !== (probe ? 206 : 200)) throw fail(`status ${status}`);
    const length = probe ? probe.last - probe.first + 1 : c.size;
    if (Number(/^content-length:\s*(\d+)/im.exec(head)?.[1]) !== length) throw fail('Content-Length');
    if (probe && !new RegExp(`^content-range:\\s*bytes ${probe.first}-${probe.last}/${c.size}\\s*$`, 'im').test(head)) throw fail('Content-Range');
    const got = createHash('sha256').update(await readFile(out)).digest('hex');
    let want = f.sha256;
    if (probe) {
      const fh = await open(f.path);
      const slice = Buffer.alloc(length);
      await fh.read(slice, 0, length, probe.first);
      await fh.close();
      want = createHash('sha256').update(slice).digest('hex');
    }
    await rm(out, { force: true });
    if (got !== want) throw fail('the body is not the file\'s bytes');
  }
}

/** Our server as an operator starts it, without the per-client limits (wrk is one client). */
async function startOurs(served: string, argv: string[], describe: string, workers: number): Promise<StaticServer> {
  const keyFile = nodeKeyFiles(path.join(work, 'node')).key;
  await openNodeKey(nodeKeyFiles(path.join(work, 'node')), 'bench.sourcemesh.invalid');
  const child = spawn(argv[0]!, [...argv.slice(1), 'serve', '--root', served, '--listen', '127.0.0.1:0', '--key', keyFile,
    '--rate', '0', '--max-connections-per-client', '0', '--no-access-log', '--max-connections', '4096', '--workers', String(workers)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const unregister = onCleanup(() => stopChild(child), () => child.kill('SIGTERM'));
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const deadline = Date.now() + 120_000; // the first start hashes the files (1.1 GiB)
  while (!out.includes('\n')) {
    if (child.exitCode !== null) throw new Error(`sourcemesh serve exited: ${err}`);
    if (Date.now() > deadline) throw new Error(`sourcemesh serve did not start: ${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const url = JSON.parse(out.slice(0, out.indexOf('\n'))).url as string;
  return { url, kind: `sourcemesh serve${workers > 1 ? ` --workers ${workers}` : ''} (node ${process.version}, ${describe})`, stop: async () => { await stopChild(child); unregister(); } };
}

interface Cell {
  runs: WrkRun[];
  /** Body MiB/s of good responses, per run. */
  mibps: number[];
  problems: string[];
}

async function main(): Promise<void> {
  const wrk = wrkVersion();
  if (!wrk) throw new Error('wrk is not installed (Debian: apt-get install wrk)');
  const served = path.join(work, 'served');
  const files = new Map<string, BenchFile>();
  for (const c of cases) files.set(c.id, await ensureFile(served, { name: c.file, size: c.size, seed: c.size }, (l) => console.log(l)));
  const cli = await prepareCli(root, work, flags.cli as CliMode);
  for (const w of cli.warnings) console.log(`warning: ${w}`);
  const rows: string[][] = [['case', 'workers', 'conns', 'nginx req/s', 'nginx MiB/s', 'nginx p99', 'ours req/s', 'ours MiB/s', 'ours p99', 'ours/nginx, median (pairs min-max)', 'goal']];
  const results: unknown[] = [];
  for (const workers of workerCounts) {
    const nginx = await startNginx(served, path.join(work, 'nginx'), workers);
    const ours = await startOurs(served, cli.argv, cli.describe, workers);
    console.log(`bench:serve on ${os.cpus().length} CPUs (${os.cpus()[0]?.model}), ${nginx.kind} vs ${ours.kind}, wrk ${wrk}; ${reps} runs of ${seconds} s per cell (64 MiB: ${seconds * 2} s), median; only successful responses of the right size count`);
    for (const c of cases) for (const s of [nginx, ours]) await checkAnswers(s, c, files.get(c.id)!);
    console.log('both servers answer every case with the right status, headers and bytes (checked with curl)');
    // Warm up both (page cache, JIT, the open-file and small-file caches).
    for (const c of cases) for (const s of [nginx, ours]) await wrkRun(s.url, { ...c, seconds: 1 }, 4);

    for (const c of cases) {
      for (const conns of connections) {
        const cells = { nginx: { runs: [], mibps: [], problems: [] } as Cell, ours: { runs: [], mibps: [], problems: [] } as Cell };
        for (let i = 0; i < reps; i++) {
          // Alternate who goes first, so drift in the machine's speed does not favour one side.
          const order = i % 2 === 0 ? (['nginx', 'ours'] as const) : (['ours', 'nginx'] as const);
          for (const who of order) {
            const run = await wrkRun((who === 'nginx' ? nginx : ours).url, c, conns);
            const counted = countWrkRun(run, bodyOf(c), conns);
            const cell = cells[who];
            cell.runs.push(run);
            cell.mibps.push(counted.goodBytes / run.seconds / MiB);
            for (const p of counted.problems) cell.problems.push(`run ${i + 1}: ${p}`);
          }
        }
        const n = median(cells.nginx.mibps);
        const o = median(cells.ours.mibps);
        const valid = cells.nginx.problems.length === 0 && cells.ours.problems.length === 0;
        const ratio = valid ? o / n : NaN;
        // Each run of ours against the nginx run of the same pair: the spread a reader should expect.
        const pairRatios = cells.ours.mibps.map((x, i) => x / cells.nginx.mibps[i]!);
        const spread = `${Math.min(...pairRatios).toFixed(2)}-${Math.max(...pairRatios).toFixed(2)}`;
        const verdict = !valid ? 'INVALID' : c.goal === undefined ? '(none)' : `${c.goal}x ${ratio >= c.goal ? 'met' : 'NOT met'}`;
        const p99 = (cell: Cell) => `${median(cell.runs.map((r) => r.p99ms)).toFixed(2)} ms`;
        const row = [c.label, String(workers), String(conns), (n * MiB / bodyOf(c)).toFixed(0), n.toFixed(0), p99(cells.nginx),
          (o * MiB / bodyOf(c)).toFixed(0), o.toFixed(0), p99(cells.ours), valid ? `${ratio.toFixed(2)}x (${spread})` : '-', verdict];
        rows.push(row);
        console.log(row.join('  '));
        for (const who of ['nginx', 'ours'] as const) for (const p of cells[who].problems) console.log(`  ${who}: ${p}`);
        results.push({ case: c.label, workers, connections: conns, nginx: cells.nginx, ours: cells.ours, nginxMiBps: n, oursMiBps: o, ratio: valid ? ratio : null, pairRatios, goal: c.goal });
      }
    }
    await ours.stop();
    await nginx.stop();
  }
  console.log('');
  console.log(markdown(rows));
  if (flags.json) await writeFile(flags.json, JSON.stringify({ date: new Date().toISOString(), cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version, cli: cli.describe, nginx: findNginx()?.version, wrk, results }, null, 2));
}

function markdown(rows: string[][]): string {
  const line = (r: string[]) => `| ${r.join(' | ')} |`;
  return [line(rows[0]!), line(rows[0]!.map(() => '---')), ...rows.slice(1).map((r) => line(r.slice(0, rows[0]!.length)))].join('\n');
}

try {
  await main();
} finally {
  await cleanup();
}
