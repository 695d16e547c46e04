// Benchmark `npm run bench:archive`: the deterministic archiver against git and GNU gzip, in one run, on
// one repository.
//
//   node bench/archive.ts [--files N] [--mb MB] [--runs N] [--level N] [--dir DIR] [--cli build|src|dist]
//
// 1. Builds (once: cached in DIR, default $TMPDIR/sourcemesh-bench-archive) a repository of about 20,000
//    files and 200 MB (bench/archive-tar.ts's buildRepo: packed with deltas, plus loose objects).
// 2. tar: `git archive --format=tar --prefix=P/ HEAD` against `sourcemesh archive REPO HEAD --prefix P/
//    --format tar -o -` (the CLI as users run it), each stdout hashed by this process.
// 3. deflate: `gzip -n -LEVEL -c TAR` against `sourcemesh compress TAR --level LEVEL -o -` on that same tar
//    (a file), both hashed.
// 4. end to end: `git archive | gzip -n` (two processes) against `sourcemesh archive --format tar.gz`.
// Prints median wall time, CPU time, the time ratios, peak RSS, and whether the bytes are identical
// (exit 1 if not).
// 5. (issue 14) a history-rich repository (bench/archive-tar.ts's buildHistoryRepo, cached like the first;
//    --history-commits N --history-files N): its newest commit and one from the first tenth of its history,
//    ours against `git archive` (tar) and `git archive | gzip -n` (tar.gz), with both sides' CPU and peak RSS.
//    `--only flat` or `--only history` runs one of the two; `--repo PATH [--ref REF]` runs step 5's
//    comparison on any local repository instead (see compareRefs for getting a gnulib clone). For short runs,
//    --format tar|tar.gz keeps one format of step 5 and --which newest|early one of the two commits.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchArgs } from './lib/args.ts';
import { buildHistoryRepo, buildRepo, gitEnv, HISTORY_EARLY_REF, type HistoryLayout, type Layout } from './archive-tar.ts';
import { cleanup } from './lib/cleanup.ts';
import { prepareCli, type Cli, type CliMode } from './lib/cli.ts';
import { describeMachine, formatMachine } from './lib/machine.ts';
import { median, rssMethod, timeHashed, type Timed } from './lib/measure.ts';

const SELF = fileURLToPath(import.meta.url);
const ROOT = path.resolve(path.dirname(SELF), '..');
const MB = 1e6;
const MiB = 2 ** 20;

const sh = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

// A gnulib clone for --repo (the reference case of a long history; about 100 MB, one pack after a clone):
//   git clone --bare https://git.savannah.gnu.org/git/gnulib.git /tmp/gnulib.git
//   node bench/archive.ts --repo /tmp/gnulib.git --ref 8e128ebf42e16c8631f971a68f188c30962818be
// (an old commit, deep in the delta chains; --ref HEAD for the newest tree). The repository is only read.

/**
 * Ours against git on one repository, for each ref: `sourcemesh archive --format tar` against `git archive`
 * and `--format tar.gz` against `git archive | gzip -n -LEVEL`, alternating which side goes first; every run a
 * whole process (start-up counted on both sides). Prints wall (median and the worst pair's ratio), CPU
 * (user+sys) and peak RSS of both sides (for a pipe, GNU time reports the shell with its children: the sum
 * of their CPU and the largest RSS). Returns false when any output differs from git's.
 */
async function compareRefs(o: { title: string; repo: string; refs: [string, string][]; cli: string[]; runs: number; level: number; env: NodeJS.ProcessEnv; format?: string }): Promise<boolean> {
  interface Pair { label: string; git: Timed[]; ours: Timed[] }
  const pairs: Pair[] = [];
  for (const [label, ref] of o.refs) {
    const cases: [string, [string, string[]], string[]][] = [
      ['tar', ['git', ['archive', '--format=tar', '--prefix=P/', ref]], ['--format', 'tar']],
      ['tar.gz', ['sh', ['-c', `git archive --format=tar --prefix=P/ ${sh(ref)} | gzip -n -${o.level}`]], ['--format', 'tar.gz', '--level', String(o.level)]],
    ];
    for (const [format, peer, ourArgs] of cases) {
      if (o.format !== undefined && o.format !== format) continue;
      const p: Pair = { label: `${label} ${format}`, git: [], ours: [] };
      const ourCmd = [...o.cli, 'archive', o.repo, ref, '--prefix', 'P/', ...ourArgs, '-o', '-'];
      for (let i = 0; i < o.runs; i++) {
        const gitRun = async () => p.git.push(await timeHashed(peer[0], peer[1], { cwd: o.repo, env: o.env }));
        const ourRun = async () => p.ours.push(await timeHashed(ourCmd[0]!, ourCmd.slice(1), { cwd: o.repo, env: o.env }));
        if (i % 2 === 0) await gitRun().then(ourRun);
        else await ourRun().then(gitRun);
      }
      pairs.push(p);
    }
  }
  console.log(`\n${o.title}`);
  console.log(`${'ref, format'.padEnd(22)} ${'git s'.padStart(6)} ${'ours s'.padStart(7)} ${'ratio'.padStart(6)} ${'worst'.padStart(6)} ${'cpu git/ours s'.padStart(15)} ${'RSS git/ours MiB'.padStart(17)}  identical`);
  let identical = true;
  for (const p of pairs) {
    const g = median(p.git.map((m) => m.seconds));
    const us = median(p.ours.map((m) => m.seconds));
    const worst = Math.max(...p.ours.map((m, i) => m.seconds / p.git[i]!.seconds));
    const cpu = (ms: Timed[]) => median(ms.map((m) => m.cpuSeconds ?? NaN)).toFixed(2);
    const rss = (ms: Timed[]) => (Math.max(...ms.map((m) => m.maxRssBytes ?? 0)) / MiB).toFixed(0);
    const same = new Set([...p.git, ...p.ours].map((m) => m.sha256)).size === 1;
    identical &&= same;
    console.log(`${p.label.padEnd(22)} ${g.toFixed(2).padStart(6)} ${us.toFixed(2).padStart(7)} ${(us / g).toFixed(2).padStart(5)}x ${worst.toFixed(2).padStart(5)}x ${`${cpu(p.git)}/${cpu(p.ours)}`.padStart(15)} ${`${rss(p.git)}/${rss(p.ours)}`.padStart(17)}  ${same ? 'yes' : 'NO'}`);
  }
  console.log(`goals (issue 14): ratio <= 1.5x for tar and tar.gz; our peak RSS <= git's + 96 MiB`);
  return identical;
}

/** The history-rich repository (bench/archive-tar.ts's buildHistoryRepo), built once and cached in `dir`. */
async function historyRepo(dir: string, layout: HistoryLayout): Promise<string> {
  if (!existsSync(path.join(dir, 'ready'))) {
    console.log(`building a history-rich repository of ${layout.commits} commits over ${layout.files} files in ${dir} (cached for later runs) ...`);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const t0 = Date.now();
    await buildHistoryRepo(dir, layout);
    console.log(`  built in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  }
  return path.join(dir, 'repo.git');
}

/**
 * --repo PATH [--ref REF]: the comparison on a repository the user names; --only history, or after the
 * flat repository's rows: on the history-rich one, for its newest commit and one from its first tenth.
 */
async function historyComparisons(values: { repo?: string; ref: string; only?: string; dir?: string; runs: string; cli: string; format?: string; which?: string; 'history-files': string; 'history-commits': string }, level: number, given?: Cli): Promise<boolean> {
  const layout: HistoryLayout = { files: Number(values['history-files']), commits: Number(values['history-commits']) };
  const own = path.join(os.tmpdir(), values.repo ? 'sourcemesh-bench-archive-repo' : `sourcemesh-bench-archive-history-${layout.commits}-${layout.files}`);
  const dir = given ? own : (values.dir ?? own);
  const repo = values.repo ? path.resolve(values.repo) : await historyRepo(dir, layout);
  let cli = given;
  if (!cli) {
    mkdirSync(dir, { recursive: true });
    cli = await prepareCli(ROOT, dir, values.cli as CliMode);
    console.log(formatMachine(describeMachine()));
    console.log(`sourcemesh: ${cli.describe}`);
    for (const w of cli.warnings) console.log(`warning: ${w}`);
    console.log(`peak RSS: ${rssMethod()}; ${values.runs} runs each, medians`);
  }
  const all: [string, string][] = values.repo ? [[values.ref, values.ref]] : [['newest', 'HEAD'], ['early (1/10)', HISTORY_EARLY_REF]];
  const refs = all.filter(([label]) => values.which === undefined || label.startsWith(values.which));
  const title = values.repo ? `repository ${repo}` : `history-rich repository: ${layout.commits} commits over ${layout.files} files, git gc --aggressive (${repo})`;
  // The user's own git configuration stays out of both sides; HOME is the bench directory.
  return compareRefs({ title, repo, refs, cli: cli.argv, runs: Number(values.runs), level, format: values.format, env: { ...process.env, ...gitEnv(dir) } });
}

async function main(): Promise<void> {
  const { values } = benchArgs('bench:archive', {
    files: { type: 'string', default: '20000' },
    mb: { type: 'string', default: '200' },
    runs: { type: 'string', default: '3' },
    level: { type: 'string', default: '6' },
    dir: { type: 'string' },
    cli: { type: 'string', default: 'build' },
    // Issue 14: a history-rich repository (--only history skips the flat one), or --repo PATH --ref REF.
    only: { type: 'string' },
    repo: { type: 'string' },
    ref: { type: 'string', default: 'HEAD' },
    'history-files': { type: 'string', default: '5000' },
    'history-commits': { type: 'string', default: '3000' },
    // Case filters for short exploratory runs: one format (tar or tar.gz), one history-rich ref (newest or early).
    format: { type: 'string' },
    which: { type: 'string' },
  });
  const level = Number(values.level);
  if (values.only !== undefined && values.only !== 'flat' && values.only !== 'history') throw new Error(`--only ${values.only}: expected flat or history`);
  if (values.format !== undefined && values.format !== 'tar' && values.format !== 'tar.gz') throw new Error(`--format ${values.format}: expected tar or tar.gz`);
  if (values.which !== undefined && values.which !== 'newest' && values.which !== 'early') throw new Error(`--which ${values.which}: expected newest or early`);
  if (values.repo || values.only === 'history') {
    if (!(await historyComparisons(values, level))) process.exitCode = 1;
    return;
  }

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
  // Both read the tar by name, as users run them; each run a whole process (start-up on both sides).
  await pair('deflate', `gzip -n -${level}`, ['gzip', ['-n', `-${level}`, '-c', tar]], [cli.argv[0]!, [...cli.argv.slice(1), 'compress', tar, '--level', String(level), '-o', '-']], tarBytes, 2);
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
  console.log(`\nstart-up, counted in both sides' times: sourcemesh archive --help ${(await startup([...cli.argv, 'archive', '--help'])).toFixed(3)} s, git archive --list ${(await startup(['git', 'archive', '--list'])).toFixed(3)} s; sourcemesh compress --help ${(await startup([...cli.argv, 'compress', '--help'])).toFixed(3)} s, gzip --version ${(await startup(['gzip', '--version'])).toFixed(3)} s`);
  if (values.only !== 'flat') allIdentical = (await historyComparisons(values, level, cli)) && allIdentical;
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
