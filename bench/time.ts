// npm run bench:time: the two figures of issue 18, on loopback.
//   1. Roughtime requests per second one witness answers: `witness serve --roughtime` as users run it (the
//      compiled CLI, its own process, with --roughtime-rate 0: the load comes from one address, which the
//      per-client limit would otherwise hold to 10/s), loaded by this process over UDP with a window of requests in
//      flight on several sockets. Only answers that match a request in flight count, and every 50th is
//      fully verified (signatures, Merkle path); one failed check stops the benchmark. Goal: 20,000/s.
//   2. The client's 2-of-3 query: three such witnesses, the measurement as `sourcemesh time` makes it (two
//      chained rounds of three requests, every answer verified, then the judgement), in process, repeated;
//      and `sourcemesh time --json` as users run it, start-up counted. Goal: the query under 10 ms.
//      The same query over TCP (`witness serve --roughtime-tcp`, policy "protocol": "tcp"): one connection
//      per witness per measurement, its handshake counted.
// No other Roughtime implementation is installed here to run against in the same run; the figures stand
// alone. Prints medians with ranges, the machine and the CPU pressure.
//
//   node bench/time.ts [--seconds N] [--runs N] [--queries N] [--window N] [--sockets N] [--cli build|src|dist] [--dir DIR]
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { measure } from '../src/time/client.ts';
import { judge } from '../src/time/measure.ts';
import { buildRequest, verifyResponse } from '../src/time/protocol.ts';
import { decodeMessage, decodePacket, TAG } from '../src/time/wire.ts';
import { formatSignerKey, formatVerifierKey, KEY_TYPE_COSIGNATURE_V1, KEY_TYPE_ED25519, signerKeyFromSeed, type SignerKey } from '../src/trust/note.ts';
import { benchArgs } from './lib/args.ts';
import { cleanup, onCleanup } from './lib/cleanup.ts';
import { prepareCli, type CliMode } from './lib/cli.ts';
import { ensureOwnDir } from './lib/files.ts';
import { cpuPressureMicros, describeMachine, formatMachine } from './lib/machine.ts';
import { median } from './lib/measure.ts';
import { stopChild } from './lib/nginx.ts';

const { values: flags, count } = benchArgs('time', {
  seconds: { type: 'string', default: '5' },
  runs: { type: 'string', default: '3' },
  queries: { type: 'string', default: '200' },
  window: { type: 'string', default: '64' },
  sockets: { type: 'string', default: '4' },
  cli: { type: 'string', default: 'build' },
  dir: { type: 'string', default: path.join(os.tmpdir(), 'sourcemesh-bench-time') },
});
const seconds = count('seconds', flags.seconds);
const runs = count('runs', flags.runs);
const queries = count('queries', flags.queries);
const window = count('window', flags.window);
const socketCount = count('sockets', flags.sockets);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const work = path.resolve(flags.dir);
await ensureOwnDir(work);
const cli = await prepareCli(root, work, flags.cli as CliMode);
for (const w of cli.warnings) console.log(`warning: ${w}`);

interface Witness { key: SignerKey; address: string; tcpAddress: string; child: ChildProcess }

async function startWitness(i: number): Promise<Witness> {
  const dir = path.join(work, `w${i}`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const key = signerKeyFromSeed(`w${i}.bench.time`, KEY_TYPE_COSIGNATURE_V1, randomBytes(32));
  const log = signerKeyFromSeed('log.bench.time', KEY_TYPE_ED25519, randomBytes(32));
  await writeFile(path.join(dir, 'w.key'), `${formatSignerKey(key)}\n`, { mode: 0o600 });
  const child = spawn(cli.argv[0]!, [...cli.argv.slice(1), 'witness', 'serve', '--state', dir, '--key', path.join(dir, 'w.key'), '--listen', '127.0.0.1:0', '--log', formatVerifierKey(log), '--roughtime', '127.0.0.1:0', '--roughtime-tcp', '127.0.0.1:0', '--roughtime-rate', '0', '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'inherit'] });
  onCleanup(() => stopChild(child), () => child.kill('SIGKILL'));
  const [address, tcpAddress] = await new Promise<[string, string]>((resolve, reject) => {
    let out = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => {
      out += d;
      const m = /roughtime on udp (\S+)\n/.exec(out);
      const t = /roughtime on tcp (\S+)\n/.exec(out);
      if (m && t) resolve([m[1]!, t[1]!]);
    });
    child.once('exit', (code) => reject(new Error(`witness ${i} exited with ${code}: ${out}`)));
  });
  return { key, address, tcpAddress, child };
}

/** Requests answered per second by one witness, with `window` in flight on each of `socketCount` sockets. */
async function throughput(w: Witness): Promise<{ perSecond: number; verified: number }> {
  const [host, port] = [w.address.slice(0, w.address.lastIndexOf(':')), Number(w.address.slice(w.address.lastIndexOf(':') + 1))];
  const pool = Array.from({ length: 4096 }, () => buildRequest(randomBytes(32), { publicKey: w.key.publicKey }));
  const nonceOf = (p: Buffer) => decodeMessage(decodePacket(p, 'r'), 'r').get(TAG.NONC)!.toString('latin1');
  const byNonce = new Map(pool.map((p) => [nonceOf(p), p]));
  let answered = 0;
  let verified = 0;
  let counting = false;
  let next = 0;
  const sockets: dgram.Socket[] = [];
  const inFlight = new Map<dgram.Socket, Map<string, number>>();
  const send = (s: dgram.Socket) => {
    const p = pool[next++ % pool.length]!;
    inFlight.get(s)!.set(nonceOf(p), performance.now());
    s.send(p, port, host);
  };
  for (let i = 0; i < socketCount; i++) {
    const s = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
    await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', () => resolve()));
    inFlight.set(s, new Map());
    s.on('message', (msg) => {
      const m = decodeMessage(decodePacket(msg, 'response'), 'response');
      const nonce = m.get(TAG.NONC)!.toString('latin1');
      const mine = inFlight.get(s)!;
      if (!mine.delete(nonce)) return; // a late answer to a request already given up: not counted
      if (counting) {
        answered++;
        if (answered % 50 === 0) {
          verifyResponse(byNonce.get(nonce)!, msg, w.key.publicKey);
          verified++;
        }
      }
      send(s);
    });
    sockets.push(s);
  }
  // Lost datagrams (a full socket buffer) shrink the window: requests unanswered for 200 ms are given up.
  const refill = setInterval(() => {
    const now = performance.now();
    for (const s of sockets) {
      const mine = inFlight.get(s)!;
      for (const [n, at] of mine) if (now - at > 200) mine.delete(n);
      while (mine.size < window) send(s);
    }
  }, 20);
  for (const s of sockets) for (let i = 0; i < window; i++) send(s);
  await new Promise((r) => setTimeout(r, 500)); // warm-up
  counting = true;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  counting = false;
  const elapsed = (performance.now() - t0) / 1000;
  clearInterval(refill);
  for (const s of sockets) s.close();
  return { perSecond: answered / elapsed, verified };
}

const machine = describeMachine();
const p0 = cpuPressureMicros();
const t0 = performance.now();
const witnesses = await Promise.all([1, 2, 3].map(startWitness));
const servers = witnesses.map((w, i) => ({ name: `w${i + 1}`, address: w.address, publicKey: w.key.publicKey }));

const rates: number[] = [];
for (let r = 0; r < runs; r++) {
  const { perSecond, verified } = await throughput(witnesses[r % 3]!);
  rates.push(perSecond);
  console.log(`run ${r + 1}: ${Math.round(perSecond).toLocaleString('en')} requests/s answered by one witness (${verified} verified in full)`);
}

const queryMs: number[] = [];
for (let q = 0; q < queries; q++) {
  const s = performance.now();
  const m = await measure(servers);
  const j = judge(m.chain.map((e) => ({ server: e.server, sent: e.sent, received: e.received, midpoint: Number(e.verified.midpoint), radius: e.verified.radius })), 2, m.at);
  queryMs.push(performance.now() - s);
  if (m.chain.length !== 6 || j.agreed.length !== 3) throw new Error(`query ${q}: ${m.chain.length} answers, ${j.agreed.length} agreed, failed ${JSON.stringify(m.failed)}`);
}

const tcpServers = witnesses.map((w, i) => ({ name: `w${i + 1}`, address: w.tcpAddress, publicKey: w.key.publicKey, protocol: 'tcp' as const }));
const tcpQueryMs: number[] = [];
for (let q = 0; q < queries; q++) {
  const s = performance.now();
  const m = await measure(tcpServers);
  const j = judge(m.chain.map((e) => ({ server: e.server, sent: e.sent, received: e.received, midpoint: Number(e.verified.midpoint), radius: e.verified.radius })), 2, m.at);
  tcpQueryMs.push(performance.now() - s);
  if (m.chain.length !== 6 || j.agreed.length !== 3) throw new Error(`tcp query ${q}: ${m.chain.length} answers, ${j.agreed.length} agreed, failed ${JSON.stringify(m.failed)}`);
}

const policy = path.join(work, 'policy.json');
const release = signerKeyFromSeed('release.bench.time', KEY_TYPE_ED25519, randomBytes(32));
await writeFile(policy, JSON.stringify({
  format: 'sourcemesh.policy/v1', log: { vkey: formatVerifierKey(signerKeyFromSeed('log.bench.time', KEY_TYPE_ED25519, randomBytes(32))) },
  witnesses: { quorum: 2, vkeys: witnesses.map((w) => formatVerifierKey(w.key)) }, release: { threshold: 1, vkeys: [formatVerifierKey(release)] },
  maxCheckpointAgeSeconds: 3600, time: { roughtime: witnesses.map((w) => ({ witness: w.key.name, address: w.address })), quorum: 2 },
}));
const cliMs: number[] = [];
for (let r = 0; r < Math.max(5, runs); r++) {
  const s = performance.now();
  const out = spawnSync(cli.argv[0]!, [...cli.argv.slice(1), 'time', '--trust-policy', policy, '--state', path.join(work, 'state'), '--json'], { encoding: 'utf8' });
  cliMs.push(performance.now() - s);
  if (out.status !== 0 || JSON.parse(out.stdout).agreed.length !== 3) throw new Error(`sourcemesh time failed (${out.status}): ${out.stderr}`);
}
const p1 = cpuPressureMicros();
const wall = (performance.now() - t0) / 1000;
await cleanup();

const range = (xs: number[], f: (x: number) => string) => `${f(Math.min(...xs))} .. ${f(Math.max(...xs))}`;
const int = (x: number) => Math.round(x).toLocaleString('en');
const ms = (x: number) => x.toFixed(2);
console.log('');
console.log(`bench:time ${new Date().toISOString()}  ${formatMachine(machine)}`);
console.log(`cli: ${cli.describe}`);
console.log(`witness throughput (batched, ${socketCount} sockets x ${window} in flight, ${seconds} s x ${runs}): median ${int(median(rates))} requests/s (range ${range(rates, int)}); goal 20,000/s: ${median(rates) >= 20_000 ? 'met' : 'missed'} (x${(median(rates) / 20_000).toFixed(2)})`);
console.log(`client 2-of-3 query (two chained rounds, 6 answers verified, judged; ${queries} queries): median ${ms(median(queryMs))} ms (range ${range(queryMs, ms)}); goal < 10 ms: ${median(queryMs) < 10 ? 'met' : 'missed'}`);
console.log(`client 2-of-3 query over TCP (a connection per witness, handshake counted; ${queries} queries): median ${ms(median(tcpQueryMs))} ms (range ${range(tcpQueryMs, ms)}); goal < 10 ms: ${median(tcpQueryMs) < 10 ? 'met' : 'missed'}`);
console.log(`sourcemesh time --json as users run it (start-up counted, ${cliMs.length} runs): median ${ms(median(cliMs))} ms (range ${range(cliMs, ms)})`);
if (p0 !== undefined && p1 !== undefined) console.log(`CPU pressure: some task waited for a CPU ${((p1 - p0) / 1e6 / wall * 100).toFixed(1)}% of the ${wall.toFixed(1)} s`);
