// npm run bench:log — the transparency log on loopback, as users run it: `sourcemesh log serve` (the CLI
// built from the current sources with bin/sourcemesh.js's Node flags, bench/lib/cli.ts; --cli src|dist
// too) with two `sourcemesh witness serve` processes, quorum 2, a checkpoint every second.
//   1. appends per second by concurrent submitters, counting only acknowledged appends (200: the entry
//      is durably stored; wrk's own Requests/sec counts 503 "busy" answers too): with admission (every
//      entry a release statement whose signature the log checks, `--admit KEY`, on its verifier
//      threads) against the same entries logged unchecked (`--admit-unsigned`), in the same run, the two
//      alternating which goes first, each run on a fresh log; median and range over the runs, and the
//      admission's cost. Entries are signed once beforehand and never repeat within a run (a repeat would
//      be answered from the log's index, not appended; a run that would repeat one is void);
//   2. inclusion and consistency proof verification time (µs), on proofs computed from the log's tiles;
//   3. witness cosignature round trip (add-checkpoint with a consistency proof), p50 and p99;
//   4. client catch-up over a 1,000-step release key rotation chain: signature checks and time through
//      skip links against walking it link by link (key sets of 3 keys, threshold 2).
// Goals printed beside: at least 10,000 appends/s on one node, admission at most 15% slower than
// without, proof verification under 100 µs.
//
//   node bench/log.ts [--cli build|src|dist] [--seconds N] [--runs N] [--clients N] [--max-rate N] [--dir DIR] [--verify-threads N] [--cpu-prof DIR]
// --verify-threads N: log serve's --verify-threads in the runs with admission (default: its own default).
// --cpu-prof DIR: each log serve runs with node --cpu-prof (every thread: main and verifier threads), its
// profiles in DIR/run-N-MODE/ (profiling slows the log: the figures of such a run are not the benchmark's).
// Environment (the same defaults): BENCH_SECONDS (10), BENCH_RUNS (3 pairs), BENCH_CLIENTS (256),
// BENCH_MAX_RATE (15000: entries signed per second of a run), BENCH_DIR (a temporary directory),
// BENCH_ROTATION_STEPS (1000), BENCH_ROTATION_ONLY=1 (only part 4, no servers).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool, request } from '../src/net/undici.ts';
import { openCheckpoint } from '../src/trust/checkpoint.ts';
import {
  CompactRange, type Hash, type HashReader, leafHash, proveConsistency, proveInclusion, treeHash, verifyConsistency, verifyInclusion,
} from '../src/trust/merkle.ts';
import { createSigner, createVerifier, formatNote, parseSignerKey, parseVerifierKey, signerKeyFromSeed, KEY_TYPE_ED25519, formatSignerKey, formatVerifierKey, signNote } from '../src/trust/note.ts';
import { formatCheckpoint } from '../src/trust/checkpoint.ts';
import { formatReleaseStatement } from '../src/trust/release.ts';
import { TileHashReader, tilePath } from '../src/trust/tiles.ts';
import { formatAddCheckpoint } from '../src/trust/witness/protocol.ts';
import { benchArgs } from './lib/args.ts';
import { cleanup, onCleanup } from './lib/cleanup.ts';
import { prepareCli, type CliMode } from './lib/cli.ts';
import { median } from './lib/measure.ts';
import { stopChild } from './lib/nginx.ts';
import { runWrk, wrkScript } from './lib/wrk.ts';
import { chainHops, genesisPosition, planHops, walkChain, type SignatureCounter } from '../src/trust/rotation.ts';
import { buildChain } from '../test/trust/release/chain.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: flags, usage, count } = benchArgs('log', {
  cli: { type: 'string', default: 'build' },
  seconds: { type: 'string', default: process.env.BENCH_SECONDS ?? '10' },
  runs: { type: 'string', default: process.env.BENCH_RUNS ?? '3' },
  clients: { type: 'string', default: process.env.BENCH_CLIENTS ?? '256' },
  'max-rate': { type: 'string', default: process.env.BENCH_MAX_RATE ?? '15000' },
  dir: { type: 'string', default: process.env.BENCH_DIR },
  'verify-threads': { type: 'string' },
  'cpu-prof': { type: 'string' },
});
if (!['build', 'src', 'dist'].includes(flags.cli)) usage(`--cli ${flags.cli}: expected build, src or dist`);
const seconds = count('seconds', flags.seconds);
const pairs = count('runs', flags.runs);
const clients = count('clients', flags.clients);
const maxRate = count('max-rate', flags['max-rate']);
const verifyThreads = flags['verify-threads'] === undefined ? [] : ['--verify-threads', String(count('verify-threads', flags['verify-threads']))];
const work = flags.dir ?? (await mkdtemp(path.join(os.tmpdir(), 'sourcemesh-bench-log-')));

interface Server {
  url: string;
  child: ChildProcess;
  stderr: () => string;
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

const fmt = (n: number, digits = 1) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

/** Part 4: catch-up cost over a rotation chain of `steps` statements, with and without skip links. */
function rotationCatchUp(steps: number): string[] {
  const t0 = performance.now();
  const built = buildChain(steps, { label: 'bench' });
  const buildMs = performance.now() - t0;
  const genesis = genesisPosition(built.sets[0]!);
  const walk = (hops: { statement: string; link?: string }[]) => {
    const counter: SignatureCounter = { checks: 0 };
    const times: number[] = [];
    let end;
    for (let i = 0; i < 5; i++) {
      counter.checks = 0;
      const s = performance.now();
      end = walkChain(genesis, hops, { counter });
      times.push(performance.now() - s);
    }
    if (end!.hash !== built.positions[steps]!.hash) throw new Error('the walk did not reach the last key set');
    return { hops: hops.length, checks: counter.checks, ms: median(times) };
  };
  const skip = walk(chainHops(built.chain));
  const linear = walk(built.chain.statements.map((s) => ({ statement: s.note })));
  // The worst starting key set: a client that stopped anywhere along the chain.
  let worst = { from: 0, hops: 0 };
  for (let from = 0; from < steps; from++) {
    const hops = planHops(from, steps, (i, j) => built.chain.links.has(`${i}:${j}`)).length;
    if (hops > worst.hops) worst = { from, hops };
  }
  const bound = 2 * Math.log2(steps);
  const ok = (b: boolean) => (b ? 'met' : 'NOT met');
  return [
    `rotation catch-up over ${steps} statements (key sets of 3, threshold 2; chain built and checked in ${fmt(buildMs / 1000, 1)} s):`,
    `  from the genesis keys with skip links: ${skip.hops} hops, ${skip.checks} signature checks, ${fmt(skip.ms, 2)} ms   goal <= 2*log2(n) = ${fmt(bound, 1)} checks: ${ok(skip.checks <= bound)}`,
    `  link by link: ${linear.hops} hops, ${linear.checks} signature checks, ${fmt(linear.ms, 1)} ms   ratio ${fmt(linear.checks / skip.checks, 1)}x checks, ${fmt(linear.ms / skip.ms, 1)}x time`,
    `  worst starting key set (${worst.from}): ${worst.hops} hops (${2 * worst.hops} checks at threshold 2)   goal <= 2*log2(n) = ${fmt(bound, 1)} hops: ${ok(worst.hops <= bound)}`,
  ];
}

if (process.env.BENCH_ROTATION_ONLY === '1') {
  for (const line of rotationCatchUp(Number(process.env.BENCH_ROTATION_STEPS ?? 1000))) console.log(line);
  if (!flags.dir) await rm(work, { recursive: true, force: true });
  process.exit(0);
}

const cli = await prepareCli(root, work, flags.cli as CliMode);
for (const w of cli.warnings) console.log(`warning: ${w}`);

function start(args: string[], nodeFlags: string[] = []): Promise<Server> {
  const child = spawn(cli.argv[0]!, [...nodeFlags, ...cli.argv.slice(1), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const off = onCleanup(() => stopChild(child), () => child.kill('SIGKILL'));
  child.on('close', off);
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /^listening on (\S+)\n/.exec(out);
      if (m) resolve({ url: m[1]!, child, stderr: () => err });
    });
    child.on('exit', (code) => reject(new Error(`${args.slice(0, 2).join(' ')} exited with ${code}:\n${err}`)));
  });
}

function keygen(name: string, type: 'note' | 'cosignature'): { file: string; vkey: string } {
  const file = path.join(work, `${name.replace(/\//g, '_')}.key`);
  const run = spawnSync(cli.argv[0]!, [...cli.argv.slice(1), 'key', 'generate', name, '-o', file, '--type', type, '--force'], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(run.stderr);
  return { file, vkey: run.stdout.trim() };
}

/** The log's published tree size (0 before its first checkpoint). */
async function treeSize(url: string): Promise<number> {
  const res = await request(`${url}/checkpoint`);
  const text = await res.body.text();
  return res.statusCode === 200 ? Number(text.split('\n')[1]) : 0;
}

/** Wait until the published checkpoint covers `size` entries (the tree then holds every acknowledged one). */
async function awaitTree(url: string, size: number, timeoutMs = 20_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const n = await treeSize(url);
    if (n >= size || Date.now() > deadline) return n;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The name verifier threads carry (src/trust/log/verifier.ts), in /proc/PID/task/TID/comm. */
const VERIFIER_THREAD = 'sm-verifier';

interface CpuSample {
  /** CPU seconds (user + system) of the log process, all its threads. */
  all: number;
  /** Of its main (sequencing) thread alone. */
  main: number;
  /** Of its signature verification threads (those alive at the sample). */
  verifier: number;
  /** CPU seconds the whole machine was busy (all processes: the log, wrk, the witnesses, anything else). */
  machine: number;
  /** CPU seconds the hypervisor gave the machine's CPUs to others while they had work (steal). */
  steal: number;
}

/** CPU use of a process and its threads, and of the machine (Linux /proc). */
async function cpuOf(pid: number): Promise<CpuSample | undefined> {
  const ticks = async (file: string) => {
    const fields = (await readFile(file, 'utf8')).replace(/^.*\) /s, '').split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in USER_HZ (100 on Linux)
  };
  try {
    let verifier = 0;
    for (const tid of await readdir(`/proc/${pid}/task`)) {
      const comm = await readFile(`/proc/${pid}/task/${tid}/comm`, 'utf8').catch(() => '');
      if (comm.trim() === VERIFIER_THREAD) verifier += await ticks(`/proc/${pid}/task/${tid}/stat`).catch(() => 0);
    }
    // /proc/stat's first line: user nice system idle iowait irq softirq steal ... in USER_HZ.
    const [user, nice, system, , , irq, softirq, steal] = (await readFile('/proc/stat', 'utf8')).split('\n', 1)[0]!.split(/\s+/).slice(1, 9).map(Number) as number[];
    const machine = (user! + nice! + system! + irq! + softirq!) / 100;
    return { all: await ticks(`/proc/${pid}/stat`), main: await ticks(`/proc/${pid}/task/${pid}/stat`), verifier, machine, steal: steal! / 100 };
  } catch {
    return undefined;
  }
}

type Mode = 'admitted' | 'unchecked';
interface AppendRun {
  mode: Mode;
  rate: number;
  acknowledged: number;
  refused: number;
  p99ms: number;
  /**
   * CPU per acknowledged append (µs): the log process's, all threads, its main (sequencing) thread, its
   * verifier threads; and the whole machine's (the log, wrk and the witnesses share its cores).
   */
  cpuUs?: { all: number; main: number; verifier: number; machine: number; steal: number };
  problems: string[];
}

async function main(): Promise<void> {
  const wrkVersion = /wrk (\S+)/.exec((spawnSync('wrk', ['-v'], { encoding: 'utf8' }).stdout ?? '') + (spawnSync('wrk', ['-v'], { encoding: 'utf8' }).stderr ?? ''))?.[1];
  // Witnesses remember each origin's last checkpoint: state from an earlier run in the same --dir would
  // refuse these logs' (new keys, same names) as rollbacks.
  for (const d of ['w1', 'w2']) await rm(path.join(work, d), { recursive: true, force: true });
  const submitter = signerKeyFromSeed('bench.sourcemesh.example/release', KEY_TYPE_ED25519, randomBytes(32));
  const runs = pairs * 2;
  const logKeys = Array.from({ length: runs }, (_, i) => keygen(`bench.sourcemesh.example/log-${i}`, 'note'));
  const probeKey = signerKeyFromSeed('bench.sourcemesh.example/probe', KEY_TYPE_ED25519, randomBytes(32));
  const w = [keygen('w1.bench.example', 'cosignature'), keygen('w2.bench.example', 'cosignature')];
  const witnesses = await Promise.all(w.map((k, i) => start(['witness', 'serve', '--state', path.join(work, `w${i + 1}`), '--key', k.file, '--listen', '127.0.0.1:0',
    ...logKeys.flatMap((l) => ['--log', l.vkey]), '--log', formatVerifierKey(probeKey)])));

  // The entries: release statements of about 200 bytes (the text and one signature line), signed once.
  // Warm-up entries come from the end of the pool, measured ones from its start: none repeats in a run.
  const warmCount = Math.min(20_000, maxRate * 2);
  const poolSize = seconds * maxRate + warmCount;
  const t0 = performance.now();
  const releaseSigner = createSigner(submitter);
  const entries: string[] = [];
  for (let i = 0; i < poolSize; i++) entries.push(signNote(formatReleaseStatement({ kind: 'manifest', name: 'bench', version: `${i}`, sha256: '0'.repeat(64) }), [releaseSigner]));
  const poolFile = path.join(work, 'entries.bin');
  await writeFile(poolFile, entries.join('\0'));
  const entryBytes = Math.round(entries.reduce((n, e) => n + Buffer.byteLength(e), 0) / entries.length);
  console.log(`bench:log on ${os.cpus().length} CPUs (${os.cpus()[0]?.model}), node ${process.version}, ${cli.describe}; ${clients} concurrent submitters, ${entryBytes}-byte signed entries (${poolSize} signed in ${fmt((performance.now() - t0) / 1000, 1)} s), ${pairs} pairs of ${seconds} s runs${verifyThreads.length ? `, admission with --verify-threads ${verifyThreads[1]}` : ''}; files in ${work}`);
  if (!wrkVersion) console.log('wrk is not installed (Debian: apt-get install wrk): appends are sent with undici from this process, which takes CPU the log would have');

  /** wrk posts entries [first, first + count) once each, in order; a run that needs more is void. */
  const lua = (first: number) => wrkScript(`
local entries = {}
local i = 0
init = function(args)
  local f = assert(io.open("${poolFile}", "rb"))
  local data = f:read("*a")
  f:close()
  for e in string.gmatch(data, "([^%z]+)") do entries[#entries + 1] = e end
end
request = function()
  local e = entries[${first} + (i % (#entries - ${first})) + 1]
  i = i + 1
  return wrk.format("POST", "/add", { ["Content-Type"] = "application/octet-stream" }, e)
end
`);

  const undiciRun = async (url: string, first: number, limit: number, ms: number) => {
    const pool = new Pool(url, { connections: clients, pipelining: 1, keepAliveTimeout: 30_000 });
    let next = first;
    let ok = 0;
    let refused = 0;
    const latencies: number[] = [];
    const until = performance.now() + ms;
    const s = performance.now();
    await Promise.all(Array.from({ length: clients }, async () => {
      while (performance.now() < until && next < first + limit) {
        const t = performance.now();
        const res = await pool.request({ path: '/add', method: 'POST', body: entries[next++]! });
        await res.body.text();
        if (res.statusCode === 200) {
          ok++;
          latencies.push(performance.now() - t);
        } else refused++;
      }
    }));
    await pool.close();
    return { requests: ok + refused, good: ok, refused, seconds: (performance.now() - s) / 1000, p99ms: latencies.length ? percentile(latencies, 99) : NaN, exhausted: next >= first + limit };
  };

  /** One run: a fresh log in `mode`, warmed up, then `seconds` of appends. */
  const appendRun = async (mode: Mode, i: number): Promise<AppendRun & { dir: string; logKey: { file: string; vkey: string }; server: Server }> => {
    const logKey = logKeys[i]!;
    const dir = path.join(work, `log-${i}`);
    await rm(dir, { recursive: true, force: true });
    const admission = mode === 'admitted'
      ? ['--admit', formatVerifierKey(submitter), '--key-entries-per-hour', '1000000000', '--key-bytes-per-day', '1T', ...verifyThreads]
      : ['--admit-unsigned'];
    const profile = flags['cpu-prof'] === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', path.resolve(flags['cpu-prof'], `run-${i + 1}-${mode}`)];
    if (profile.length > 0) await mkdir(profile[2]!, { recursive: true });
    const server = await start(['log', 'serve', '--root', dir, '--key', logKey.file, '--listen', '127.0.0.1:0', '--witness', `${w[0]!.vkey}=${witnesses[0]!.url}`,
      '--witness', `${w[1]!.vkey}=${witnesses[1]!.url}`, '--quorum', '2', '--checkpoint-interval', '1s', '--add-rate', '0', '--log-level', 'warn', ...admission], profile);
    const measured = poolSize - warmCount;
    let warm: { good: number; requests: number };
    let run: { good: number; requests: number; refused: number; seconds: number; p99ms: number; exhausted: boolean };
    let cpu0: Awaited<ReturnType<typeof cpuOf>>;
    let cpu1: Awaited<ReturnType<typeof cpuOf>>;
    if (wrkVersion) {
      const wr = await runWrk(`${server.url}/add`, path.join(work, 'warm.lua'), lua(measured), { connections: Math.min(clients, 64), threads: 1, seconds: 1 });
      warm = { good: wr.requests - wr.statusErrors, requests: wr.requests };
      cpu0 = await cpuOf(server.child.pid!);
      const r = await runWrk(`${server.url}/add`, path.join(work, 'run.lua'), lua(0), { connections: clients, threads: 1, seconds });
      cpu1 = await cpuOf(server.child.pid!);
      run = { good: r.requests - r.statusErrors, requests: r.requests, refused: r.statusErrors, seconds: r.seconds, p99ms: r.p99ms, exhausted: r.requests + clients > measured };
      if (r.socketErrors > 0) run.refused += r.socketErrors;
    } else {
      warm = await undiciRun(server.url, measured, warmCount, 1000);
      cpu0 = await cpuOf(server.child.pid!);
      run = await undiciRun(server.url, 0, measured, seconds * 1000);
      cpu1 = await cpuOf(server.child.pid!);
    }
    const per = (k: keyof CpuSample) => ((cpu1![k] - cpu0![k]) * 1e6) / run.good;
    const cpuUs = cpu0 && cpu1 && run.good > 0 ? { all: per('all'), main: per('main'), verifier: per('verifier'), machine: per('machine'), steal: per('steal') } : undefined;
    const problems: string[] = [];
    if (warm.requests > warmCount) problems.push('the warm-up ran out of entries');
    if (run.exhausted) problems.push(`ran out of the ${measured} signed entries (raise --max-rate)`);
    // Every acknowledged append is in the tree: more may be (answers cut off at the end), never fewer.
    const size = await awaitTree(server.url, warm.good + run.good);
    if (size < warm.good + run.good) problems.push(`the tree holds ${size} entries, but ${warm.good + run.good} appends were acknowledged`);
    return { mode, rate: run.good / run.seconds, acknowledged: run.good, refused: run.refused, p99ms: run.p99ms, ...(cpuUs ? { cpuUs } : {}), problems, dir, logKey, server };
  };

  // ---- 1. appends, admission against unchecked, alternating which goes first
  const results: AppendRun[] = [];
  let last!: Awaited<ReturnType<typeof appendRun>>;
  for (let p = 0; p < pairs; p++) {
    const order: Mode[] = p % 2 === 0 ? ['unchecked', 'admitted'] : ['admitted', 'unchecked'];
    for (const [k, mode] of order.entries()) {
      const r = await appendRun(mode, p * 2 + k);
      results.push(r);
      console.log(`  run ${p * 2 + k + 1} (${mode}): ${fmt(r.rate, 0)} acknowledged appends/s (${r.acknowledged} in ${seconds} s, ${r.refused} not 200), p99 ${fmt(r.p99ms, 1)} ms${r.cpuUs ? `, log CPU ${fmt(r.cpuUs.all, 0)} µs/append (main thread ${fmt(r.cpuUs.main, 0)}, verifier threads ${fmt(r.cpuUs.verifier, 0)}), machine CPU ${fmt(r.cpuUs.machine, 0)} µs/append${r.cpuUs.steal * r.rate > 10_000 ? ` (steal ${fmt(r.cpuUs.steal, 0)})` : ''}` : ''}${r.problems.length ? `; VOID: ${r.problems.join('; ')}` : ''}`);
      if (last) await stopChild(last.server.child);
      last = r;
    }
  }
  await stopChild(last.server.child);
  const logDir = last.dir;
  const logKey = last.logKey;
  // ---- 2. proof verification, on proofs computed from the last run's tiles on disk
  const cpText = await readFile(path.join(logDir, 'checkpoint'), 'utf8');
  const cp = openCheckpoint(cpText, [createVerifier(parseVerifierKey(logKey.vkey)), ...w.map((k) => createVerifier(parseVerifierKey(k.vkey)))]);
  if (cp.note.verified.length !== 3) throw new Error('the published checkpoint lacks a cosignature');
  const size = cp.checkpoint.size;
  const disk = new TileHashReader(size, (tile) => readFile(path.join(logDir, tilePath(tile))));
  const bundleEntries = async (index: number) => {
    const { parseEntryBundle, entryBundlePath } = await import('../src/trust/tiles.ts');
    const b = Math.floor(index / 256);
    const width = Math.min(256, size - b * 256);
    return parseEntryBundle(await readFile(path.join(logDir, entryBundlePath({ index: b, width }))), width)[index % 256]!;
  };
  const SAMPLES = 200;
  const inclusion: { index: number; leaf: Hash; proof: Hash[] }[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const index = Math.floor(((i + 0.5) / SAMPLES) * size); // spread over the tree, the same each run
    inclusion.push({ index, leaf: leafHash(await bundleEntries(index)), proof: await proveInclusion(index, size, disk) });
  }
  const consistency: { old: number; oldRoot: Hash; proof: Hash[] }[] = [];
  for (let i = 0; i < SAMPLES / 4; i++) {
    const old = 1 + Math.floor(((i + 0.5) / (SAMPLES / 4)) * (size - 1));
    consistency.push({ old, oldRoot: await treeHash(old, disk), proof: await proveConsistency(old, size, disk) });
  }
  const root = cp.checkpoint.rootHash;
  const timeEach = (fn: () => void, reps: number) => {
    for (let i = 0; i < reps / 5; i++) fn(); // warm-up
    const batches: number[] = [];
    for (let b = 0; b < 20; b++) {
      const s = process.hrtime.bigint();
      for (let i = 0; i < reps; i++) fn();
      batches.push(Number(process.hrtime.bigint() - s) / 1000 / reps);
    }
    return median(batches);
  };
  let k = 0;
  const inclusionUs = timeEach(() => {
    const c = inclusion[k++ % inclusion.length]!;
    verifyInclusion(c.index, size, c.leaf, c.proof, root);
  }, 2000);
  const consistencyUs = timeEach(() => {
    const c = consistency[k++ % consistency.length]!;
    verifyConsistency(c.old, size, c.oldRoot, root, c.proof);
  }, 2000);
  const proofLength = median(inclusion.map((c) => c.proof.length));

  // ---- 3. witness round trips: a probe log the witness knows, growing by a few entries per checkpoint
  const stored: Hash[] = [];
  const probeRange = new CompactRange();
  const reader: HashReader = { readHashes: (indexes) => indexes.map((i) => stored[i]!) };
  const grow = (count: number) => {
    for (let i = 0; i < count; i++) stored.push(...probeRange.append(leafHash(Buffer.from(`probe ${probeRange.size}`))));
  };
  const signer = createSigner(parseSignerKey(formatSignerKey(probeKey)));
  const witnessPool = new Pool(witnesses[0]!.url, { connections: 1, keepAliveTimeout: 30_000 });
  const roundTrips: number[] = [];
  let old = 0;
  for (let i = 0; i < 600; i++) {
    grow(1 + (i % 7));
    const text = formatCheckpoint({ origin: probeKey.name, size: probeRange.size, rootHash: probeRange.root(), extensions: [] });
    const note = formatNote(text, [{ name: signer.name, keyId: signer.keyId, signature: signer.sign(Buffer.from(text)) }]);
    const body = formatAddCheckpoint({ old, proof: old === 0 ? [] : await proveConsistency(old, probeRange.size, reader), note });
    const s = performance.now();
    const res = await witnessPool.request({ path: '/add-checkpoint', method: 'POST', body });
    const answer = await res.body.text();
    const ms = performance.now() - s;
    if (res.statusCode !== 200) throw new Error(`add-checkpoint: ${res.statusCode} ${answer}`);
    if (i >= 100) roundTrips.push(ms); // after warm-up
    old = probeRange.size;
  }
  await witnessPool.close();

  const ok = (b: boolean) => (b ? 'met' : 'NOT met');
  console.log('');
  const by = (mode: Mode) => results.filter((r) => r.mode === mode);
  const voided = results.filter((r) => r.problems.length > 0);
  const summary = (mode: Mode) => {
    const rates = by(mode).filter((r) => r.problems.length === 0).map((r) => r.rate);
    return { rates, median: rates.length ? median(rates) : NaN, min: Math.min(...rates), max: Math.max(...rates) };
  };
  const admitted = summary('admitted');
  const unchecked = summary('unchecked');
  const client = wrkVersion ? `wrk ${wrkVersion} -t1 -c${clients}` : `undici from this process, ${clients} connections`;
  for (const [label, s2] of [['with admission (a signature checked per entry, --admit)', admitted], ['unchecked (--admit-unsigned)', unchecked]] as const) {
    console.log(`appends ${label}: median ${fmt(s2.median, 0)}/s, range ${fmt(s2.min, 0)}-${fmt(s2.max, 0)} over ${s2.rates.length} runs (${client}, acknowledged appends only)   goal >= 10,000/s: ${ok(s2.median >= 10_000)}`);
  }
  // Per pair, the two runs next to each other in time: how much admission costs, and how much that moves.
  const pairCosts: number[] = [];
  for (let p = 0; p < pairs; p++) {
    const a = results.slice(p * 2, p * 2 + 2);
    const ad = a.find((r) => r.mode === 'admitted');
    const un = a.find((r) => r.mode === 'unchecked');
    if (ad && un && ad.problems.length === 0 && un.problems.length === 0) pairCosts.push(1 - ad.rate / un.rate);
  }
  const cost = 1 - admitted.median / unchecked.median;
  console.log(`admission cost: ${fmt(cost * 100, 1)}% fewer appends/s (medians; per pair ${pairCosts.map((c) => `${fmt(c * 100, 1)}%`).join(', ') || 'none valid'})   goal <= 15%: ${ok(cost <= 0.15)}`);
  const cpu = (mode: Mode, which: keyof CpuSample) => median(by(mode).flatMap((r) => (r.cpuUs ? [r.cpuUs[which]] : [])));
  console.log(`log CPU per acknowledged append (medians): ${fmt(cpu('admitted', 'all'), 0)} µs with admission, ${fmt(cpu('unchecked', 'all'), 0)} µs unchecked; on the main (sequencing) thread ${fmt(cpu('admitted', 'main'), 0)} µs and ${fmt(cpu('unchecked', 'main'), 0)} µs; on the verifier threads ${fmt(cpu('admitted', 'verifier'), 0)} µs`);
  // What decides the rate when every core is busy: the CPU an append costs on the whole machine.
  console.log(`machine CPU per acknowledged append (medians; the log, wrk and both witnesses on ${os.availableParallelism()} cores): ${fmt(cpu('admitted', 'machine'), 0)} µs with admission, ${fmt(cpu('unchecked', 'machine'), 0)} µs unchecked`);
  if (voided.length > 0) console.log(`void runs (not counted): ${voided.length}`);
  console.log(`  every acknowledged append was in the tree; the last run's checkpoint covers ${size} entries, cosigned by both witnesses`);
  console.log(`inclusion proof verification: ${fmt(inclusionUs, 2)} µs (proofs of ${proofLength} hashes)   goal < 100 µs: ${ok(inclusionUs < 100)}`);
  console.log(`consistency proof verification: ${fmt(consistencyUs, 2)} µs   goal < 100 µs: ${ok(consistencyUs < 100)}`);
  console.log(`witness cosignature round trip (add-checkpoint, loopback, ${roundTrips.length} requests): p50 ${fmt(percentile(roundTrips, 50), 2)} ms, p99 ${fmt(percentile(roundTrips, 99), 2)} ms`);
  for (const line of rotationCatchUp(Number(process.env.BENCH_ROTATION_STEPS ?? 1000))) console.log(line);
}

try {
  await main();
} finally {
  await cleanup();
  if (!flags.dir) await rm(work, { recursive: true, force: true });
}
