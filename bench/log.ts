// npm run bench:log — the transparency log on loopback, as users run it: `sourcemesh log serve` with two
// `sourcemesh witness serve` processes, quorum 2, a checkpoint every second.
//   1. entries appended per second by concurrent submitters (each answered once durably stored), and
//      the checkpoints published meanwhile: with wrk (C, when installed: the client then takes little of
//      the CPU it shares with the server), then with undici from this process;
//   2. inclusion and consistency proof verification time (µs), on proofs computed from the log's tiles;
//   3. witness cosignature round trip (add-checkpoint with a consistency proof), p50 and p99;
//   4. client catch-up over a 1,000-step release key rotation chain: signature checks and time through
//      skip links against walking it link by link (key sets of 3 keys, threshold 2).
// Goals printed beside: at least 10,000 appends/s on one node, proof verification under 100 µs.
// Environment: BENCH_SECONDS (default 10), BENCH_CLIENTS (default 256), BENCH_ENTRY_BYTES (default 200),
// BENCH_DIR (default a temporary directory), BENCH_ROTATION_STEPS (default 1000), BENCH_ROTATION_ONLY=1
// (only part 4, no servers).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool, request } from 'undici';
import { openCheckpoint } from '../src/trust/checkpoint.ts';
import {
  CompactRange, type Hash, type HashReader, leafHash, proveConsistency, proveInclusion, treeHash, verifyConsistency, verifyInclusion,
} from '../src/trust/merkle.ts';
import { createSigner, createVerifier, formatNote, parseSignerKey, parseVerifierKey, signerKeyFromSeed, KEY_TYPE_ED25519, formatSignerKey, formatVerifierKey } from '../src/trust/note.ts';
import { formatCheckpoint } from '../src/trust/checkpoint.ts';
import { TileHashReader, tilePath } from '../src/trust/tiles.ts';
import { formatAddCheckpoint } from '../src/trust/witness/protocol.ts';
import { median } from './lib/measure.ts';
import { chainHops, genesisPosition, planHops, isSkip, walkChain, type SignatureCounter } from '../src/trust/rotation.ts';
import { buildChain } from '../test/trust/release/chain.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(root, 'src/cli/main.ts');
const seconds = Number(process.env.BENCH_SECONDS ?? 10);
const clients = Number(process.env.BENCH_CLIENTS ?? 256);
const entryBytes = Number(process.env.BENCH_ENTRY_BYTES ?? 200);
const work = process.env.BENCH_DIR ?? (await mkdtemp(path.join(os.tmpdir(), 'sourcemesh-bench-log-')));

interface Server {
  url: string;
  child: ChildProcess;
  stderr: () => string;
}

function start(args: string[]): Promise<Server> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
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
  const file = path.join(work, `${name.replace(/\//g, "_")}.key`);
  const run = spawnSync(process.execPath, [CLI, 'key', 'generate', name, '-o', file, '--type', type, '--force'], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(run.stderr);
  return { file, vkey: run.stdout.trim() };
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

const fmt = (n: number, digits = 1) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

console.log(`bench:log on ${os.cpus().length} CPUs (${os.cpus()[0]?.model}), node ${process.version}; ${clients} concurrent submitters, ${entryBytes}-byte entries, ${seconds} s; files in ${work}`);

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
  if (!process.env.BENCH_DIR) await rm(work, { recursive: true, force: true });
  process.exit(0);
}

const started: Server[] = [];
const stopAll = () => {
  for (const s of started) s.child.kill('SIGTERM');
};
process.on('SIGINT', () => {
  stopAll();
  process.exit(130);
});

try {
  const logKey = keygen('bench.sourcemesh.example/log', 'note');
  const probeKey = signerKeyFromSeed('bench.sourcemesh.example/probe', KEY_TYPE_ED25519, randomBytes(32));
  const w = [keygen('w1.bench.example', 'cosignature'), keygen('w2.bench.example', 'cosignature')];
  const witnesses = await Promise.all(w.map((k, i) => start(['witness', 'serve', '--state', path.join(work, `w${i + 1}`), '--key', k.file, '--listen', '127.0.0.1:0', '--log', logKey.vkey, '--log', formatVerifierKey(probeKey)])));
  started.push(...witnesses);
  const logDir = path.join(work, 'log');
  await rm(logDir, { recursive: true, force: true });
  const log = await start(['log', 'serve', '--root', logDir, '--key', logKey.file, '--listen', '127.0.0.1:0',
    '--witness', `${w[0]!.vkey}=${witnesses[0]!.url}`, '--witness', `${w[1]!.vkey}=${witnesses[1]!.url}`, '--quorum', '2', '--checkpoint-interval', '1s']);
  started.push(log);

  // ---- 1. appends
  const pool = new Pool(log.url, { connections: clients, pipelining: 1, keepAliveTimeout: 30_000 });
  const payload = (i: number) => {
    const head = `sourcemesh.release/v1\nname bench\nversion ${i}\n`;
    return Buffer.concat([Buffer.from(head), Buffer.alloc(Math.max(0, entryBytes - head.length), 0x61)]);
  };
  // Warm up (JIT, connections), then measure: first with wrk (a C load generator, so that the client's
  // own CPU use is small: this machine's cores are shared by client and server), then from this process.
  let n = 0;
  const run = async (ms: number, latencies?: number[]) => {
    const until = performance.now() + ms;
    let ok = 0;
    let busy = 0;
    await Promise.all(Array.from({ length: clients }, async () => {
      while (performance.now() < until) {
        const t0 = performance.now();
        const res = await pool.request({ path: '/add', method: 'POST', body: payload(n++) });
        const text = await res.body.text();
        if (res.statusCode === 200) {
          ok++;
          latencies?.push(performance.now() - t0);
        } else if (res.statusCode === 503) busy++;
        else throw new Error(`POST /add: ${res.statusCode} ${text}`);
      }
    }));
    return { ok, busy };
  };
  const treeSize = async () => Number((await (await request(`${log.url}/checkpoint`)).body.text()).split('\n')[1]);
  await run(1500);
  await new Promise((r) => setTimeout(r, 1500));
  const sizeBefore = await treeSize();
  const signedBefore = [...log.stderr().matchAll(/"msg":"checkpoint signed"/g)].length;
  const publishedBefore = [...log.stderr().matchAll(/"msg":"checkpoint published"/g)].length;

  let wrkResult: { rate: number; p50: string; p99: string; requests: number; errors: number } | undefined;
  const hasWrk = spawnSync('wrk', ['--version']).error === undefined;
  if (hasWrk) {
    const script = path.join(work, 'post.lua');
    await writeFile(script, `local counter = 0
local pad = string.rep("a", ${Math.max(0, entryBytes - 40)})
request = function()
  counter = counter + 1
  return wrk.format("POST", "/add", { ["Content-Type"] = "application/octet-stream" }, "sourcemesh.release/v1 wrk " .. counter .. " " .. pad)
end
`);
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn('wrk', ['-t1', `-c${clients}`, `-d${seconds}s`, '--latency', '-s', script, `${log.url}/add`], { stdio: ['ignore', 'pipe', 'inherit'] });
      let text = '';
      child.stdout.on('data', (d) => (text += d));
      child.on('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`wrk exited with ${code}`))));
    });
    const num = (re: RegExp) => Number(re.exec(out)?.[1] ?? NaN);
    wrkResult = {
      rate: num(/Requests\/sec:\s+([\d.]+)/),
      p50: /\s50%\s+(\S+)/.exec(out)?.[1] ?? '?',
      p99: /\s99%\s+(\S+)/.exec(out)?.[1] ?? '?',
      requests: num(/(\d+) requests in/),
      errors: num(/Non-2xx or 3xx responses: (\d+)/) || 0,
    };
  }
  const latencies: number[] = [];
  const t0 = performance.now();
  const appended = await run(seconds * 1000, latencies);
  const elapsed = (performance.now() - t0) / 1000;
  const rate = appended.ok / elapsed;
  await new Promise((r) => setTimeout(r, 2500)); // the last checkpoint of the run
  await pool.close();
  const published = [...log.stderr().matchAll(/"msg":"checkpoint published"/g)].length - publishedBefore;
  const signed = [...log.stderr().matchAll(/"msg":"checkpoint signed"/g)].length - signedBefore;
  const cpText = await (await request(`${log.url}/checkpoint`)).body.text();
  const cp = openCheckpoint(cpText, [createVerifier(parseVerifierKey(logKey.vkey)), ...w.map((k) => createVerifier(parseVerifierKey(k.vkey)))]);
  const size = cp.checkpoint.size;
  if (cp.note.verified.length !== 3) throw new Error('the published checkpoint lacks a cosignature');
  // Every acknowledged entry is in the tree (wrk may leave a few unanswered at the end: more, never fewer).
  const acknowledged = appended.ok + (wrkResult ? wrkResult.requests - wrkResult.errors : 0);
  if (size - sizeBefore < acknowledged) throw new Error(`the tree grew by ${size - sizeBefore}, but ${acknowledged} appends were acknowledged`);

  // ---- 2. proof verification, on proofs computed from the log's tiles on disk
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
    const index = Math.floor(Math.random() * size);
    inclusion.push({ index, leaf: leafHash(await bundleEntries(index)), proof: await proveInclusion(index, size, disk) });
  }
  const consistency: { old: number; oldRoot: Hash; proof: Hash[] }[] = [];
  for (let i = 0; i < SAMPLES / 4; i++) {
    const old = 1 + Math.floor(Math.random() * (size - 1));
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
  if (wrkResult) {
    console.log(`appends, wrk (-t1 -c${clients}): ${fmt(wrkResult.rate, 0)} entries/s (${wrkResult.requests} in ${seconds} s, ${wrkResult.errors} not 200); latency p50 ${wrkResult.p50}, p99 ${wrkResult.p99}   goal >= 10,000/s: ${ok(wrkResult.rate >= 10_000)}`);
  } else {
    console.log('appends, wrk: skipped (wrk not installed)');
  }
  console.log(`appends, undici from this process (${clients} connections): ${fmt(rate, 0)} entries/s (${appended.ok} in ${fmt(elapsed, 2)} s, ${appended.busy} answered 503 busy); latency p50 ${fmt(percentile(latencies, 50), 2)} ms, p99 ${fmt(percentile(latencies, 99), 2)} ms   goal >= 10,000/s: ${ok(rate >= 10_000)}`);
  console.log(`  every answer came after durable storage; checkpoints meanwhile: ${signed} signed, ${published} published with 2 of 2 cosignatures; tree ${sizeBefore} -> ${size} entries`);
  console.log(`inclusion proof verification: ${fmt(inclusionUs, 2)} µs (proofs of ${proofLength} hashes)   goal < 100 µs: ${ok(inclusionUs < 100)}`);
  console.log(`consistency proof verification: ${fmt(consistencyUs, 2)} µs   goal < 100 µs: ${ok(consistencyUs < 100)}`);
  console.log(`witness cosignature round trip (add-checkpoint, loopback, ${roundTrips.length} requests): p50 ${fmt(percentile(roundTrips, 50), 2)} ms, p99 ${fmt(percentile(roundTrips, 99), 2)} ms`);
  for (const line of rotationCatchUp(Number(process.env.BENCH_ROTATION_STEPS ?? 1000))) console.log(line);
} finally {
  stopAll();
  if (!process.env.BENCH_DIR) await rm(work, { recursive: true, force: true });
}
