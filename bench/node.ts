// bench:node (issue 17): two figures of a node, each in the same run as its peer.
//  1. Panel latency while the node serves at full speed: wrk downloads a 1 MiB file from the node's serve
//     with 8 connections; meanwhile one logged-in client fetches panel pages (/ and /mirror, which read the
//     node's status) one after another; p50 and p99 of those, and the same without load for reference.
//  2. Clone time of a mirror (default 2 GiB in 16 files) against an rsync daemon on 127.0.0.1 serving the
//     same directory: `sourcemesh node clone PANEL --to DIR` (every byte verified by sha256 against the
//     signed inventory, new keys) against `rsync -a rsync://127.0.0.1:PORT/mirror/ DIR` (which verifies
//     nothing beyond its transfer checksum), alternating which goes first, whole processes started as users
//     start them; the ratio is rsync's time over ours (throughput ours/rsync; goal at least 0.8).
//
//   npm run bench:node -- [--size-mib 2048] [--files 16] [--runs 3] [--panel-requests 400] [--load-seconds 30] [--cli build|src|dist] [--json]
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readFile, rm, writeFile, link, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { request, Agent } from 'undici';
import { benchArgs } from './lib/args.ts';
import { cleanup, onCleanup } from './lib/cleanup.ts';
import { prepareCli } from './lib/cli.ts';
import { ensureFile, ensureOwnDir } from './lib/files.ts';
import { cpuPressureMicros, describeMachine, formatMachine } from './lib/machine.ts';
import { median } from './lib/measure.ts';
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

async function timed(cmd: string, args: string[]): Promise<number> {
  const t0 = performance.now();
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const [code] = (await once(child, 'close')) as [number | null];
  if (code !== 0) throw new Error(`${cmd} ${args.slice(0, 3).join(' ')}... exited with ${code}: ${err.slice(-2000)}`);
  return (performance.now() - t0) / 1000;
}

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
  const ours: number[] = [];
  const theirs: number[] = [];
  for (let r = 0; r < runs; r++) {
    const order = r % 2 === 0 ? ['ours', 'rsync'] : ['rsync', 'ours'];
    for (const who of order) {
      const dest = path.join(work, `dest-${who}`);
      await rm(dest, { recursive: true, force: true });
      if (who === 'ours') {
        const s = await timed(cli.argv[0]!, [...cli.argv.slice(1), 'node', 'clone', panel, '--to', dest, '--token-file', tokenFile, '--port-offset', '7', '--json']);
        ours.push(s);
      } else {
        const s = await timed('rsync', ['-a', `rsync://127.0.0.1:${rsyncPort}/mirror/`, `${dest}/`]);
        theirs.push(s);
      }
      say(`run ${r + 1} ${who}: ${(who === 'ours' ? ours : theirs).at(-1)!.toFixed(2)} s`);
      await rm(dest, { recursive: true, force: true });
    }
  }
  const totalMiB = (perFile * nFiles) / 1048576 + 1;
  const ratios = ours.map((s, i) => theirs[i]! / s);
  const pressure1 = cpuPressureMicros();
  const result = {
    bench: 'node', date: new Date().toISOString(), machine: formatMachine(machine), cli: cli.describe,
    cpuPressureSeconds: pressure0 !== undefined && pressure1 !== undefined ? (pressure1 - pressure0) / 1e6 : undefined,
    panel: panelResult,
    clone: {
      mib: totalMiB, files: nFiles + 1, runs,
      ours: { median: median(ours), min: Math.min(...ours), max: Math.max(...ours), mibPerSecond: totalMiB / median(ours) },
      rsync: { median: median(theirs), min: Math.min(...theirs), max: Math.max(...theirs), mibPerSecond: totalMiB / median(theirs) },
      throughputRatio: { median: median(ratios), min: Math.min(...ratios), max: Math.max(...ratios) },
    },
  };
  if (o.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  else {
    process.stdout.write(`bench:node ${result.date} on ${result.machine}\n`);
    process.stdout.write(`panel (/ and /mirror, one client): idle p50 ${panelResult.idle.p50.toFixed(1)} ms, p99 ${panelResult.idle.p99.toFixed(1)} ms; while serve runs at ${serveMiBs.toFixed(0)} MiB/s: p50 ${panelResult.loaded.p50.toFixed(1)} ms, p99 ${panelResult.loaded.p99.toFixed(1)} ms (goal p99 < 50 ms)\n`);
    process.stdout.write(`clone of ${totalMiB.toFixed(0)} MiB in ${nFiles + 1} files, ${runs} runs: node clone ${result.clone.ours.median.toFixed(2)} s (${result.clone.ours.min.toFixed(2)}-${result.clone.ours.max.toFixed(2)}), rsync ${result.clone.rsync.median.toFixed(2)} s (${result.clone.rsync.min.toFixed(2)}-${result.clone.rsync.max.toFixed(2)}); throughput ours/rsync ${result.clone.throughputRatio.median.toFixed(2)}x (${result.clone.throughputRatio.min.toFixed(2)}-${result.clone.throughputRatio.max.toFixed(2)}; goal 0.8x)\n`);
    if (result.cpuPressureSeconds !== undefined) process.stdout.write(`CPU pressure (some) during the run: ${result.cpuPressureSeconds.toFixed(1)} s\n`);
  }
} finally {
  await cleanup();
}
