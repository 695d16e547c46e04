// npm run bench:fetch: `sourcemesh fetch` against curl (sequential, and --parallel --parallel-max 4) in
// the same run, on the same files, from one static server on 127.0.0.1 (nginx from Debian, sendfile on;
// a node:http server when nginx is absent): 20 files of 50 MiB, then one of 1 GiB. Prints the median of
// 3 runs of each (wall time, MiB/s, CPU time), the ratio ours / curl, and peak RSS. Goals (issue 21): at
// least 0.8x curl's throughput, peak RSS under 100 MB whatever the file size, CPU per GiB at most 1.5x
// curl's plus SHA-256's. Reference rows give curl the same extra work as sourcemesh: SHA-256 of every
// file, then sync.
//
//   node bench/fetch.ts [--reps N] [--files N] [--file-mib N] [--big-mib N] [--only small|big]
//                       [--cli build|src|dist] [--dir DIR] [--variant-flags "NODE FLAGS"]
//
// Every sourcemesh run gets a fresh store and output directory; its exit status and JSON report are
// checked and every output file is hashed against the manifest. curl's outputs are checked by size
// (and hashed on the first run). Files live under /tmp/sourcemesh-bench-fetch (or --dir) and are
// reused while their hashes match. Exits 1 when a run fails or an output does not verify.
import { spawnSync } from 'node:child_process';
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchArgs } from './lib/args.ts';
import { cleanup } from './lib/cleanup.ts';
import { prepareCli, type CliMode } from './lib/cli.ts';
import { ensureFile, ensureOwnDir, sha256File, type BenchFile, type FileSpec } from './lib/files.ts';
import { cpuPressureMicros, describeMachine, diskWriteMiBs, formatMachine, hasCommand } from './lib/machine.ts';
import { measure, median, rssMethod, type Measured } from './lib/measure.ts';
import { startStaticServer } from './lib/static-server.ts';

const MiB = 1 << 20;
// Issue 21's goals (issue 2 asked for 0.9x and 150 MB): at least 0.8x curl's throughput, peak RSS under
// 100 MB, and CPU per GiB at most 1.5x what curl and SHA-256 use (the "curl, then openssl sha256" row).
const GOAL_RATIO = 0.8;
const GOAL_RSS_BYTES = 100e6; // "100 MB"
const GOAL_CPU_FACTOR = 1.5;

const options = {
  reps: { type: 'string', default: process.env.BENCH_REPS ?? '3' },
  files: { type: 'string', default: process.env.BENCH_FILES ?? '20' },
  'file-mib': { type: 'string', default: process.env.BENCH_FILE_MIB ?? '50' },
  'big-mib': { type: 'string', default: process.env.BENCH_BIG_MIB ?? '1024' },
  only: { type: 'string' },
  cli: { type: 'string', default: process.env.BENCH_CLI ?? 'build' },
  dir: { type: 'string', default: process.env.BENCH_DIR ?? path.join(os.tmpdir(), 'sourcemesh-bench-fetch') },
  'variant-flags': { type: 'string', default: process.env.BENCH_VARIANT_FLAGS ?? '' },
} as const;
const { values: flags, usage, count } = benchArgs('fetch', options);
const reps = count('reps', flags.reps);
const smallCount = count('files', flags.files);
const smallSize = count('file-mib', flags['file-mib']) * MiB;
const bigSize = count('big-mib', flags['big-mib']) * MiB;
if (!['build', 'src', 'dist'].includes(flags.cli)) usage(`--cli ${flags.cli}: expected build, src or dist`);
if (flags.only && !['small', 'big'].includes(flags.only)) usage(`--only ${flags.only}: expected small or big`);

const variantFlags = flags['variant-flags'].split(/\s+/).filter(Boolean);
if (variantFlags.some((f) => !f.startsWith('--'))) usage(`--variant-flags ${flags['variant-flags']}: expected node options such as --max-semi-space-size=1`);
const hasOpenssl = hasCommand('openssl', ['version']);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const work = path.resolve(flags.dir);
const served = path.join(work, 'served');
const out = path.join(work, 'out');
const storeDir = path.join(work, 'store');

interface BenchSet {
  key: 'small' | 'big';
  label: string;
  specs: FileSpec[];
}
const sets: BenchSet[] = [
  { key: 'small' as const, label: `${smallCount} x ${smallSize / MiB} MiB`, specs: Array.from({ length: smallCount }, (_, i) => ({ name: `file-${String(i).padStart(2, '0')}.bin`, size: smallSize, seed: i + 1 })) },
  { key: 'big' as const, label: bigSize % 1024 ** 3 === 0 ? `1 x ${bigSize / 1024 ** 3} GiB` : `1 x ${bigSize / MiB} MiB`, specs: [{ name: 'big.bin', size: bigSize, seed: 1000 }] },
].filter((s) => !flags.only || s.key === flags.only);

// Children talk to 127.0.0.1 only: no proxy from the environment, no ~/.curlrc (-q).
const childEnv: NodeJS.ProcessEnv = { ...process.env, CI: '1' };
for (const k of Object.keys(childEnv)) if (/^(https?|all|no|ftp)_proxy$/i.test(k)) delete childEnv[k];
const curlBase = ['-q', '-sS', '--fail', '--noproxy', '*'];

interface Contender {
  name: string;
  ours?: boolean;
  /** Compared with ours, with the throughput goal. */
  peer?: boolean;
  /** sourcemesh under other node flags: its RSS is shown against the goal too. */
  variant?: boolean;
  run: () => Promise<Measured>;
  /** Throws when the run's outputs are not right; `first`: the first repetition. */
  check: (m: Measured, first: boolean) => Promise<void>;
}

interface Row {
  set: string;
  tool: string;
  seconds: number[];
  rss: number[];
  cpu: number[];
  bytes: number;
  ours?: boolean;
  peer?: boolean;
  variant?: boolean;
  /** sourcemesh's own `seconds` from its JSON report (inside the fetch, without process start-up). */
  inner?: number[];
}

function sync(): void {
  spawnSync('sync');
}

async function freshOutput(): Promise<void> {
  await rm(out, { recursive: true, force: true });
  await rm(storeDir, { recursive: true, force: true });
  await mkdir(out, { recursive: true });
  sync(); // start each run from a quiet disk: no write-back left over from the previous one
}

/** OUT holds exactly the expected files, with the right sizes (and sha256 when `hash`). */
async function verifyOutput(files: BenchFile[], hash: boolean, who: string): Promise<void> {
  const names = (await readdir(out)).sort();
  const want = files.map((f) => f.name).sort();
  if (names.join('\n') !== want.join('\n')) throw new Error(`${who}: output directory holds [${names.join(', ')}], expected [${want.join(', ')}]`);
  for (const f of files) {
    const p = path.join(out, f.name);
    const s = await stat(p);
    if (s.size !== f.size) throw new Error(`${who}: ${f.name} has ${s.size} bytes, expected ${f.size}`);
    if (hash && (await sha256File(p)) !== f.sha256) throw new Error(`${who}: ${f.name} does not hash to ${f.sha256}`);
  }
}

interface FetchJson {
  fetched: number;
  failed: number;
  seconds: number;
  files: { name: string; sha256: string; status: string }[];
}

const innerSeconds = new Map<string, number[]>();

/** Exit status checked by the caller; here the JSON report, then every output file hashed. */
function sourcemeshCheck(set: BenchSet, files: BenchFile[], which: string) {
  return async (m: Measured) => {
    let report: FetchJson;
    try {
      report = JSON.parse(m.stdout) as FetchJson;
    } catch {
      throw new Error(`sourcemesh: no JSON report on stdout: ${m.stdout.slice(0, 300)}`);
    }
    const bad = report.files.filter((f, i) => f.status !== 'fetched' || f.sha256 !== files[i]?.sha256);
    if (report.fetched !== files.length || report.failed !== 0 || bad.length) {
      throw new Error(`sourcemesh: report says fetched ${report.fetched}, failed ${report.failed}; not fetched or wrong: ${bad.map((f) => f.name).join(', ')}`);
    }
    const key = `${set.label}\n${which}`;
    innerSeconds.set(key, [...(innerSeconds.get(key) ?? []), report.seconds]);
    await verifyOutput(files, true, 'sourcemesh'); // every run: the files we deliver must be right
  };
}

function contenders(set: BenchSet, files: BenchFile[], manifest: string, cli: string[], url: string): Contender[] {
  const curlTargets = files.flatMap((f) => ['-o', path.join(out, f.name), `${url}/${f.name}`]);
  const curlCheck = (who: string) => async (_m: Measured, first: boolean) => verifyOutput(files, first, who);
  const opensslCheck = (who: string) => async (m: Measured) => {
    await verifyOutput(files, false, who);
    // "SHA2-256(/path/NAME)= HEX" (OpenSSL 3; "SHA256(...)" before)
    const got = new Map([...m.stdout.matchAll(/^SHA2?-?256\((.+)\)= ([0-9a-f]{64})$/gm)].map((x) => [path.basename(x[1]!), x[2]!]));
    for (const f of files) if (got.get(f.name) !== f.sha256) throw new Error(`${who}: openssl says ${f.name} hashes to ${got.get(f.name)}, expected ${f.sha256}`);
  };
  const fetchArgs = ['fetch', manifest, '-o', out, '--store', storeDir, '--policy', 'upstream-only', '--jobs', '4', '--json'];
  return [
    { name: 'sourcemesh fetch --jobs 4', ours: true, run: () => measure(cli[0]!, [...cli.slice(1), ...fetchArgs], { env: childEnv }), check: sourcemeshCheck(set, files, 'ours') },
    { name: 'curl (sequential)', peer: true, run: () => measure('curl', [...curlBase, ...curlTargets], { env: childEnv }), check: curlCheck('curl sequential') },
    { name: 'curl --parallel --parallel-max 4', peer: true, run: () => measure('curl', [...curlBase, '--parallel', '--parallel-max', '4', ...curlTargets], { env: childEnv }), check: curlCheck('curl --parallel') },
    // References, not goals: what sourcemesh does beyond curl. It hashes every byte (curl users run
    // sha256 afterwards; OpenSSL's, as Node uses: coreutils' sha256sum is 5x slower here) and fsyncs
    // every file before it gets its name (crash safety), where curl leaves the bytes in the page cache.
    ...(hasOpenssl ? [
      {
        name: 'ref: curl --parallel 4, then openssl sha256',
        run: () => measure('sh', ['-c', 'curl "$@" && openssl dgst -sha256 "$OUT"/*', 'sh', ...curlBase, '--parallel', '--parallel-max', '4', ...curlTargets], { env: { ...childEnv, OUT: out } }),
        check: opensslCheck('curl + openssl sha256'),
      },
      {
        name: 'ref: curl --parallel 4, then openssl sha256 and sync',
        run: () => measure('sh', ['-c', 'curl "$@" && openssl dgst -sha256 "$OUT"/* && sync "$OUT"/*', 'sh', ...curlBase, '--parallel', '--parallel-max', '4', ...curlTargets], { env: { ...childEnv, OUT: out } }),
        check: opensslCheck('curl + openssl sha256 + sync'),
      },
    ] : []),
    // An experiment: the same CLI under other Node.js flags (--variant-flags).
    ...(variantFlags.length ? [{
      name: `ref: sourcemesh under node ${variantFlags.join(' ')}`,
      variant: true,
      run: () => measure(cli[0]!, [...variantFlags, ...cli.slice(1), ...fetchArgs], { env: childEnv }),
      check: sourcemeshCheck(set, files, 'variant'),
    }] : []),
  ];
}

async function runSet(set: BenchSet, cli: string[], url: string): Promise<Row[]> {
  const files: BenchFile[] = [];
  for (const spec of set.specs) files.push(await ensureFile(served, spec, (l) => console.log(`  ${l}`)));
  const total = files.reduce((n, f) => n + f.size, 0);
  const manifest = path.join(work, `manifest-${set.key}.json`);
  await writeFile(manifest, `${JSON.stringify({
    format: 'sourcemesh.manifest/v1',
    name: `bench-${set.key}`,
    distfiles: [...files].sort((a, b) => (a.name < b.name ? -1 : 1)).map((f) => ({ name: f.name, sha256: f.sha256, size: f.size, urls: [`${url}/${f.name}`] })),
  }, null, 2)}\n`);
  files.sort((a, b) => (a.name < b.name ? -1 : 1)); // the manifest's order, which the JSON report follows
  const list = contenders(set, files, manifest, cli, url);
  const rows = new Map(list.map((c) => [c.name, { set: set.label, tool: c.name, seconds: [], rss: [], cpu: [], bytes: total, ours: c.ours, peer: c.peer, variant: c.variant } as Row]));
  for (let rep = 0; rep < reps; rep++) {
    // Rotate the order each repetition so that no tool always runs right after the same other one.
    const order = list.map((_, i) => list[(i + rep) % list.length]!);
    for (const c of order) {
      await freshOutput();
      const m = await c.run();
      if (m.code !== 0) throw new Error(`${set.label}, ${c.name}: exit status ${m.code ?? m.signal}\n${m.stderr.slice(-2000)}`);
      await c.check(m, rep === 0);
      const row = rows.get(c.name)!;
      row.seconds.push(m.seconds);
      if (m.maxRssBytes !== undefined) row.rss.push(m.maxRssBytes);
      if (m.cpuSeconds !== undefined) row.cpu.push(m.cpuSeconds);
      const rss = (m.cpuSeconds !== undefined ? `, CPU ${m.cpuSeconds.toFixed(2)} s` : '') + (m.maxRssBytes !== undefined ? `, peak RSS ${mib(m.maxRssBytes)}` : '');
      console.log(`  ${set.label}  run ${rep + 1}/${reps}  ${c.name}: ${m.seconds.toFixed(2)} s, ${(total / MiB / m.seconds).toFixed(0)} MiB/s${rss}`);
    }
  }
  await freshOutput();
  const result = [...rows.values()];
  for (const r of result) if (r.ours || r.variant) r.inner = innerSeconds.get(`${set.label}\n${r.ours ? 'ours' : 'variant'}`);
  return result;
}

const loadavg = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');
const mib = (bytes: number) => `${(bytes / MiB).toFixed(0)} MiB`;
const rate = (r: Row) => r.bytes / MiB / median(r.seconds);

function table(rows: Row[]): string {
  const lines: string[][] = [];
  for (const r of rows) {
    const ours = rows.find((x) => x.set === r.set && x.ours)!;
    const ratio = rate(ours) / rate(r);
    const spread = r.seconds.length > 1 ? ` (${Math.min(...r.seconds).toFixed(2)}-${Math.max(...r.seconds).toFixed(2)})` : '';
    const rssMax = r.rss.length ? Math.max(...r.rss) : undefined;
    lines.push([
      r.set,
      r.tool,
      `${median(r.seconds).toFixed(2)} s${spread}`,
      `${rate(r).toFixed(0)} MiB/s`,
      r.cpu.length ? `${median(r.cpu).toFixed(2)} s` : '-',
      r.ours ? '' : `${ratio.toFixed(2)}x${r.peer ? (ratio >= GOAL_RATIO ? ' (goal met)' : ' (goal NOT met)') : ' (reference)'}`,
      rssMax === undefined ? '-' : `${mib(median(r.rss))} / ${(rssMax / 1e6).toFixed(0)} MB${r.ours || r.variant ? (rssMax < GOAL_RSS_BYTES ? ' (goal met)' : ' (goal NOT met)') : ''}`,
    ]);
  }
  const header = ['set', 'tool', `wall time, median of ${reps} (min-max)`, 'throughput', 'CPU user+sys', `ours / this (goal >= ${GOAL_RATIO.toFixed(2)}x)`, `peak RSS median / max (goal < ${GOAL_RSS_BYTES / 1e6} MB, ours)`];
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [fmt(header), fmt(widths.map((w) => '-'.repeat(w))), ...lines.map(fmt)].join('\n');
}

async function main(): Promise<void> {
  await ensureOwnDir(work);
  const machine = describeMachine();
  console.log(`bench:fetch  (${path.relative(process.cwd(), fileURLToPath(import.meta.url)) || 'bench/fetch.ts'})`);
  console.log(formatMachine(machine));
  const cli = await prepareCli(root, work, flags.cli as CliMode);
  for (const w of cli.warnings) console.log(`WARNING: ${w}`);
  const disk = await diskWriteMiBs(work);
  console.log(`sourcemesh: ${cli.describe}`);
  console.log(`work dir ${work}; disk under it writes ${disk.toFixed(0)} MiB/s with fdatasync (sequential, 512 MiB)`);
  console.log(`peak RSS by ${rssMethod()}`);
  console.log(`load average at start ${loadavg()} (other work on the machine skews every figure)`);
  const server = await startStaticServer(served, path.join(work, 'server'));
  console.log(`serving ${served} at ${server.url} with ${server.kind}`);
  if (!hasOpenssl) console.log('openssl not found: the reference rows with sha256 are left out');
  const rows: Row[] = [];
  const psi0 = cpuPressureMicros();
  const t0 = process.hrtime.bigint();
  try {
    for (const set of sets) rows.push(...(await runSet(set, cli.argv, server.url)));
  } finally {
    await server.stop();
  }
  const psi1 = cpuPressureMicros();
  const pressure = psi0 !== undefined && psi1 !== undefined ? (psi1 - psi0) / (Number(process.hrtime.bigint() - t0) / 1e3) : undefined;
  console.log('');
  console.log(table(rows));
  console.log('');
  for (const set of new Set(rows.map((r) => r.set))) {
    const peers = rows.filter((r) => r.set === set && r.peer);
    for (const ours of rows.filter((r) => r.set === set && (r.ours || r.variant))) {
      const worstRatio = Math.min(...peers.map((p) => rate(ours) / rate(p)));
      const rssMax = ours.rss.length ? Math.max(...ours.rss) : undefined;
      const inner = ours.inner?.length ? ` Its own report: ${median(ours.inner).toFixed(2)} s inside the fetch; the rest of ${median(ours.seconds).toFixed(2)} s is process start-up and exit.` : '';
      console.log(`${set}, ${ours.tool}: throughput goal ${worstRatio >= GOAL_RATIO ? 'met' : 'NOT met'} (worst ratio to curl ${worstRatio.toFixed(2)}x, goal >= ${GOAL_RATIO}x); ` +
        `peak RSS goal ${rssMax === undefined ? 'not measured' : `${rssMax < GOAL_RSS_BYTES ? 'met' : 'NOT met'} (${(rssMax / 1e6).toFixed(0)} MB, goal < ${GOAL_RSS_BYTES / 1e6} MB)`}.${inner}`);
      // CPU per GiB against curl given SHA-256 (curl --parallel, then openssl dgst: the same bytes hashed once).
      const withSha = rows.find((r) => r.set === set && r.tool === 'ref: curl --parallel 4, then openssl sha256');
      if (ours.cpu.length && withSha?.cpu.length) {
        const gib = ours.bytes / 1024 ** 3;
        const mine = median(ours.cpu) / gib;
        const theirs = median(withSha.cpu) / gib;
        console.log(`  CPU per GiB: ${mine.toFixed(2)} s against curl + sha256's ${theirs.toFixed(2)} s: ${(mine / theirs).toFixed(2)}x, goal <= ${GOAL_CPU_FACTOR}x ${mine <= GOAL_CPU_FACTOR * theirs ? 'met' : 'NOT met'}`);
      }
      // The disk's share: every byte is fdatasynced before the file gets its name, curl's stay in the page cache.
      console.log(`  the disk alone takes ${(ours.bytes / MiB / disk).toFixed(2)} s to make ${(ours.bytes / MiB).toFixed(0)} MiB durable at ${disk.toFixed(0)} MiB/s; ${GOAL_RATIO}x the fastest curl run is ${(Math.min(...peers.map((p) => median(p.seconds))) / GOAL_RATIO).toFixed(2)} s`);
    }
  }
  console.log(`load average at end ${loadavg()}${pressure !== undefined ? `; CPU pressure during the runs: some task waited for a CPU ${(100 * pressure).toFixed(0)}% of the time (/proc/pressure/cpu)` : ''}`);
  console.log(`server ${server.kind}; ${reps} runs of each, median; every sourcemesh output verified (exit status, JSON report, sha256 of each file).`);
}

try {
  await main();
} catch (err) {
  process.exitCode = 1;
  console.error(`bench:fetch failed: ${err instanceof Error ? err.message : String(err)}`);
} finally {
  await cleanup();
}
