// npm run bench:discovery (as root): how fast nodes find each other without a central list.
//
// LAN: two network namespaces on one segment (test/helpers/netns.ts). A browser runs in one for the
// whole benchmark (bench/lib/discovery-watch.ts, discoverNodes with a callback per checked node); for each
// run the other starts `sourcemesh serve --announce` as users run it (the compiled CLI through
// bin/sourcemesh.js, bench/lib/cli.ts; Node start-up, indexing, key, the names' probing and the first
// announcement all counted) on a new port, and the time is from spawning it to the browser having
// fetched and verified its signed inventory. Only runs whose node was found and checked count.
//
// DHT: a private DHT of --dht-nodes bittorrent-dht nodes in this process on loopback; for each run a
// BEP 44 mutable item (a mirror-list pointer) is put from one node and got from another chosen at random;
// the time of the get (put-to-get: the get starts when the put has been acknowledged) and the UDP
// datagrams every node sent during the put and during the get.
//
// No peer tool runs in the same benchmark: the reference is Syncthing's 30 s announce interval
// (a node started between two announcements waits up to that long), and avahi needs a daemon per
// namespace with its own /run; docs/BENCHMARKS.md says so.
//
//   node bench/discovery.ts [--runs 50] [--dht-nodes 50] [--dht-runs 50] [--only lan|dht] [--cli build|src|dist]
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DhtNode } from '../src/discovery/dht.ts';
import { limitsWith } from '../src/limits.ts';
import { KEY_TYPE_ED25519, signerKeyFromSeed } from '../src/trust/note.ts';
import { canMakeNamespaces, makeNetwork } from '../test/helpers/netns.ts';
import { benchArgs } from './lib/args.ts';
import { prepareCli, type CliMode } from './lib/cli.ts';
import { cleanup, onCleanup } from './lib/cleanup.ts';
import { cpuPressureMicros, describeMachine, formatMachine } from './lib/machine.ts';
import { median } from './lib/measure.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values, usage, count } = benchArgs('discovery', {
  runs: { type: 'string', default: '50' },
  'dht-nodes': { type: 'string', default: '50' },
  'dht-runs': { type: 'string', default: '50' },
  only: { type: 'string' },
  cli: { type: 'string', default: 'build' },
});
if (!['build', 'src', 'dist'].includes(values.cli)) usage(`--cli ${values.cli}: expected build, src or dist`);
const runs = count('runs', values.runs);
const dhtNodes = count('dht-nodes', values['dht-nodes']);
const dhtRuns = count('dht-runs', values['dht-runs']);
if (values.only !== undefined && values.only !== 'lan' && values.only !== 'dht') usage('--only lan|dht');

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)]!;
const summary = (xs: number[]) => `median ${median(xs).toFixed(0)} ms, p99 ${pct(xs, 99).toFixed(0)} ms, range ${Math.min(...xs).toFixed(0)}..${Math.max(...xs).toFixed(0)} ms (${xs.length} runs)`;

async function lan(): Promise<void> {
  const why = canMakeNamespaces();
  if (why) usage(`the LAN part ${why}`);
  const afters: (() => Promise<void> | void)[] = [];
  onCleanup(async () => { for (const f of afters.reverse()) await f(); });
  const link = makeNetwork({ after: (f) => afters.push(f) }, ['a', 'b']);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sourcemesh-bench-discovery-'));
  onCleanup(() => rm(dir, { recursive: true, force: true }));
  const root = path.join(dir, 'root');
  await mkdir(root);
  await writeFile(path.join(root, 'hello-1.0.tar.gz'), 'hello\n');
  const cli = await prepareCli(ROOT, dir, values.cli as CliMode);
  for (const w of cli.warnings) console.log(`WARNING: ${w}`);
  console.log(`sourcemesh: ${cli.describe}`);
  const watch = link.spawn(link.nodes.b, process.execPath, [path.join(ROOT, 'bench/lib/discovery-watch.ts'), String(runs * 30 + 60)]);
  await watch.waitStderr(/watching/);
  const times: number[] = [];
  const fromAnnounce: number[] = [];
  let missed = 0;
  for (let i = 0; i < runs; i++) {
    const port = 9000 + i;
    const url = `http://${link.nodes.a.address}:${port}`;
    const t0 = Date.now();
    const node: ChildProcess = spawn('ip', ['netns', 'exec', link.nodes.a.ns, ...cli.argv, 'serve', '--root', root, '--listen', `0.0.0.0:${port}`, '--no-access-log', '--announce'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let announced: number | undefined;
    let err = '';
    node.stderr!.on('data', (d) => {
      err += d;
      if (announced === undefined && err.includes('announcing')) announced = Date.now();
    });
    const found = await new Promise<number | undefined>((resolve) => {
      const check = () => {
        for (const line of watch.stdout().split('\n')) {
          if (line.includes(`"url":"${url}"`)) return done(JSON.parse(line).at as number);
        }
      };
      const timer = setTimeout(() => done(undefined), 20_000);
      const done = (at: number | undefined) => {
        clearTimeout(timer);
        watch.child.stdout!.off('data', check);
        resolve(at);
      };
      watch.child.stdout!.on('data', check);
      check();
    });
    node.kill('SIGTERM');
    await new Promise((r) => node.once('close', r));
    if (found === undefined) missed++;
    else {
      times.push(found - t0);
      if (announced !== undefined) fromAnnounce.push(Math.max(0, found - announced));
    }
  }
  console.log(`LAN discovery, spawn of serve --announce to found and checked: ${summary(times)}; missed ${missed}`);
  console.log(`  of which from its "announcing" line (start-up and indexing done) to found and checked: ${summary(fromAnnounce)}`);
}

async function dht(): Promise<void> {
  const limits = limitsWith({ dhtQueryTimeoutMs: 20_000 });
  const nodes: DhtNode[] = [await DhtNode.start({ bootstrap: [], host: '127.0.0.1', limits })];
  onCleanup(() => Promise.all(nodes.map((n) => n.close())).then(() => undefined));
  while (nodes.length < dhtNodes) {
    const boot = [nodes[0]!.address(), ...nodes.slice(-3).map((x) => x.address())];
    nodes.push(...await Promise.all(Array.from({ length: Math.min(5, dhtNodes - nodes.length) }, () => DhtNode.start({ bootstrap: boot, host: '127.0.0.1', limits }))));
  }
  const key = signerKeyFromSeed('bench', KEY_TYPE_ED25519, Buffer.alloc(32, 9));
  const packets = () => nodes.reduce((n, x) => n + x.packets.sent, 0);
  const gets: number[] = [];
  const putPackets: number[] = [];
  const getPackets: number[] = [];
  let failed = 0;
  for (let i = 0; i < dhtRuns; i++) {
    const from = nodes[i % nodes.length]!;
    const to = nodes[(i * 7 + 13) % nodes.length]!;
    const salt = Buffer.from(`bench-${i}-${Date.now()}`);
    const value = Buffer.from(JSON.stringify({ format: 'sourcemesh.mirrors-pointer/v1', sha256: '0'.repeat(64), size: 100, urls: ['https://lists.example.org/x.json'] }));
    const p0 = packets();
    await from.putMutable({ seed: key.seed, publicKey: key.publicKey, value, seq: 1, salt });
    const p1 = packets();
    const t0 = performance.now();
    const got = await to.getMutable(key.publicKey, salt).catch(() => undefined);
    const ms = performance.now() - t0;
    if (!got || !got.value.equals(value)) {
      failed++;
      continue;
    }
    gets.push(ms);
    putPackets.push(p1 - p0);
    getPackets.push(packets() - p1);
  }
  console.log(`DHT (${nodes.length} nodes on loopback) put-to-get: ${summary(gets)}; failed ${failed}`);
  console.log(`  datagrams sent by all nodes: put median ${median(putPackets)}, get median ${median(getPackets)} (range ${Math.min(...getPackets)}..${Math.max(...getPackets)})`);
}

try {
  console.log(`bench:discovery ${new Date().toISOString()} on ${formatMachine(describeMachine())}`);
  const psi0 = cpuPressureMicros();
  const t0 = performance.now();
  if (values.only !== 'dht') await lan();
  if (values.only !== 'lan') await dht();
  const psi1 = cpuPressureMicros();
  if (psi0 !== undefined && psi1 !== undefined) console.log(`CPU pressure during the run: some task waited ${(((psi1 - psi0) / 1000) / (performance.now() - t0) * 100).toFixed(1)}% of the time`);
} finally {
  await cleanup();
}
