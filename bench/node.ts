// bench:node (issue 17): two figures of a node, each in the same run as its peer.
//  1. Panel latency while the node serves at full speed: wrk downloads a 1 MiB file from the node's serve
//     with 8 connections; meanwhile one logged-in client fetches panel pages (/ and /mirror, which read the
//     node's status) one after another; p50 and p99 of those, and the same without load for reference.
//  2. Clone time of a mirror (default 2 GiB in 16 files) against an rsync daemon on 127.0.0.1 serving the
//     same directory: `sourcemesh node clone PANEL --to DIR` (every byte verified by sha256 against the
//     signed inventory, new keys) against `rsync -a rsync://127.0.0.1:PORT/mirror/ DIR` (which verifies
//     nothing beyond its transfer checksum), alternating which goes first, whole processes started as users
//     start them; the ratio is rsync's time over ours (throughput ours/rsync; goal at least 0.8). A third
//     contender, `rsync -a --fsync`, makes every file durable as the clone does (one fsync per file before
//     its final name), and is the like-for-like reference. Each run records the client's CPU (GNU time)
//     and the whole machine's (/proc/stat: the serving side included), and the disk's flushed write rate.
//
//  --profile DIR: after the timed runs, one more clone (not counted) with `--cpu-prof` into DIR/cpu (the
//     clone's process and its threads) and one under `strace -c -f` (DIR/strace.txt): where its time goes.
//
//   npm run bench:node -- [--size-mib 2048] [--files 16] [--runs 3] [--panel-requests 400] [--load-seconds 30] [--cli build|src|dist] [--profile DIR] [--json]
import { spawn, spawnSync } from 'node:child_process';
import { readFile, rm, writeFile, link, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { request, Agent } from '../src/net/undici.ts';
import { benchArgs } from './lib/args.ts';
import { cleanup, onCleanup } from './lib/cleanup.ts';
import { prepareCli } from './lib/cli.ts';
import { ensureFile, ensureOwnDir } from './lib/files.ts';
import { cpuPressureMicros, describeMachine, diskWriteMiBs, formatMachine } from './lib/machine.ts';
import { measure, median } from './lib/measure.ts';
import { freePort, stopChild, waitForPort } from './lib/nginx.ts';
import { countWrkRun, runWrk, wrkScript } from './lib/wrk.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: o, count, usage } = benchArgs('node', {
  'size-mib': { type: 'string', default: '2048' },
  files: { type: 'string', default: '16' },
  runs: { type: 'string', default: '3' },
  'panel-requests': { type: 'string', default: '400' },
  'load-seconds': { type: 'string', default: '30' },
  cli: { type: 'string', default: 'build' },
  dir: { type: 'string', default: process.env.BENCH_DIR ?? path.join(os.tmpdir(), 'sourcemesh-bench-node') },
  profile: { type: 'string' },
  json: { type: 'boolean', default: false },
});
const sizeMiB = count('size-mib', o['size-mib']);
const nFiles = count('files', o.files);
const runs = count('runs', o.runs);
const panelRequests = count('panel-requests', o['panel-requests']);
if (!['build', 'src', 'dist'].includes(o.cli)) usage(`--cli ${o.cli}: expected build, src or dist`);
const work = path.resolve(o.dir);
const say = (line: string) => process.stderr.write(`${line}\n`);

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

/** CPU seconds the whole machine has spent so far (user, nice, system, irq, softirq), from /proc/stat. */
async function machineCpuSeconds(): Promise<number> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq] = line;
  return (user! + nice! + system! + irq! + softirq!) / 100; // USER_HZ
}

interface Run {
  seconds: number;
  /** The command's own CPU (user + system). */
  cpuSeconds?: number;
  /** The machine's CPU during the run: the command and the serving side (node's serve, or rsync's daemon). */
  machineCpuSeconds: number;
}

async function timed(cmd: string, args: string[]): Promise<Run> {
  const c0 = await machineCpuSeconds();
  const m = await measure(cmd, args, { captureBytes: 64 << 10 });
  const machineCpu = (await machineCpuSeconds()) - c0;
  if (m.code !== 0) throw new Error(`${cmd} ${args.slice(0, 3).join(' ')}... exited with ${m.code}: ${m.stderr.slice(-2000)}`);
  return { seconds: m.seconds, cpuSeconds: m.cpuSeconds, machineCpuSeconds: machineCpu };
}

const summary = (xs: number[]) => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs) });

try {
  for (const tool of ['wrk', 'rsync']) if (spawnSync(tool, ['--version']).error) usage(`${tool} is not installed (npx node scripts/test-deps.ts --bench)`);
  await ensureOwnDir(work);
  const cli = await prepareCli(ROOT, work, o.cli as 'build');
  for (const w of cli.warnings) say(`warning: ${w}`);
  const machine = describeMachine();
  const pressure0 = cpuPressureMicros();

  // The source node: its mirror root holds the files (hard links to the kept inputs).
  const perFile = Math.floor((sizeMiB * 1024 * 1024) / nFiles);
  say(`inputs: ${nFiles} files of ${(perFile / 1048576).toFixed(1)} MiB in ${path.join(work, 'files')}`);
  const files = [];
  for (let i = 0; i < nFiles; i++) files.push(await ensureFile(path.join(work, 'files'), { name: `dist-${i}.tar`, size: perFile, seed: 1700 + i }, say));
  const small = await ensureFile(path.join(work, 'files'), { name: 'one-mib.bin', size: 1 << 20, seed: 99 }, say);
  const src = path.join(work, 'source');
  await rm(src, { recursive: true, force: true });
  const init = JSON.parse(spawnSync(cli.argv[0]!, [...cli.argv.slice(1), 'node', 'init', src, '--name', 'bench-source', '--json'], { encoding: 'utf8' }).stdout);
  const mirror = path.join(src, 'mirror');
  await mkdir(mirror, { recursive: true });
  for (const f of [...files, small]) await link(f.path, path.join(mirror, f.name));
  const servePort = await freePort();
  const panelPort = await freePort();
  const config = JSON.parse(await readFile(path.join(src, 'node.json'), 'utf8'));
  Object.assign(config.services.serve, { enabled: true, port: servePort, rate: 0 });
  config.panel.port = panelPort;
  await writeFile(path.join(src, 'node.json'), JSON.stringify(config, null, 2));
  const tokenFile = path.join(work, 'token');
  await writeFile(tokenFile, `${init.token}\n`, { mode: 0o600 });

  const node = spawn(cli.argv[0]!, [...cli.argv.slice(1), 'node', 'run', src, '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let nodeErr = '';
  node.stderr!.on('data', (d) => (nodeErr += d));
  onCleanup(() => stopChild(node, 40_000));
  await waitForPort(panelPort, node, () => nodeErr, 30_000);
  const panel = `http://127.0.0.1:${panelPort}`;
  const serve = `http://127.0.0.1:${servePort}`;
  say(`source node: panel ${panel}, serve ${serve}; waiting for serve to hash ${sizeMiB} MiB`);
  await waitForPort(servePort, node, () => nodeErr, 300_000);

  // 1. Panel latency, idle then under load.
  const agent = new Agent({ connections: 1 });
  const login = await request(`${panel}/login`, { method: 'POST', dispatcher: agent, headers: { 'content-type': 'application/x-www-form-urlencoded', origin: panel }, body: `token=${encodeURIComponent(init.token)}` });
  await login.body.dump();
  const cookie = String(login.headers['set-cookie']).split(';')[0]!;
  if (login.statusCode !== 303 || !cookie.startsWith('sm_session=')) throw new Error(`panel login failed: ${login.statusCode}`);
  const pages = async (n: number): Promise<number[]> => {
    const ms: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      const r = await request(`${panel}${i % 2 ? '/mirror' : '/'}`, { dispatcher: agent, headers: { cookie } });
      const body = await r.body.text();
      if (r.statusCode !== 200 || !body.includes('</html>')) throw new Error(`panel page ${r.statusCode}`);
      ms.push(performance.now() - t0);
    }
    return ms;
  };
  await pages(20); // warm-up
  const idle = await pages(panelRequests);
  const loadSeconds = count('load-seconds', o['load-seconds']);
  const wrk = runWrk(`${serve}/${small.name}`, path.join(work, 'wrk.lua'), wrkScript(), { connections: 8, threads: 2, seconds: loadSeconds });
  await new Promise((r) => setTimeout(r, 1000)); // wrk connected and at full speed
  const loaded = await pages(panelRequests);
  const wrkRun = await wrk;
  const counted = countWrkRun(wrkRun, small.size, 8);
  const serveMiBs = counted.goodBytes / wrkRun.seconds / 1048576;
  await agent.close();
  const panelResult = {
    idle: { p50: quantile(idle, 0.5), p99: quantile(idle, 0.99) },
    loaded: { p50: quantile(loaded, 0.5), p99: quantile(loaded, 0.99), requests: loaded.length },
    serve: { mibPerSecond: serveMiBs, requestsPerSecond: counted.good / wrkRun.seconds, problems: counted.problems },
  };
  say(`panel idle p50 ${panelResult.idle.p50.toFixed(1)} ms p99 ${panelResult.idle.p99.toFixed(1)} ms; under load p50 ${panelResult.loaded.p50.toFixed(1)} ms p99 ${panelResult.loaded.p99.toFixed(1)} ms (serve ${serveMiBs.toFixed(0)} MiB/s, ${counted.problems.join('; ') || 'every response whole'})`);

  // 2. Clone against rsync, alternating.
  const rsyncPort = await freePort();
  const rsyncConf = path.join(work, 'rsyncd.conf');
  await writeFile(rsyncConf, `use chroot = no\nport = ${rsyncPort}\naddress = 127.0.0.1\npid file = ${path.join(work, 'rsyncd.pid')}\n[mirror]\npath = ${mirror}\nread only = yes\n`);
  const rsyncd = spawn('rsync', ['--daemon', '--no-detach', `--config=${rsyncConf}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let rsyncErr = '';
  rsyncd.stderr!.on('data', (d) => (rsyncErr += d));
  onCleanup(() => stopChild(rsyncd));
  await waitForPort(rsyncPort, rsyncd, () => rsyncErr);
  const who = ['ours', 'rsync', 'rsync-fsync'] as const;
  const got: Record<(typeof who)[number], Run[]> = { ours: [], rsync: [], 'rsync-fsync': [] };
  for (let r = 0; r < runs; r++) {
    const order = [...who.slice(r % who.length), ...who.slice(0, r % who.length)];
    for (const w of order) {
      const dest = path.join(work, `dest-${w}`);
      await rm(dest, { recursive: true, force: true });
      spawnSync('sync'); // no run pays for the dirty pages of the one before
      const run = w === 'ours'
        ? await timed(cli.argv[0]!, [...cli.argv.slice(1), 'node', 'clone', panel, '--to', dest, '--token-file', tokenFile, '--port-offset', '7', '--json'])
        : await timed('rsync', ['-a', ...(w === 'rsync-fsync' ? ['--fsync'] : []), `rsync://127.0.0.1:${rsyncPort}/mirror/`, `${dest}/`]);
      got[w].push(run);
      say(`run ${r + 1} ${w}: ${run.seconds.toFixed(2)} s, CPU ${run.cpuSeconds?.toFixed(2) ?? '?'} s, machine CPU ${run.machineCpuSeconds.toFixed(2)} s`);
      await rm(dest, { recursive: true, force: true });
    }
  }
  if (o.profile !== undefined) {
    const dir = path.resolve(o.profile);
    await mkdir(path.join(dir, 'cpu'), { recursive: true });
    const clone = (dest: string) => [...cli.argv.slice(1), 'node', 'clone', panel, '--to', dest, '--token-file', tokenFile, '--port-offset', '7', '--json'];
    for (const how of ['cpu-prof', 'strace'] as const) {
      const dest = path.join(work, 'dest-profile');
      await rm(dest, { recursive: true, force: true });
      spawnSync('sync');
      const run = how === 'cpu-prof'
        ? await timed(cli.argv[0]!, ['--cpu-prof', '--cpu-prof-dir', path.join(dir, 'cpu'), ...clone(dest)])
        : await timed('strace', ['-c', '-f', '-o', path.join(dir, 'strace.txt'), cli.argv[0]!, ...clone(dest)]);
      say(`profile (${how}, not counted): ${run.seconds.toFixed(2)} s, CPU ${run.cpuSeconds?.toFixed(2) ?? '?'} s; in ${dir}`);
      await rm(dest, { recursive: true, force: true });
    }
  }
  const diskMiBs = await diskWriteMiBs(work, 1024);
  const ours = got.ours.map((x) => x.seconds);
  const theirs = got.rsync.map((x) => x.seconds);
  const fsynced = got['rsync-fsync'].map((x) => x.seconds);
  const totalMiB = (perFile * nFiles) / 1048576 + 1;
  const ratios = ours.map((s, i) => theirs[i]! / s);
  const fsyncRatios = ours.map((s, i) => fsynced[i]! / s);
  const side = (rs: Run[]) => ({
    ...summary(rs.map((x) => x.seconds)), mibPerSecond: totalMiB / median(rs.map((x) => x.seconds)),
    cpuSeconds: median(rs.map((x) => x.cpuSeconds ?? NaN)), machineCpuSeconds: median(rs.map((x) => x.machineCpuSeconds)),
  });
  const pressure1 = cpuPressureMicros();
  const result = {
    bench: 'node', date: new Date().toISOString(), machine: formatMachine(machine), cli: cli.describe,
    cpuPressureSeconds: pressure0 !== undefined && pressure1 !== undefined ? (pressure1 - pressure0) / 1e6 : undefined,
    panel: panelResult,
    clone: {
      mib: totalMiB, files: nFiles + 1, runs,
      ours: side(got.ours), rsync: side(got.rsync), rsyncFsync: side(got['rsync-fsync']),
      throughputRatio: summary(ratios), throughputRatioFsync: summary(fsyncRatios),
      diskFlushedWriteMiBs: diskMiBs,
    },
  };
  if (o.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  else {
    process.stdout.write(`bench:node ${result.date} on ${result.machine}\n`);
    process.stdout.write(`panel (/ and /mirror, one client): idle p50 ${panelResult.idle.p50.toFixed(1)} ms, p99 ${panelResult.idle.p99.toFixed(1)} ms; while serve runs at ${serveMiBs.toFixed(0)} MiB/s: p50 ${panelResult.loaded.p50.toFixed(1)} ms, p99 ${panelResult.loaded.p99.toFixed(1)} ms (goal p99 < 50 ms)\n`);
    const c = result.clone;
    const row = (label: string, x: ReturnType<typeof side>) => `  ${label}: ${x.median.toFixed(2)} s (${x.min.toFixed(2)}-${x.max.toFixed(2)}), ${x.mibPerSecond.toFixed(0)} MiB/s; CPU ${x.cpuSeconds.toFixed(2)} s, machine CPU ${x.machineCpuSeconds.toFixed(2)} s (medians)\n`;
    process.stdout.write(`clone of ${totalMiB.toFixed(0)} MiB in ${nFiles + 1} files, ${runs} runs:\n${row('node clone', c.ours)}${row('rsync -a', c.rsync)}${row('rsync -a --fsync', c.rsyncFsync)}`);
    process.stdout.write(`  throughput ours/rsync ${c.throughputRatio.median.toFixed(2)}x (${c.throughputRatio.min.toFixed(2)}-${c.throughputRatio.max.toFixed(2)}; goal 0.8x); ours/rsync --fsync ${c.throughputRatioFsync.median.toFixed(2)}x (${c.throughputRatioFsync.min.toFixed(2)}-${c.throughputRatioFsync.max.toFixed(2)}); disk, flushed writes: ${diskMiBs.toFixed(0)} MiB/s\n`);
    if (result.cpuPressureSeconds !== undefined) process.stdout.write(`CPU pressure (some) during the run: ${result.cpuPressureSeconds.toFixed(1)} s\n`);
  }
} finally {
  await cleanup();
}
