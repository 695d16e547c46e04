// npm run bench:mirrors: one 1 GiB file from four loopback mirrors, one of them capped to a tenth of
// the others' rate, taken by `sourcemesh fetch --segments` and by `aria2c -M` given the same mirrors
// through the Metalink sourcemesh writes (`fetch --metalink`), in the same run; then the same with one
// of the fast mirrors lying (it serves the file with the bytes of one range flipped), and with the
// liar left out (three honest mirrors). Prints the median of several runs of each (wall time, MiB/s,
// CPU time, peak RSS), the ratio ours / aria2c, and the time to a verified file with a liar over the
// time with four honest mirrors. Goals (issue 5): at least aria2c's throughput; with a liar, no more
// than 1.2x the honest-only time.
//
//   node bench/mirrors.ts [--reps N] [--size-mib N] [--rates MIB,...] [--segments N] [--min-piece SIZE]
//                         [--aria2 "FLAGS"] [--lie-at FRACTION] [--lie-mib N] [--only honest|liar|without]
//                         [--cli build|src|dist] [--dir DIR] [--node-flags "FLAGS"]
//                         [--peers aria2c,aria2c+sync,aria2c+sha256+sync] [--trace-sync]
//
// Where the time goes against aria2c (issue 21): `--peers` adds reference rows that give aria2c
// sourcemesh's extra work, in the same alternation. `aria2c+sync` runs `sync FILE DIR` after it (fsync(2)
// of the file and of its directory, as the store's commit does around the rename; aria2c has no option
// for it, and turned out to fsync the file itself, so this row shows what is left to write).
// `aria2c+sha256+sync` also runs `openssl dgst -sha256 FILE` first:
// aria2c checks each piece's SHA-256 from the Metalink but not the whole file's when it has piece hashes
// (aria2c(1), --check-integrity), and sourcemesh hashes both (OpenSSL's SHA-256 uses the CPU's SHA
// extensions, as Node's does; coreutils' sha256sum does not). Each such row's note gives the added
// steps' own time; the "ours" rows' ratio is always against plain aria2c. `--trace-sync` adds a row of
// sourcemesh under `strace -f --seccomp-bpf -T -ttt -y -e trace=fsync,fdatasync` (only those calls stop
// the process): per run, the calls, their total time, and the longest with how long before exit it
// returned; and a row of aria2c under the same strace (it fsyncs its file once, when the download
// completes). Every run also notes the whole machine's CPU seconds and how busy it was (/proc/stat): the
// mirrors' nginx and forwarders share the two cores with the client.
//
// The mirrors: one nginx (Debian, sendfile; the node:http fallback when nginx is missing) with a server
// block per mirror, each behind a bandwidth cap shared by all of that mirror's connections (a token
// bucket in a forwarding process, bench/lib/throttle.ts) and listening on its own loopback address,
// 127.0.0.11 to 127.0.0.15 (the last is the liar), so that both clients see distinct hosts. `--rates`
// lists the fast mirrors' rates to run, in MiB/s (the slow one gets a tenth); each rate is a
// configuration of its own. The manifest pins the file's BEP 52 merkle root and the mirrors publish
// its piece layer, as `mirror sync` makes them; aria2c gets the same per-piece SHA-256 in the Metalink.
//
// Every output is checked: exit status, sourcemesh's JSON report (fetched, and the liar named), and the
// sha256 of the file, for both tools and every run, outside the timed part; and once, that each tool
// refuses the file when only the liar serves it. Files live under /tmp/sourcemesh-bench-mirrors (or
// --dir) and are reused while their hashes match.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { copyFile, mkdir, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pieceMapOfFile } from '../src/fetch/piece-map.ts';
import { benchArgs } from './lib/args.ts';
import { cleanup } from './lib/cleanup.ts';
import { prepareCli, type CliMode } from './lib/cli.ts';
import { ensureFile, ensureOwnDir, sha256File, type BenchFile } from './lib/files.ts';
import { cpuPressureMicros, describeMachine, diskWriteMiBs, formatMachine } from './lib/machine.ts';
import { measure, median, rssMethod, type Measured } from './lib/measure.ts';
import { findNginx, startNginxSites, type StaticSites } from './lib/nginx.ts';
import { startNodeStaticServer } from './lib/static-server.ts';
import { startThrottle, type Throttle } from './lib/throttle.ts';

const MiB = 1 << 20;
const GOAL_RATIO = 1;
const GOAL_LIAR = 1.2;
// The piece length mirrors publish their piece layers with (mirror sync) and the Metalink's.
const PIECE = MiB;

const options = {
  reps: { type: 'string', default: process.env.BENCH_REPS ?? '3' },
  'size-mib': { type: 'string', default: process.env.BENCH_SIZE_MIB ?? '1024' },
  rates: { type: 'string', default: process.env.BENCH_RATES ?? '40,300' },
  segments: { type: 'string', default: process.env.BENCH_SEGMENTS ?? '' },
  'min-piece': { type: 'string', default: process.env.BENCH_MIN_PIECE ?? '' },
  aria2: { type: 'string', default: process.env.BENCH_ARIA2 ?? '-x 4 -s 16 -k 1M' },
  'lie-at': { type: 'string', default: '0.5' },
  'lie-mib': { type: 'string', default: '64' },
  only: { type: 'string' },
  cli: { type: 'string', default: process.env.BENCH_CLI ?? 'build' },
  dir: { type: 'string', default: process.env.BENCH_DIR ?? path.join(os.tmpdir(), 'sourcemesh-bench-mirrors') },
  'node-flags': { type: 'string', default: '' },
  peers: { type: 'string', default: 'aria2c' },
  'trace-sync': { type: 'boolean', default: false },
} as const;
const { values: flags, usage, count } = benchArgs('mirrors', options);
const reps = count('reps', flags.reps);
const size = count('size-mib', flags['size-mib']) * MiB;
const rates = flags.rates.split(',').map((r) => {
  if (!/^\d+(\.\d+)?$/.test(r) || Number(r) <= 0) usage(`--rates ${flags.rates}: expected MiB/s figures above 0, comma-separated`);
  return Number(r);
});
const lieAt = Number(flags['lie-at']);
if (!(lieAt >= 0 && lieAt < 1)) usage(`--lie-at ${flags['lie-at']}: expected a fraction from 0 to 1`);
const lieBytes = Math.min(count('lie-mib', flags['lie-mib']) * MiB, size - Math.floor(size * lieAt));
if (!['build', 'src', 'dist'].includes(flags.cli)) usage(`--cli ${flags.cli}: expected build, src or dist`);
if (flags.only && !['honest', 'liar', 'without'].includes(flags.only)) usage(`--only ${flags.only}: expected honest, liar or without`);
const aria2Flags = flags.aria2.split(/\s+/).filter(Boolean);
const ourFlags = [...(flags.segments ? ['--segments', flags.segments] : []), ...(flags['min-piece'] ? ['--min-piece', flags['min-piece']] : [])];
const nodeFlags = flags['node-flags'].split(/\s+/).filter(Boolean);
const PEERS = ['aria2c', 'aria2c+sync', 'aria2c+sha256+sync'] as const;
type Peer = (typeof PEERS)[number];
const peers = flags.peers.split(',').map((p) => {
  if (!(PEERS as readonly string[]).includes(p)) usage(`--peers ${flags.peers}: expected a comma-separated list of ${PEERS.join(', ')}`);
  return p as Peer;
});
if (!peers.includes('aria2c')) peers.unshift('aria2c'); // the goal's ratio is against plain aria2c

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const work = path.resolve(flags.dir);
const honestDir = path.join(work, 'honest');
const liarDir = path.join(work, 'liar');
const out = path.join(work, 'out');
const storeDir = path.join(work, 'store');
const NAME = 'big.bin';

// Children talk to loopback only: no proxy from the environment, no aria2 configuration file.
const childEnv: NodeJS.ProcessEnv = { ...process.env, CI: '1' };
for (const k of Object.keys(childEnv)) if (/^(https?|all|no|ftp)_proxy$/i.test(k)) delete childEnv[k];

// honest: four honest mirrors; liar: one fast one lies; without: the liar's run minus the liar (three).
type Scenario = 'honest' | 'liar' | 'without';

interface Row {
  rate: number;
  scenario: Scenario;
  tool: string;
  ours: boolean;
  /** The goal's peer (plain aria2c), which the ours rows' ratio is against. */
  goalPeer?: boolean;
  /** sourcemesh under strace (--trace-sync): its own row, not the one the ratios use. */
  traced?: boolean;
  seconds: number[];
  rss: number[];
  cpu: number[];
  /** The whole machine's CPU seconds during each run (nginx, forwarders, client), and how busy it was. */
  machine: number[];
  busy: number[];
  /** Per run: who served how much (ours), and who was blamed. */
  notes: string[];
}

interface FetchJson {
  fetched: number;
  failed: number;
  seconds: number;
  files: { name: string; sha256: string; status: string; contributors?: { source: string; bytes: number }[]; rejected: { source: string; code: string; message: string }[] }[];
}

const mib = (bytes: number) => `${(bytes / MiB).toFixed(0)} MiB`;

async function freshOutput(): Promise<void> {
  await rm(out, { recursive: true, force: true });
  await rm(storeDir, { recursive: true, force: true });
  await mkdir(out, { recursive: true });
  spawnSync('sync'); // each run starts from a quiet disk
}

/**
 * The honest file, its BEP 52 piece layer published as mirrors do (BASE/sha256/HEX.pieces) and its
 * merkle root for the manifest; then the liar's copy with the bytes of one range flipped (it publishes
 * the honest layer: a layer must hash to the pinned root, so a liar cannot make up its own).
 */
async function prepareFiles(): Promise<{ file: BenchFile; merkleRoot: string }> {
  const file = await ensureFile(honestDir, { name: NAME, size, seed: 5005 }, (l) => console.log(`  ${l}`));
  const layerFile = path.join(honestDir, 'sha256', `${file.sha256}.pieces`);
  const rootFile = path.join(work, `${file.sha256}.merkle-root`);
  let merkleRoot = (await readFile(rootFile, 'utf8').catch(() => '')).trim();
  const layerOk = await stat(layerFile).then((s) => s.size === 32 * Math.ceil(size / PIECE), () => false);
  if (!/^[0-9a-f]{64}$/.test(merkleRoot) || !layerOk) {
    console.log('  computing the piece layer (BEP 52, 1 MiB pieces)');
    const map = await pieceMapOfFile(file.path, PIECE);
    await mkdir(path.dirname(layerFile), { recursive: true });
    await writeFile(layerFile, Buffer.concat(map.layer));
    merkleRoot = map.root.toString('hex');
    await writeFile(rootFile, `${merkleRoot}\n`);
  }
  const liarFile = path.join(liarDir, NAME);
  const liarSidecar = `${liarFile}.json`;
  const want = { of: file.sha256, start: Math.floor(size * lieAt), bytes: lieBytes };
  const have = await readFile(liarSidecar, 'utf8').catch(() => '');
  if (have !== JSON.stringify(want) || !(await stat(liarFile).then((s) => s.size === size, () => false))) {
    console.log(`  writing the liar's copy: bytes ${want.start}-${want.start + lieBytes - 1} flipped`);
    await ensureOwnDir(liarDir);
    await rm(liarSidecar, { force: true });
    await copyFile(file.path, liarFile);
    const fh = await open(liarFile, 'r+');
    try {
      const buf = Buffer.alloc(MiB);
      for (let at = want.start; at < want.start + lieBytes; at += buf.length) {
        const n = Math.min(buf.length, want.start + lieBytes - at);
        await fh.read(buf, 0, n, at);
        for (let i = 0; i < n; i++) buf[i]! ^= 0xff;
        await fh.write(buf, 0, n, at);
      }
    } finally {
      await fh.close();
    }
    await writeFile(liarSidecar, JSON.stringify(want));
  }
  await mkdir(path.join(liarDir, 'sha256'), { recursive: true });
  await copyFile(layerFile, path.join(liarDir, 'sha256', `${file.sha256}.pieces`));
  return { file, merkleRoot };
}

interface Servers {
  kind: string;
  /** fast1, fast2, fast3, slow, liar (capped like a fast one), as seen by the clients. */
  urls: string[];
  /** The same five, uncapped (straight to the server). */
  direct: string[];
  stop(): Promise<void>;
}

/** Five sites (four honest, one liar) behind one cap each, on 127.0.0.11-15. */
async function startMirrors(rateMiB: number): Promise<Servers> {
  const roots = [honestDir, honestDir, honestDir, honestDir, liarDir];
  let sites: StaticSites;
  if (findNginx()) sites = await startNginxSites(roots, path.join(work, 'nginx'));
  else {
    const servers = await Promise.all(roots.map((r) => startNodeStaticServer(r)));
    sites = { urls: servers.map((s) => s.url), kind: servers[0]!.kind, stop: async () => { await Promise.all(servers.map((s) => s.stop())); } };
  }
  const fast = rateMiB * MiB;
  let throttle: Throttle;
  try {
    throttle = await startThrottle(sites.urls.map((u, i) => ({ host: `127.0.0.${11 + i}`, targetPort: Number(new URL(u).port), bytesPerSecond: i === 3 ? fast / 10 : fast })));
  } catch (err) {
    await sites.stop();
    throw err;
  }
  return {
    kind: sites.kind,
    urls: throttle.urls,
    direct: sites.urls,
    stop: async () => {
      await throttle.stop();
      await sites.stop();
    },
  };
}

async function writeManifestFile(file: BenchFile, merkleRoot: string): Promise<string> {
  const manifest = path.join(work, 'manifest.json');
  await writeFile(manifest, `${JSON.stringify({
    format: 'sourcemesh.manifest/v1',
    name: 'bench-mirrors',
    distfiles: [{ name: NAME, sha256: file.sha256, size: file.size, merkleRoot, urls: [] }],
  }, null, 2)}\n`);
  return manifest;
}

async function checkOutput(file: BenchFile, who: string): Promise<void> {
  const p = path.join(out, NAME);
  const s = await stat(p).catch(() => undefined);
  if (s?.size !== file.size) throw new Error(`${who}: ${p} has ${s?.size ?? 'no'} bytes, expected ${file.size}`);
  if ((await sha256File(p)) !== file.sha256) throw new Error(`${who}: ${p} does not hash to ${file.sha256}`);
}

async function runConfiguration(rate: number, cli: string[], file: BenchFile, manifest: string): Promise<{ rows: Row[]; kind: string }> {
  if (!checkedAria2) {
    // A Metalink with the file's piece hashes, from a fetch straight from the honest files.
    await freshOutput();
    const m = await measure(cli[0]!, [...cli.slice(1), 'fetch', manifest, '-o', out, '--store', storeDir, '--policy', 'mirrors-only', '--mirror', honestDir, '--json', '--metalink', path.join(work, 'honest-hashes.meta4')], { env: childEnv });
    if (m.code !== 0) throw new Error(`sourcemesh fetch from ${honestDir}: exit status ${m.code}\n${m.stderr.slice(-2000)}`);
  }
  const servers = await startMirrors(rate);
  try {
    const [f1, f2, f3, slow, liar] = servers.urls as [string, string, string, string, string];
    console.log(`\nfast mirrors ${f1} ${f2} ${f3} at ${rate} MiB/s each; slow ${slow} at ${rate / 10} MiB/s; the liar ${liar} at ${rate} MiB/s (${servers.kind}, capped by bench/lib/throttle.ts)`);
    const scenarios: { key: Scenario; mirrors: string[] }[] = [
      { key: 'honest' as const, mirrors: [f1, f2, f3, slow] },
      { key: 'liar' as const, mirrors: [f1, f2, liar, slow] },
      { key: 'without' as const, mirrors: [f1, f2, slow] },
    ].filter((s) => !flags.only || s.key === flags.only);
    const rows: Row[] = [];
    if (!checkedAria2) {
      await checkAria2Verifies(cli, manifest, servers.direct[4]!, file);
      checkedAria2 = true;
    }
    for (const sc of scenarios) {
      // A first, untimed fetch writes the Metalink aria2c is given: the same mirrors, in the same order.
      const meta = path.join(work, `${sc.key}.meta4`);
      await freshOutput();
      const fetchArgs = ['fetch', manifest, '-o', out, '--store', storeDir, '--policy', 'mirrors-only', ...sc.mirrors.flatMap((m) => ['--mirror', m]), ...ourFlags, '--json'];
      const warm = await measure(cli[0]!, [...nodeFlags, ...cli.slice(1), ...fetchArgs, '--metalink', meta], { env: childEnv });
      if (warm.code !== 0) throw new Error(`${sc.key}: sourcemesh fetch --metalink: exit status ${warm.code ?? warm.signal}\n${warm.stderr.slice(-2000)}`);
      await checkOutput(file, 'sourcemesh (Metalink run)');
      // A row of one contender's runs in this configuration, its measurements empty.
      const newRow = (tool: string, kind: Pick<Row, 'ours' | 'goalPeer' | 'traced'>): Row => ({ rate, scenario: sc.key, tool, ...kind, seconds: [], rss: [], cpu: [], machine: [], busy: [], notes: [] });
      const ours = newRow(`sourcemesh fetch${ourFlags.length ? ` ${ourFlags.join(' ')}` : ''}`, { ours: true });
      const ariaArgs = ['--no-conf', '-M', meta, '-d', out, ...aria2Flags, '--file-allocation=falloc', '--summary-interval=0', '--console-log-level=warn', '--download-result=hide', '--auto-file-renaming=false', '--allow-overwrite=true'];
      const checkOurs = (row: Row) => async (m: Measured) => {
        const report = JSON.parse(m.stdout) as FetchJson;
        const f = report.files[0]!;
        if (report.fetched !== 1 || f.status !== 'fetched' || f.sha256 !== file.sha256) throw new Error(`sourcemesh: report says ${f.status}`);
        const share = (f.contributors ?? []).map((c) => `${new URL(c.source).hostname} ${mib(c.bytes)}`).join(', ');
        const blamed = f.rejected.map((r) => `${new URL(r.source).hostname} ${r.code}`).join(', ');
        if (sc.key === 'liar' && !f.rejected.some((r) => r.source === liar)) throw new Error(`sourcemesh: the liar ${liar} was not named (${blamed || 'nobody'})`);
        row.notes.push(`${share}${blamed ? `; blamed ${blamed}` : ''}`);
        await checkOutput(file, 'sourcemesh');
      };
      const contenders: { row: Row; run: () => Promise<Measured>; check: (m: Measured) => Promise<void> }[] = [
        { row: ours, run: () => measure(cli[0]!, [...nodeFlags, ...cli.slice(1), ...fetchArgs], { env: childEnv }), check: checkOurs(ours) },
      ];
      if (flags['trace-sync']) {
        // Each traced contender runs under strace for fsync and fdatasync only; its note starts with how
        // long they took and how close to its exit the last one ended (aria2c fsyncs its file itself when
        // the download completes, seen in this trace).
        const traced = (row: Row, logName: string, argv: string[], check: (m: Measured) => Promise<void>) => {
          const log = path.join(work, logName);
          let spawnedAt = 0;
          contenders.push({
            row,
            run: async () => {
              await rm(log, { force: true });
              spawnedAt = Date.now() / 1e3;
              return measure('strace', ['-f', '--seccomp-bpf', '-T', '-ttt', '-y', '-e', 'trace=fsync,fdatasync', '-o', log, ...argv], { env: childEnv });
            },
            check: async (m) => {
              const before = row.notes.length;
              await check(m);
              const syncs = describeSyncs(await readFile(log, 'utf8'), spawnedAt + m.seconds);
              if (row.notes.length > before) row.notes[row.notes.length - 1] = `${syncs}; ${row.notes.at(-1)}`;
              else row.notes.push(syncs);
            },
          });
        };
        const oursTraced = newRow(`${ours.tool} under strace (fsync, fdatasync)`, { ours: true, traced: true });
        traced(oursTraced, 'strace.log', [cli[0]!, ...nodeFlags, ...cli.slice(1), ...fetchArgs], checkOurs(oursTraced));
        const ariaTraced = newRow(`aria2c -M ${aria2Flags.join(' ')} under strace (fsync, fdatasync)`, { ours: false });
        traced(ariaTraced, 'strace-aria2c.log', ['aria2c', ...ariaArgs], () => checkOutput(file, ariaTraced.tool));
      }
      for (const peer of peers) {
        const row = newRow(`aria2c -M ${aria2Flags.join(' ')}${peer === 'aria2c' ? '' : peer.slice('aria2c'.length).replaceAll('+', ', then ')}`, { ours: false, goalPeer: peer === 'aria2c' });
        const target = path.join(out, NAME);
        // The added steps are timed inside the shell, so that the note can give their own share.
        const then = peer === 'aria2c' ? [] : [
          ...(peer === 'aria2c+sha256+sync' ? ['t0=$(date +%s%N); openssl dgst -sha256 "$F" >/dev/null || exit 1; t1=$(date +%s%N); echo "BENCH_SHA256_NS=$((t1 - t0))" >&2'] : []),
          't0=$(date +%s%N); sync "$F" "$D" || exit 1; t1=$(date +%s%N); echo "BENCH_SYNC_NS=$((t1 - t0))" >&2',
        ];
        contenders.push({
          row,
          run: () => then.length
            ? measure('sh', ['-c', `F="$1"; D="$2"; shift 2; aria2c "$@" || exit $?; ${then.join('; ')}`, 'sh', target, out, ...ariaArgs], { env: childEnv })
            : measure('aria2c', ariaArgs, { env: childEnv }),
          check: async (m) => {
            const part = (k: string) => { const x = new RegExp(`BENCH_${k}_NS=(\\d+)`).exec(m.stderr); return x ? `${k.toLowerCase()} ${(Number(x[1]) / 1e9).toFixed(2)} s` : undefined; };
            const added = [part('SHA256'), part('SYNC')].filter(Boolean).join(', ');
            if (added) row.notes.push(added);
            await checkOutput(file, row.tool);
          },
        });
      }
      for (let rep = 0; rep < reps; rep++) {
        const order = rep % 2 ? [...contenders].reverse() : contenders;
        for (const c of order) {
          await freshOutput();
          const cpu0 = machineCpu();
          const m = await c.run();
          const cpu1 = machineCpu();
          if (m.code !== 0) throw new Error(`${c.row.tool} (${sc.key}): exit status ${m.code ?? m.signal}\n${m.stderr.slice(-2000)}`);
          await c.check(m);
          c.row.seconds.push(m.seconds);
          if (m.maxRssBytes !== undefined) c.row.rss.push(m.maxRssBytes);
          if (m.cpuSeconds !== undefined) c.row.cpu.push(m.cpuSeconds);
          const ticks = Math.max(1, cpu1.total - cpu0.total);
          const machine = (cpu1.busy - cpu0.busy) / 100;
          const busy = (cpu1.busy - cpu0.busy) / ticks;
          c.row.machine.push(machine);
          c.row.busy.push(busy);
          const note = c.row.notes.at(-1);
          console.log(`  ${rate} MiB/s, ${sc.key}, run ${rep + 1}/${reps}  ${c.row.tool}: ${m.seconds.toFixed(2)} s, ${(size / MiB / m.seconds).toFixed(0)} MiB/s, CPU ${m.cpuSeconds?.toFixed(2) ?? '?'} s, peak RSS ${m.maxRssBytes ? mib(m.maxRssBytes) : '?'}; machine ${machine.toFixed(2)} s of CPU, ${(100 * busy).toFixed(0)}% busy, ${(100 * (cpu1.iowait - cpu0.iowait) / ticks).toFixed(0)}% iowait${note && c.row.notes.length === rep + 1 ? `  [${note}]` : ''}`);
        }
      }
      rows.push(...contenders.map((c) => c.row));
    }
    await freshOutput();
    return { rows, kind: servers.kind };
  } finally {
    await servers.stop();
  }
}

let checkedAria2 = false;

/**
 * The whole machine's CPU time from /proc/stat's first line (USER_HZ ticks, 100 a second here): with
 * nginx, the forwarders and the client on two cores, a run whose machine is busy all the time is bound
 * by the CPU, and what one client saves in CPU the forwarders can use.
 */
function machineCpu(): { busy: number; total: number; iowait: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f as [number, number, number, number, number, number, number, number];
  const busy = user + nice + system + irq + softirq + steal;
  return { busy, total: busy + idle + iowait, iowait };
}

/**
 * strace's log of fsync and fdatasync (`-f -T -ttt -y`): the calls, their total time, and the longest
 * (the store's commit of the data) with how long before the process's exit it returned.
 */
function describeSyncs(log: string, exitedAt: number): string {
  const calls: { at: number; secs: number; what: string; call: string }[] = [];
  // A call another thread interrupted is logged in two lines: "<unfinished ...>", then "<... resumed>".
  const open = new Map<string, { at: number; call: string; what: string }>();
  for (const line of log.split('\n')) {
    const whole = /^(\d+)\s+([\d.]+) (fsync|fdatasync)\(\d+<([^>]*)>\)\s+=\s+\S+\s+<([\d.]+)>/.exec(line);
    if (whole) {
      calls.push({ at: Number(whole[2]), call: whole[3]!, what: whole[4]!, secs: Number(whole[5]) });
      continue;
    }
    const started = /^(\d+)\s+([\d.]+) (fsync|fdatasync)\(\d+<([^>]*)> <unfinished/.exec(line);
    if (started) {
      open.set(started[1]!, { at: Number(started[2]), call: started[3]!, what: started[4]! });
      continue;
    }
    const resumed = /^(\d+)\s+([\d.]+) <\.\.\. (fsync|fdatasync) resumed>.*<([\d.]+)>\s*$/.exec(line);
    const begun = resumed && open.get(resumed[1]!);
    if (begun) {
      open.delete(resumed[1]!);
      calls.push({ ...begun, secs: Number(resumed[4]) });
    }
  }
  if (!calls.length) return 'no fsync or fdatasync seen';
  const total = calls.reduce((a, c) => a + c.secs, 0);
  const longest = calls.reduce((a, c) => (c.secs > a.secs ? c : a));
  const last = calls.reduce((a, c) => (c.at + c.secs > a.at + a.secs ? c : a));
  return `${calls.length} fsync/fdatasync calls, ${total.toFixed(2)} s in all; longest ${longest.call} ${path.basename(longest.what)} ${longest.secs.toFixed(2)} s, returned ${(exitedAt - longest.at - longest.secs).toFixed(2)} s before exit; last returned ${(exitedAt - last.at - last.secs).toFixed(2)} s before exit`;
}

/**
 * aria2c does not check a Metalink's whole-file hash when it has piece hashes ("only piece hashes are
 * used", aria2c(1), --check-integrity); it checks each piece as it arrives (--realtime-chunk-checksum,
 * on by default). Show that it does: given only the liar (uncapped), it must fail rather than deliver.
 */
async function checkAria2Verifies(cli: string[], manifest: string, liarUrl: string, file: BenchFile): Promise<void> {
  const meta = path.join(work, 'liar-only.meta4');
  await freshOutput();
  const m = await measure(cli[0]!, [...cli.slice(1), 'fetch', manifest, '-o', out, '--store', storeDir, '--policy', 'mirrors-only', '--mirror', liarUrl, '--json', '--metalink', meta], { env: childEnv });
  const report = JSON.parse(m.stdout) as FetchJson;
  if (m.code !== 3 || report.files[0]?.status !== 'failed') throw new Error(`sourcemesh with only the liar: exit status ${m.code}, expected 3 (verification failure)`);
  await freshOutput();
  // sourcemesh writes no Metalink entry for a file it could not verify: give aria2c the honest one's
  // hashes with the liar as its only URL.
  const honest = await readFile(path.join(work, 'honest-hashes.meta4'), 'utf8').catch(() => undefined);
  if (!honest) throw new Error('internal: no Metalink with the piece hashes yet');
  await writeFile(meta, honest.replace(/<url [^>]*>[^<]*<\/url>\n/g, '').replace('  </file>', `    <url priority="1">${liarUrl}/${NAME}</url>\n  </file>`));
  const a = await measure('aria2c', ['--no-conf', '-M', meta, '-d', out, '--max-tries=2', '--summary-interval=0', '--console-log-level=error', '--download-result=hide'], { env: childEnv });
  const delivered = await stat(path.join(out, NAME)).then(async (s) => s.size === file.size && (await sha256File(path.join(out, NAME))) === file.sha256, () => false);
  const why = /Invalid checksum index=\d+/.exec(a.stdout + a.stderr)?.[0];
  if (a.code === 0 || delivered || !why) throw new Error(`aria2c given only the liar: exit status ${a.code}${why ? '' : ', no checksum error reported'}; it should have refused the file`);
  console.log(`check: given only the liar, sourcemesh exits 3 (E_CHECKSUM) and aria2c exits ${a.code} ("${why}"): both check every piece against its hash.`);
  await freshOutput();
}

const rateOf = (r: Row) => size / MiB / median(r.seconds);

function table(rows: Row[]): string {
  const lines: string[][] = [];
  for (const r of rows) {
    const peer = rows.find((x) => x.rate === r.rate && x.scenario === r.scenario && x.goalPeer)!;
    const mine = rows.find((x) => x.rate === r.rate && x.scenario === r.scenario && x.ours && !x.traced)!;
    const honest = rows.find((x) => x.rate === r.rate && x.scenario === 'honest' && x.tool === r.tool);
    const without = rows.find((x) => x.rate === r.rate && x.scenario === 'without' && x.tool === r.tool);
    const spread = r.seconds.length > 1 ? ` (${Math.min(...r.seconds).toFixed(2)}-${Math.max(...r.seconds).toFixed(2)})` : '';
    const ratio = rateOf(r) / rateOf(peer);
    const liar = r.scenario === 'liar' && honest ? median(r.seconds) / median(honest.seconds) : undefined;
    const vsWithout = r.scenario === 'liar' && without ? ` (${(median(r.seconds) / median(without.seconds)).toFixed(2)}x without the liar)` : '';
    lines.push([
      `${r.rate} + ${r.rate / 10}`,
      r.scenario === 'honest' ? '4 honest' : r.scenario === 'liar' ? '3 honest + liar' : '3 honest (no liar)',
      r.tool,
      `${median(r.seconds).toFixed(2)} s${spread}`,
      `${rateOf(r).toFixed(0)} MiB/s`,
      r.ours ? `${ratio.toFixed(2)}x ${ratio >= GOAL_RATIO ? '(goal met)' : '(goal NOT met)'}` : r.goalPeer ? '' : `ours ${(rateOf(mine) / rateOf(r)).toFixed(2)}x this`,
      liar === undefined ? '' : `${liar.toFixed(2)}x${r.ours ? (liar <= GOAL_LIAR ? ' (goal met)' : ' (goal NOT met)') : ''}${vsWithout}`,
      r.cpu.length ? `${median(r.cpu).toFixed(2)} s` : '-',
      `${median(r.machine).toFixed(2)} s (${(100 * median(r.busy)).toFixed(0)}%)`,
      r.rss.length ? `${mib(median(r.rss))} / ${mib(Math.max(...r.rss))}` : '-',
    ]);
  }
  const header = ['MiB/s per mirror (fast x3 + slow)', 'mirrors', 'tool', `wall time, median of ${reps} (min-max)`, 'throughput', `ours / aria2c (goal >= ${GOAL_RATIO}x)`, `liar / 4 honest time (goal <= ${GOAL_LIAR}x)`, 'CPU user+sys', 'machine CPU (busy)', 'peak RSS median / max'];
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [fmt(header), fmt(widths.map((w) => '-'.repeat(w))), ...lines.map(fmt)].join('\n');
}

async function main(): Promise<void> {
  const aria2 = spawnSync('aria2c', ['--version'], { encoding: 'utf8' });
  if (aria2.status !== 0) throw new Error('aria2c is not installed (Debian: apt-get install aria2)');
  await ensureOwnDir(work);
  const machine = describeMachine();
  console.log('bench:mirrors  (bench/mirrors.ts)');
  console.log(formatMachine(machine));
  console.log(aria2.stdout.split('\n')[0]);
  const cli = await prepareCli(root, work, flags.cli as CliMode);
  for (const w of cli.warnings) console.log(`WARNING: ${w}`);
  console.log(`sourcemesh: ${cli.describe}${nodeFlags.length ? `, under node ${nodeFlags.join(' ')}` : ''}`);
  const disk = await diskWriteMiBs(work);
  console.log(`work dir ${work}; disk under it writes ${disk.toFixed(0)} MiB/s with fdatasync (sequential, 512 MiB)`);
  console.log(`peak RSS and CPU by ${rssMethod()}`);
  const { file, merkleRoot } = await prepareFiles();
  const manifest = await writeManifestFile(file, merkleRoot);
  console.log(`${NAME}: ${mib(size)}, sha256 ${file.sha256}, merkle root ${merkleRoot}; the liar flips ${mib(lieBytes)} from byte ${Math.floor(size * lieAt)}`);
  console.log(`load average at start ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const psi0 = cpuPressureMicros();
  const t0 = process.hrtime.bigint();
  const rows: Row[] = [];
  let kind = '';
  for (const rate of rates) {
    const r = await runConfiguration(rate, cli.argv, file, manifest);
    rows.push(...r.rows);
    kind = r.kind;
  }
  const psi1 = cpuPressureMicros();
  const pressure = psi0 !== undefined && psi1 !== undefined ? (psi1 - psi0) / (Number(process.hrtime.bigint() - t0) / 1e3) : undefined;
  console.log('');
  console.log(table(rows));
  console.log('');
  for (const rate of rates) {
    const get = (scenario: Scenario, ours: boolean) => rows.find((r) => r.rate === rate && r.scenario === scenario && (ours ? r.ours && !r.traced : r.goalPeer));
    const [oh, ah, ol, al, ow] = [get('honest', true), get('honest', false), get('liar', true), get('liar', false), get('without', true)];
    const parts: string[] = [];
    if (oh && ah) parts.push(`honest mirrors: ours ${(rateOf(oh) / rateOf(ah)).toFixed(2)}x aria2c's throughput (goal >= ${GOAL_RATIO}x: ${rateOf(oh) / rateOf(ah) >= GOAL_RATIO ? 'met' : 'NOT met'})`);
    if (ol && al) parts.push(`one liar: ours ${(rateOf(ol) / rateOf(al)).toFixed(2)}x aria2c's`);
    if (oh && ol) parts.push(`our time with a liar ${(median(ol.seconds) / median(oh.seconds)).toFixed(2)}x the time with four honest mirrors (goal <= ${GOAL_LIAR}x: ${median(ol.seconds) / median(oh.seconds) <= GOAL_LIAR ? 'met' : 'NOT met'})${ow ? ` and ${(median(ol.seconds) / median(ow.seconds)).toFixed(2)}x the time with the three honest ones alone` : ''}`);
    if (ah && al) parts.push(`aria2c's ${(median(al.seconds) / median(ah.seconds)).toFixed(2)}x`);
    const ideal = size / MiB / (3.1 * rate);
    console.log(`${rate} MiB/s per fast mirror (all four together ${(3.1 * rate).toFixed(0)} MiB/s, so ${ideal.toFixed(2)} s at best): ${parts.join('; ')}.`);
  }
  console.log(`load average at end ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}${pressure !== undefined ? `; CPU pressure during the runs: some task waited for a CPU ${(100 * pressure).toFixed(0)}% of the time (/proc/pressure/cpu)` : ''}`);
  console.log(`servers ${kind}; ${reps} runs of each, median; every output verified (exit status, sourcemesh's JSON report, sha256 of the file).`);
}

try {
  await main();
} catch (err) {
  process.exitCode = 1;
  console.error(`bench:mirrors failed: ${err instanceof Error ? err.message : String(err)}`);
} finally {
  await cleanup();
}
