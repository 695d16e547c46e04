// npm run bench:swarm (as root): four leechers fetching one large file at once from a swarm with one
// seeder and one mirror, across network namespaces (test/helpers/netns.ts): sourcemesh's leechers
// (`fetch --bittorrent`, as users run it) against libtorrent 2.0.8's (bench/lib/libtorrent-leech.py) in
// the same setup and the same run, the order alternating. The seeder (`sourcemesh seed`) and the mirror
// (`sourcemesh serve`, the torrent's BEP 19 web seed) are throttled to the same rate by a token bucket
// filter (tc tbf) on their uplinks; leechers' links are not throttled.
//
// Measured per side and run: the time until all four leechers have the file (from spawning them, Node and
// Python start-up counted, to the last exit; a run counts only when all four succeeded), the share of the
// bytes that came from other leechers (1 - bytes the seeder and the mirror sent, at their tc counters,
// headers included, over 4 x the file), and each leecher's peak RSS (GNU time). The seeder's and the
// mirror's peak RSS (VmHWM) at the end. Each leecher exits once it has the file (fetch does; the
// libtorrent driver does the same), so neither side's leechers seed after they are done.
//
// Every sourcemesh process (torrent create, seed, serve, the leechers) is the compiled CLI run by
// bin/sourcemesh.js as `npx sourcemesh` runs it (bench/lib/cli.ts, `--cli build`), not src/ with type
// stripping, which costs start-up and some 35 MiB of RSS per process that users never pay.
//
//   node bench/swarm.ts [--size-mib 1024] [--rate-mbs 20] [--runs 2] [--cli build|src|dist] [--cpu-prof DIR]
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { link, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { canMakeNamespaces, makeNetwork, type NetNode } from '../test/helpers/netns.ts';
import { benchArgs } from './lib/args.ts';
import { prepareCli, type CliMode } from './lib/cli.ts';
import { cleanup, onCleanup } from './lib/cleanup.ts';
import { ensureFile, ensureOwnDir, sha256File } from './lib/files.ts';
import { cpuPressureMicros, describeMachine, formatMachine } from './lib/machine.ts';
import { hasGnuTime, measure, median, type Measured } from './lib/measure.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const LEECH_PY = path.join(ROOT, 'bench/lib/libtorrent-leech.py');
const { values, usage, count } = benchArgs('swarm', {
  'size-mib': { type: 'string', default: '1024' },
  'rate-mbs': { type: 'string', default: '20' },
  runs: { type: 'string', default: '2' },
  cli: { type: 'string', default: process.env.BENCH_CLI ?? 'build' },
  // Exploration only: our leechers write V8 CPU profiles (node --cpu-prof) into this directory.
  'cpu-prof': { type: 'string' },
});
if (!['build', 'src', 'dist'].includes(values.cli)) usage(`--cli ${values.cli}: expected build, src or dist`);
const size = count('size-mib', values['size-mib']) * 1024 * 1024;
const rate = count('rate-mbs', values['rate-mbs']) * 1_000_000;
const runs = count('runs', values.runs);
const why = canMakeNamespaces();
if (why) usage(why);
if (!hasGnuTime()) usage('needs GNU time for peak RSS (apt-get install time)');

const NAME = 'swarm-bench-1.0.tar';
const LEECHERS = ['l1', 'l2', 'l3', 'l4'] as const;
const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;

/** Bytes a node's uplink sent (tc's counter of the qdisc on eth0). */
function sent(node: NetNode): number {
  const out = execFileSync('ip', ['netns', 'exec', node.ns, 'tc', '-s', 'qdisc', 'show', 'dev', 'eth0'], { encoding: 'utf8' });
  return Number(/Sent (\d+) bytes/.exec(out)?.[1] ?? NaN);
}

/** Peak RSS of a running process (VmHWM), in bytes. */
function peakRss(pid: number): number {
  return Number(/^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) * 1024;
}

interface RunResult {
  side: 'sourcemesh' | 'libtorrent';
  ok: boolean;
  seconds: number;
  leecherShare: number;
  maxRss: number;
  note: string;
}

async function main(): Promise<void> {
  const base = process.env.BENCH_DIR ?? path.join(os.tmpdir(), 'sourcemesh-bench-swarm');
  await ensureOwnDir(base);
  // Made once and kept (bench/lib/files.ts); the mirror root holds a hard link (its sidecar would be seeded and served too).
  const file = await ensureFile(path.join(base, 'files'), { name: NAME, size, seed: 1515 }, (l) => console.error(l));
  const root = path.join(base, 'root');
  await rm(root, { recursive: true, force: true });
  await mkdir(root, { recursive: true });
  await link(file.path, path.join(root, NAME));
  const work = path.join(base, 'work');
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  onCleanup(() => rm(work, { recursive: true, force: true }));
  const cli = await prepareCli(ROOT, work, values.cli as CliMode);
  for (const w of cli.warnings) console.log(`WARNING: ${w}`);
  const [node, ...cliArgs] = cli.argv;

  const afters: (() => Promise<void> | void)[] = [];
  onCleanup(async () => { for (const f of afters.reverse()) await f(); });
  const hub = makeNetwork({ after: (f) => afters.push(f) }, ['seed', 'mirror', ...LEECHERS]);
  const { seed: seedNode, mirror: mirrorNode } = hub.nodes;
  const leechNodes = LEECHERS.map((n) => hub.nodes[n]);
  const mirrorUrl = `http://${mirrorNode.address}:8080/`;

  // The manifest pins what torrent create fills (merkleRoot); upstream is unreachable on purpose.
  const bare = path.join(work, 'manifest.json');
  await writeFile(bare, JSON.stringify({ format: 'sourcemesh.manifest/v1', name: 'swarm-bench', distfiles: [{ name: NAME, sha256: file.sha256, size, urls: ['http://127.0.0.1:9/gone'] }] }, null, 2));
  const manifest = path.join(work, 'pinned.json');
  execFileSync(node!, [...cliArgs, 'torrent', 'create', bare, '--root', root, '-o', path.join(work, 't'), '--manifest-out', manifest, '--web-seed', mirrorUrl], { stdio: ['ignore', 'ignore', 'inherit'] });
  const torrent = path.join(work, 't', `${NAME}.torrent`);

  const seed = hub.spawn(seedNode, node!, [...cliArgs, 'seed', '--root', root, '--listen', `${seedNode.address}:6881`]);
  const mirror = hub.spawn(mirrorNode, node!, [...cliArgs, 'serve', '--root', root, '--listen', `${mirrorNode.address}:8080`, '--no-access-log']);
  await seed.waitStderr(/seeding \d+ file/, 300_000);
  await mirror.waitStderr(/serving .* at http/, 300_000);
  // The same cap on both uplinks: a token bucket of `rate` bytes per second.
  for (const n of [seedNode, mirrorNode]) {
    execFileSync('ip', ['netns', 'exec', n.ns, 'tc', 'qdisc', 'add', 'dev', 'eth0', 'root', 'tbf', 'rate', `${rate * 8}bit`, 'burst', String(Math.max(64 * 1024, Math.round(rate / 100))), 'latency', '100ms']);
  }
  const seedPeer = `${seedNode.address}:6881`;

  console.log(`bench:swarm ${new Date().toISOString()} on ${formatMachine(describeMachine())}`);
  console.log(`sourcemesh: ${cli.describe}`);
  console.log(`${mib(size)} file; seeder and mirror each capped at ${(rate / 1e6).toFixed(0)} MB/s (tc tbf); 4 leechers; ${runs} run(s) per side, order alternating`);
  const psi0 = cpuPressureMicros();
  const t0 = Date.now();
  const results: RunResult[] = [];

  const runSide = async (side: RunResult['side'], run: number): Promise<RunResult> => {
    const dir = path.join(work, `${side}-${run}`);
    await mkdir(dir, { recursive: true });
    const before = sent(seedNode) + sent(mirrorNode);
    const started = performance.now();
    const measured: Measured[] = await Promise.all(leechNodes.map((n, i) => {
      const others = leechNodes.filter((o) => o !== n).map((o) => `${o.address}:6881`);
      const out = path.join(dir, `l${i}`);
      if (side === 'sourcemesh') {
        return measure('ip', ['netns', 'exec', n.ns, node!, ...(values['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', path.resolve(values['cpu-prof'])] : []), ...cliArgs, 'fetch', manifest, '--store', path.join(out, 'store'), '-o', out, '--json',
          '--mirror', mirrorUrl, '--bittorrent', '--torrent', torrent, '--listen', `${n.address}:6881`, '--peer', seedPeer, ...others.flatMap((p) => ['--peer', p])], { cwd: ROOT, captureBytes: 1 << 16 });
      }
      return mkdir(out, { recursive: true }).then(() => measure('ip', ['netns', 'exec', n.ns, '/usr/bin/python3', LEECH_PY, torrent, out, `${n.address}:6881`, '900', seedPeer, ...others], { cwd: ROOT, captureBytes: 1 << 16 }));
    }));
    const seconds = (performance.now() - started) / 1000;
    const fromSources = sent(seedNode) + sent(mirrorNode) - before;
    const ok = measured.every((m) => m.code === 0);
    let note = ok ? '' : measured.map((m, i) => (m.code === 0 ? '' : `l${i + 1} exit ${m.code}: ${m.stderr.trim().split('\n').at(-1)}`)).filter(Boolean).join('; ');
    if (ok) {
      // Outside the time: one leecher's file hashed again here, as a check on the whole setup.
      if ((await sha256File(path.join(dir, 'l0', NAME))) !== file.sha256) note = 'l1 has a file with another sha256';
    }
    if (side === 'sourcemesh' && ok) {
      const peerBytes = measured.map((m) => {
        const r = JSON.parse(m.stdout) as { files: { contributors: { source: string; bytes: number }[] }[] };
        return r.files[0]!.contributors.filter((c) => leechNodes.some((o) => c.source === `peer ${o.address}:6881`)).reduce((s, c) => s + c.bytes, 0);
      });
      note = `by its reports, from other leechers: ${(peerBytes.reduce((a, b) => a + b, 0) / (4 * size) * 100).toFixed(1)}%`;
    }
    await rm(dir, { recursive: true, force: true });
    const r: RunResult = { side, ok: ok && !note.startsWith('l1 has'), seconds, leecherShare: 1 - fromSources / (4 * size), maxRss: Math.max(...measured.map((m) => m.maxRssBytes ?? NaN)), note };
    console.log(`run ${run + 1} ${side.padEnd(10)} ${r.ok ? 'ok  ' : 'FAIL'} ${seconds.toFixed(1)} s, leechers' share ${(r.leecherShare * 100).toFixed(1)}%, peak RSS per leecher ${mib(r.maxRss)} (${measured.map((m) => mib(m.maxRssBytes ?? NaN)).join(', ')}), CPU s per leecher ${measured.map((m) => (m.cpuSeconds ?? NaN).toFixed(1)).join(', ')}${r.note ? `; ${r.note}` : ''}`);
    return r;
  };

  for (let run = 0; run < runs; run++) {
    const order: RunResult['side'][] = run % 2 === 0 ? ['sourcemesh', 'libtorrent'] : ['libtorrent', 'sourcemesh'];
    for (const side of order) results.push(await runSide(side, run));
  }
  const psi1 = cpuPressureMicros();
  const wall = (Date.now() - t0) / 1000;
  const seedRss = peakRss(seed.child.pid!);
  const mirrorRss = peakRss(mirror.child.pid!);

  const side = (s: RunResult['side']) => results.filter((r) => r.side === s && r.ok);
  const ours = side('sourcemesh');
  const theirs = side('libtorrent');
  const line = (name: string, rs: RunResult[]) => rs.length
    ? `${name.padEnd(10)} all four done: median ${median(rs.map((r) => r.seconds)).toFixed(1)} s (range ${Math.min(...rs.map((r) => r.seconds)).toFixed(1)}..${Math.max(...rs.map((r) => r.seconds)).toFixed(1)}, ${rs.length} ok run(s)); leechers' share median ${(median(rs.map((r) => r.leecherShare)) * 100).toFixed(1)}%; peak RSS per leecher at most ${mib(Math.max(...rs.map((r) => r.maxRss)))}`
    : `${name.padEnd(10)} no successful run`;
  console.log(line('sourcemesh', ours));
  console.log(line('libtorrent', theirs));
  if (ours.length && theirs.length) {
    console.log(`ratio sourcemesh / libtorrent (swarm completion time, medians): ${(median(ours.map((r) => r.seconds)) / median(theirs.map((r) => r.seconds))).toFixed(2)} (goal <= 1.0; leechers' share goal >= 40%; RSS goal < 200 MB)`);
  }
  console.log(`seeder peak RSS ${mib(seedRss)}, mirror peak RSS ${mib(mirrorRss)}; ${wall.toFixed(0)} s in all`);
  if (psi0 !== undefined && psi1 !== undefined) console.log(`CPU pressure (some tasks waiting for a CPU): ${(((psi1 - psi0) / 1e6 / wall) * 100).toFixed(0)}% of the time`);
}

try {
  await main();
} finally {
  await cleanup();
}
