// npm run bench:serve — `sourcemesh serve` against nginx (Debian, sendfile on, one worker) serving the
// same directory on loopback, in the same run, both driven by wrk: 4 KiB, 1 MiB and 64 MiB files and
// random 1 MiB ranges of a 1 GiB file, at 1, 16 and 128 connections. Prints requests/s, throughput,
// p99 latency, and the ratio ours/nginx beside the goals (0.9x on large files and ranges, 0.5x on
// small files). Each cell is the median of BENCH_REPS runs, the two servers alternating, because
// loopback figures on a shared 2-vCPU machine move by ±20% from one second to the next.
//
// Environment: BENCH_DIR (work directory, default $TMPDIR/sourcemesh-bench-serve), BENCH_SECONDS
// (per run, default 3; 64 MiB files get twice as long), BENCH_REPS (default 3), BENCH_CONNECTIONS
// (default "1,16,128"), BENCH_JSON=FILE (also write the results as JSON).
import { spawn, spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { nodeKeyFiles, openNodeKey } from '../src/mirror/inventory.ts';
import { cleanup, onCleanup } from './lib/cleanup.ts';
import { ensureFile } from './lib/files.ts';
import { startNginx, stopChild, type StaticServer } from './lib/nginx.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const work = process.env.BENCH_DIR ?? path.join(os.tmpdir(), 'sourcemesh-bench-serve');
const seconds = Number(process.env.BENCH_SECONDS ?? 3);
const reps = Number(process.env.BENCH_REPS ?? 3);
const connections = (process.env.BENCH_CONNECTIONS ?? '1,16,128').split(',').map(Number);
const RANGE = MiB;

interface Case {
  label: string;
  file: string;
  size: number;
  /** Random 1 MiB ranges instead of whole-file GETs. */
  ranges?: boolean;
  goal: number | undefined;
  seconds: number;
}

const cases: Case[] = [
  { label: '4 KiB file', file: 'small-4k.bin', size: 4 * KiB, goal: 0.5, seconds },
  { label: '1 MiB file', file: 'medium-1m.bin', size: MiB, goal: undefined, seconds },
  { label: '64 MiB file', file: 'large-64m.bin', size: 64 * MiB, goal: 0.9, seconds: seconds * 2 },
  { label: '1 MiB ranges of 1 GiB', file: 'huge-1g.bin', size: 1024 * MiB, ranges: true, goal: 0.9, seconds },
];

interface Run {
  requests: number;
  bytes: number;
  seconds: number;
  p99ms: number;
  errors: number;
}

function wrkVersion(): string | undefined {
  const r = spawnSync('wrk', ['-v'], { encoding: 'utf8' });
  return r.error ? undefined : /wrk (\S+)/.exec(r.stdout + r.stderr)?.[1];
}

/** The wrk Lua script: random ranges when asked, and a machine-readable summary line at the end. */
function script(c: Case): string {
  const request = c.ranges ? `
local size, len = ${c.size}, ${RANGE}
request = function()
  local first = math.random(0, size - len)
  return wrk.format("GET", wrk.path, { ["Range"] = "bytes=" .. first .. "-" .. (first + len - 1) })
end
` : '';
  return `${request}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH %d %d %d %d %d\\n", summary.requests, summary.bytes, summary.duration,
    latency:percentile(99), e.connect + e.read + e.write + e.status + e.timeout))
end
`;
}

async function runWrk(url: string, c: Case, conns: number): Promise<Run> {
  const lua = path.join(work, `${c.ranges ? 'ranges' : 'plain'}.lua`);
  await writeFile(lua, script(c));
  const threads = conns >= 16 ? 2 : 1;
  const child = spawn('wrk', ['-t', String(threads), '-c', String(conns), '-d', `${c.seconds}s`, '--timeout', '30s', '-s', lua, `${url}/${c.file}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const m = /BENCH (\d+) (\d+) (\d+) (\d+) (\d+)/.exec(out);
  if (code !== 0 || !m) throw new Error(`wrk failed (${code}): ${out}`);
  return { requests: Number(m[1]), bytes: Number(m[2]), seconds: Number(m[3]) / 1e6, p99ms: Number(m[4]) / 1000, errors: Number(m[5]) };
}

/** Our server as an operator starts it, without the per-client rate limit (wrk is one client). */
async function startOurs(served: string): Promise<StaticServer> {
  const keyFile = nodeKeyFiles(path.join(work, 'node')).key;
  await openNodeKey(nodeKeyFiles(path.join(work, 'node')), 'bench.sourcemesh.invalid');
  const child = spawn(process.execPath, [path.join(root, 'src/cli/main.ts'), 'serve', '--root', served, '--listen', '127.0.0.1:0', '--key', keyFile,
    '--rate', '0', '--no-access-log', '--max-connections', '4096'], { stdio: ['ignore', 'pipe', 'pipe'] });
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
  return { url, kind: `sourcemesh serve (node ${process.version})`, stop: async () => { await stopChild(child); unregister(); } };
}

const median = <T>(xs: T[], by: (x: T) => number): T => [...xs].sort((a, b) => by(a) - by(b))[xs.length >> 1]!;
const mibps = (r: Run) => r.bytes / r.seconds / MiB;

async function main(): Promise<void> {
  const wrk = wrkVersion();
  if (!wrk) throw new Error('wrk is not installed (Debian: apt-get install wrk)');
  const served = path.join(work, 'served');
  for (const c of cases) await ensureFile(served, { name: c.file, size: c.size, seed: c.size }, (l) => console.log(l));
  const nginx = await startNginx(served, path.join(work, 'nginx'));
  const ours = await startOurs(served);
  console.log(`bench:serve on ${os.cpus().length} CPUs (${os.cpus()[0]?.model}), ${nginx.kind} vs ${ours.kind}, wrk ${wrk}; ${reps} runs of ${seconds} s per cell (64 MiB: ${seconds * 2} s), median`);
  // Warm up both (page cache, JIT, the open-file and small-file caches).
  for (const c of cases) for (const s of [nginx, ours]) await runWrk(s.url, { ...c, seconds: 1 }, 4);

  const rows: string[][] = [['case', 'conns', 'nginx req/s', 'nginx MiB/s', 'nginx p99', 'ours req/s', 'ours MiB/s', 'ours p99', 'ours/nginx', 'goal']];
  const results: unknown[] = [];
  for (const c of cases) {
    for (const conns of connections) {
      const runs = { nginx: [] as Run[], ours: [] as Run[] };
      for (let i = 0; i < reps; i++) {
        // Alternate who goes first, so drift in the machine's speed does not favour one side.
        const order = i % 2 === 0 ? (['nginx', 'ours'] as const) : (['ours', 'nginx'] as const);
        for (const who of order) runs[who].push(await runWrk((who === 'nginx' ? nginx : ours).url, c, conns));
      }
      const n = median(runs.nginx, mibps);
      const o = median(runs.ours, mibps);
      const ratio = mibps(o) / mibps(n);
      const verdict = c.goal === undefined ? '(none)' : `${c.goal}x ${ratio >= c.goal ? 'met' : 'NOT met'}`;
      const row = [c.label, String(conns), (n.requests / n.seconds).toFixed(0), mibps(n).toFixed(0), `${n.p99ms.toFixed(2)} ms`,
        (o.requests / o.seconds).toFixed(0), mibps(o).toFixed(0), `${o.p99ms.toFixed(2)} ms`, `${ratio.toFixed(2)}x`, verdict];
      if (n.errors + o.errors > 0) row.push(`errors: nginx ${n.errors}, ours ${o.errors}`);
      rows.push(row);
      console.log(row.join('  '));
      results.push({ case: c.label, connections: conns, nginx: n, ours: o, ratio, goal: c.goal });
    }
  }
  await ours.stop();
  await nginx.stop();
  console.log('');
  console.log(markdown(rows));
  if (process.env.BENCH_JSON) await writeFile(process.env.BENCH_JSON, JSON.stringify({ date: new Date().toISOString(), cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version, nginx: nginx.kind, wrk, results }, null, 2));
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
