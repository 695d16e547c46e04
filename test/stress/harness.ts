// The stress harness: a whole sourcemesh network on one machine, in network namespaces
// (test/helpers/netns.ts), with faults from a seeded schedule (schedule.ts), every operation and fault
// in a JSON-lines history (history.ts), and the checker (check.ts) run over it at the end.
// docs/OPERATIONS.md, "Stress runs", says how to run it and read its report.
//
// Nodes: `up` (upstream: a static server of distfiles and git repositories; the release maintainer runs
// here too), `log` (log serve), `w1`..`w3` (witness serve, also Roughtime over UDP), `m1`..`mN` (mirror
// sync, which attests what it derived, + serve --announce + seed) and `c1`..`cC` (fetch over the mirrors
// given, with BitTorrent too, or from the mirrors it discovers; then release verify, sourcemesh time or
// attest verify with a builders' quorum of the mirrors). Each HTTP server listens on loopback in its
// namespace behind our proxy (proxy.ts) on the namespace's address, so latency, bandwidth, resets,
// refusal and lies can be switched on and off mid-run; a mirror's serve also answers on its own port
// 8080 (what it announces, no proxy in between), and its seed listens on loopback behind a BitTorrent
// proxy of its own on 6881 (which can make it lie). New roles add a process next to the mirror's, and
// their faults a case in applyFault.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statfsSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { prepareCli, type CliMode } from '../../bench/lib/cli.ts';
import { Prng } from '../helpers/prng.ts';
import { ROOT } from '../helpers/run.ts';
import { check, formatReport, nodeOfKeyName, type CheckResult } from './check.ts';
import { History, readHistory, type AttestedSnapshot, type Exported, type FileReport, type Transport } from './history.ts';
import { Network, newRunId, sweepStale, workDirOf } from '../helpers/netns.ts';
import type { ProxyMessage, ProxyMode } from './proxy.ts';
import { type Fault, type FaultKind, planFaults } from './schedule.ts';

export interface StressOptions {
  mirrors: number;
  clients: number;
  durationMs: number;
  seed: number;
  faults: readonly FaultKind[];
  /** At most this many client operations at once (the machine has few cores). */
  concurrency: number;
  /** Where the history, the report and every process's log are kept. */
  out?: string;
  /**
   * Which sourcemesh runs: `head` (the last commit, exported into the run's work directory and run from
   * its sources, so that edits in the working tree during a run can't change it), or bench/lib/cli.ts's
   * `build` (the working tree compiled), `src` (the working tree as it is) or `dist` (as last built).
   */
  cli: CliMode | 'head';
  /** Test-only: this client skips verification (downloads with curl, exports what it got). */
  brokenClient?: string;
  log?: (line: string) => void;
}

export interface StressResult {
  runId: string;
  out: string;
  history: string;
  result: CheckResult;
  report: string;
}

const PORT = 80; // the proxy, on the node's address
const BEHIND = '127.0.0.1:8080'; // the server, on the node's loopback
const DIRECT = 8080; // a mirror's serve on every address of its node: what it announces (no proxy)
const SEED_PORT = 6881; // a mirror's BitTorrent seed, on the node's address
const RT_PORT = 2002; // a witness's Roughtime (UDP), on the node's address
const RT_LIAR_PORT = 2003; // where the time-liar fault redirects it (roughtime-liar.ts)
const LOG_ORIGIN = 'log.stress.test/main';
const BUILDERS_THRESHOLD = 2;
const KiB = 1024;
const MiB = 1024 * KiB;

interface Proc {
  name: string;
  node: string;
  argv: string[];
  child?: ChildProcess;
  stopped: boolean;
}

/** Deterministic content from the seed. */
function content(seed: number, name: string, size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let off = 0, i = 0; off < size; off += 64, i++) createHash('sha512').update(`${seed}/${name}/${i}`).digest().copy(out, off);
  return out;
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

function git(cwd: string, ...args: string[]): string {
  const r = spawnSync('git', ['-c', 'user.name=Stress', '-c', 'user.email=stress@example.invalid', ...args], {
    cwd, encoding: 'utf8', env: { PATH: process.env.PATH, HOME: os.tmpdir(), GIT_CONFIG_NOSYSTEM: '1', GIT_COMMITTER_DATE: '2024-01-01T00:00:00Z', GIT_AUTHOR_DATE: '2024-01-01T00:00:00Z' },
  });
  if (r.status !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

/** Hash the distfiles in a directory (top-level regular files whose names do not start with a dot). */
function hashDir(dir: string): Exported[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile() && !e.name.startsWith('.'))
    .map((e) => ({ name: e.name, sha256: sha256(readFileSync(path.join(dir, e.name))) }))
    .sort((a, b) => (a.name < b.name ? -1 : 1));
}

/** The last commit's program, exported with git archive into WORK/head and run from its sources. */
function headCli(work: string): { argv: string[]; warnings: string[] } {
  const dir = path.join(work, 'head');
  mkdirSync(dir, { recursive: true });
  const commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
  execFileSync('sh', ['-c', 'git archive HEAD src package.json | tar -x -C "$1"', 'sh', dir], { cwd: ROOT });
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  return { argv: [process.execPath, path.join(dir, 'src/cli/main.ts')], warnings: [`running the last commit, ${commit.slice(0, 12)} (uncommitted changes are not part of this run)`] };
}

class Semaphore {
  #free: number;
  #waiting: (() => void)[] = [];
  constructor(n: number) {
    this.#free = n;
  }
  async take(): Promise<void> {
    if (this.#free > 0) {
      this.#free--;
      return;
    }
    await new Promise<void>((r) => this.#waiting.push(r));
  }
  give(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#free++;
  }
}

export async function runStress(o: StressOptions): Promise<StressResult> {
  const say = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const tmp = os.tmpdir();
  const swept = sweepStale(tmp);
  if (swept.length > 0) say(`swept the remains of earlier runs: ${swept.join(', ')}`);
  const runId = newRunId();
  const work = workDirOf(runId, tmp);
  const out = path.resolve(o.out ?? path.join(tmp, `sourcemesh-stress-${runId}.out`));
  mkdirSync(path.join(out, 'logs'), { recursive: true });
  mkdirSync(work, { recursive: true });
  const cli = o.cli === 'head' ? headCli(work) : await prepareCli(ROOT, work, o.cli);
  // The sources the harness's own helpers (roughtime-liar.ts, forge-attestation.ts) load: the run's.
  const srcDir = o.cli === 'head' ? path.join(work, 'head', 'src') : path.join(ROOT, 'src');
  for (const w of cli.warnings) say(`warning: ${w}`);
  const net = Network.create(runId);
  const procs: Proc[] = [];
  const proxies = new Map<string, ChildProcess>();
  const timers: NodeJS.Timeout[] = [];
  let ending = false;
  const harnessErrors: string[] = [];
  const t0 = performance.now();
  const history = new History(path.join(out, 'history.jsonl'), t0);
  const onExit = () => net.destroy(work);
  process.once('exit', onExit);
  try {
    return await (async () => {
      // --- the network
      const mirrors = Array.from({ length: o.mirrors }, (_, i) => `m${i + 1}`);
      const clients = Array.from({ length: o.clients }, (_, i) => `c${i + 1}`);
      for (const n of ['up', 'log', 'w1', 'w2', 'w3', ...mirrors, ...clients]) net.add(n);
      const url = (n: string) => `http://${net.node(n).address}`;
      say(`run ${runId}: ${net.nodes.size} namespaces on a bridge in ${net.bridgeNs}; work ${work}; out ${out}`);

      const logFile = (name: string) => createWriteStream(path.join(out, 'logs', `${name}.log`), { flags: 'a' });
      /** Run a CLI command to completion inside a node; its output to the node's log, stdout returned. */
      const runIn = (node: string, name: string, args: string[], timeoutMs = 120_000): Promise<{ code: number | null; stdout: string }> =>
        new Promise((resolve) => {
          const child = net.spawn(node, [...cli.argv, ...args], { env: { ...process.env, CI: '1', NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
          const log = logFile(name);
          log.write(`$ sourcemesh ${args.join(' ')}\n`);
          let stdout = '';
          child.stdout!.on('data', (d) => (stdout += d));
          child.stderr!.pipe(log, { end: false });
          const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
          child.on('close', (code) => {
            clearTimeout(timer);
            log.end(`exit ${code}\n`);
            resolve({ code, stdout });
          });
        });

      /** Start (or restart) a server process; resolves once its first stdout line says it listens. */
      const start = (p: Proc): Promise<void> =>
        new Promise((resolve, reject) => {
          const child = net.spawn(p.node, p.argv, { env: { ...process.env, CI: '1', NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
          p.child = child;
          p.stopped = false;
          const log = logFile(p.name);
          child.stderr!.pipe(log);
          const lines = createInterface({ input: child.stdout! });
          let ready = false;
          lines.on('line', (l) => {
            log.write(`${l}\n`);
            if (!ready) {
              ready = true;
              resolve();
            }
          });
          child.on('exit', (code, signal) => {
            if (!ready) reject(new Error(`${p.name} exited (${code ?? signal}) before listening; see ${path.join(out, 'logs', `${p.name}.log`)}`));
          });
        });
      /** The proxy of a node's HTTP server, or (`seed`) of a mirror's seed: named `NODE` or `NODE:seed`. */
      const startProxy = (node: string, seed = false): Promise<void> =>
        new Promise((resolve, reject) => {
          const name = seed ? `${node}:seed` : node;
          const args = seed ? [`${net.node(node).address}:${SEED_PORT}`, `127.0.0.1:${SEED_PORT}`, 'bittorrent'] : [`${net.node(node).address}:${PORT}`, BEHIND];
          const child = net.spawn(node, [process.execPath, path.join(ROOT, 'test/stress/proxy.ts'), ...args], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
          proxies.set(name, child);
          child.stderr!.pipe(logFile(`${seed ? `${node}-seed` : node}-proxy`));
          child.on('message', (m: ProxyMessage) => {
            if (m.type === 'listening') resolve();
            else if (m.type === 'lie') history.add({ type: 'lie', mirror: name, client: m.client, path: m.path, flipped: m.flipped, read: m.read });
          });
          child.on('exit', (code) => reject(new Error(`the proxy of ${name} exited (${code})`)));
        });
      const setProxy = (node: string, mode: ProxyMode) => proxies.get(node)?.send(mode);
      const modes = new Map<string, ProxyMode>();
      const changeProxy = (node: string, change: ProxyMode) => {
        const m = { ...modes.get(node), ...change };
        modes.set(node, m);
        setProxy(node, m);
      };

      // --- upstream: distfiles and a git repository, made from the seed
      const upDir = path.join(work, 'upstream');
      mkdirSync(path.join(upDir, 'git'), { recursive: true });
      const rng = new Prng(o.seed);
      const v1Files = [
        { name: 'bigfile-1.0.tar.gz', size: 2 * MiB + rng.below(64 * KiB) },
        { name: 'midfile-2.3.tar.xz', size: 1 * MiB + rng.below(64 * KiB) },
        { name: 'small-0.9.tar.bz2', size: 300 * KiB + rng.below(16 * KiB) },
        { name: 'tiny-4.1.tar.gz', size: 40 * KiB + rng.below(4 * KiB) },
      ];
      const v2Extra = [{ name: 'added-1.1.tar.gz', size: 1536 * KiB + rng.below(64 * KiB) }];
      const sums = new Map<string, string>();
      const sizes = new Map<string, number>();
      for (const f of [...v1Files, ...v2Extra]) {
        const body = content(o.seed, f.name, f.size);
        writeFileSync(path.join(upDir, f.name), body);
        sums.set(f.name, sha256(body));
        sizes.set(f.name, f.size);
      }
      const src = path.join(work, 'proj-src');
      mkdirSync(path.join(src, 'lib'), { recursive: true });
      git(src, 'init', '-q', '-b', 'main');
      writeFileSync(path.join(src, 'README'), `stress project, seed ${o.seed}\n`);
      writeFileSync(path.join(src, 'lib', 'data.bin'), content(o.seed, 'git-data', 200 * KiB));
      git(src, 'add', '.');
      git(src, 'commit', '-q', '-m', 'release');
      const commit = git(src, 'rev-parse', 'HEAD');
      const bare = path.join(upDir, 'git', 'proj.git');
      git(work, 'clone', '-q', '--bare', src, bare);
      git(bare, 'update-server-info'); // git's dumb HTTP protocol: static files
      const prefix = `proj-${commit.slice(0, 8)}/`;
      const snapName = `proj-${commit.slice(0, 8)}.tar.gz`;
      const tar = spawnSync('git', ['archive', '--format=tar', `--prefix=${prefix}`, commit], { cwd: src, maxBuffer: 1 << 30 });
      const gz = spawnSync('gzip', ['-n', '-6'], { input: tar.stdout, maxBuffer: 1 << 30 });
      sums.set(snapName, sha256(gz.stdout));
      const entry = (name: string) => ({ name, sha256: sums.get(name)!, size: sizes.get(name)!, urls: [`${url('up')}/${name}`] });
      const manifestOf = (version: string, files: { name: string }[]) => ({
        format: 'sourcemesh.manifest/v1', name: 'stress', version,
        distfiles: [
          ...files.map((f) => entry(f.name)),
          { name: snapName, sha256: sums.get(snapName)!, urls: [], git: { repo: `${url('up')}/git/proj.git`, ref: commit, prefix, compression: 'gzip-n', level: 6 } },
        ].sort((a, b) => (a.name < b.name ? -1 : 1)),
      });
      const versions: Record<string, { distfiles: { name: string; merkleRoot?: string }[] }> = { '1': manifestOf('1', v1Files), '2': manifestOf('2', [...v1Files, ...v2Extra]), '3': manifestOf('3', [...v1Files, ...v2Extra]) };
      const pins: Record<string, Record<string, string>> = {};
      for (const [v, m] of Object.entries(versions)) {
        writeFileSync(path.join(work, `manifest-v${v}.json`), `${JSON.stringify(m, null, 2)}\n`);
        pins[v] = Object.fromEntries((m as { distfiles: { name: string; sha256: string }[] }).distfiles.map((d) => [d.name, d.sha256]));
      }
      const manifestFile = (v: string) => path.join(work, `manifest-v${v}.json`);

      // --- torrents of every distfile (the snapshot too), made from upstream's bytes before any fault;
      // their BEP 52 pieces roots are pinned as merkleRoot in every manifest (fetch --bittorrent checks
      // each torrent against the manifest before it downloads).
      const troot = path.join(work, 'troot');
      mkdirSync(troot);
      for (const f of [...v1Files, ...v2Extra]) copyFileSync(path.join(upDir, f.name), path.join(troot, f.name));
      writeFileSync(path.join(troot, snapName), gz.stdout);
      const torrentDir = path.join(work, 'torrents');
      const made = await runIn('up', 'torrents', ['torrent', 'create', manifestFile('2'), '--root', troot, '-o', torrentDir, '--manifest-out', path.join(work, 'manifest-merkle.json')]);
      if (made.code !== 0) throw new Error(`torrent create failed; see ${path.join(out, 'logs', 'torrents.log')}`);
      const merkle = new Map((JSON.parse(readFileSync(path.join(work, 'manifest-merkle.json'), 'utf8')) as { distfiles: { name: string; merkleRoot?: string }[] }).distfiles.map((d) => [d.name, d.merkleRoot]));
      for (const [v, m] of Object.entries(versions)) {
        for (const d of m.distfiles) {
          const root = merkle.get(d.name);
          if (root !== undefined) d.merkleRoot = root;
        }
        writeFileSync(manifestFile(v), `${JSON.stringify(m, null, 2)}\n`);
      }
      const torrentsOf = (version: string) => Object.keys(pins[version]!).map((n) => path.join(torrentDir, `${n}.torrent`));

      // --- the schedule
      const faults: Fault[] = planFaults({ seed: o.seed, mirrors: o.mirrors, durationMs: o.durationMs, kinds: o.faults, files: [...v1Files, ...v2Extra].map((f) => f.name), clients: o.clients });
      history.add({ type: 'run', seed: o.seed, durationMs: o.durationMs, nodes: Object.fromEntries([...net.nodes.values()].map((n) => [n.name, n.address])), mirrors, clients, faults, pins, ...(o.brokenClient ? { broken: o.brokenClient } : {}) });
      say(`seed ${o.seed}: ${faults.length} faults scheduled (${faults.map((f) => `${f.kind}@${f.target}`).join(' ') || 'none'})`);

      // --- keys and the trust policy
      const keys = path.join(work, 'keys');
      mkdirSync(keys);
      const keygen = async (name: string, file: string, type = 'note') => {
        const r = await runIn('up', 'keys', ['key', 'generate', name, '-o', path.join(keys, file), '--type', type]);
        if (r.code !== 0) throw new Error(`key generate ${name} failed`);
        return { file: path.join(keys, file), pub: path.join(keys, `${file}.pub`), vkey: readFileSync(path.join(keys, `${file}.pub`), 'utf8').trim() };
      };
      const logKey = await keygen('log.stress.test/main', 'log.key');
      const wKeys = await Promise.all([1, 2, 3].map((i) => keygen(`w${i}.stress.test`, `w${i}.key`, 'cosignature')));
      const rKeys = await Promise.all([1, 2].map((i) => keygen(`release${i}.stress.test`, `release${i}.key`)));
      const policy = path.join(work, 'policy.json');
      const policyBody = {
        format: 'sourcemesh.policy/v1', log: { vkey: logKey.vkey, url: url('log') },
        witnesses: { quorum: 2, vkeys: wKeys.map((k) => k.vkey) }, release: { threshold: 2, vkeys: rKeys.map((k) => k.vkey) }, maxCheckpointAgeSeconds: 3600,
      };
      writeFileSync(policy, JSON.stringify(policyBody, null, 2));
      // Signed time from the three witnesses' Roughtime, 2 of 3 (for `sourcemesh time`).
      const timePolicy = path.join(work, 'policy-time.json');
      writeFileSync(timePolicy, JSON.stringify({
        ...policyBody,
        time: { roughtime: [1, 2, 3].map((i) => ({ witness: `w${i}.stress.test`, address: `${net.node(`w${i}`).address}:${RT_PORT}` })), quorum: 2 },
      }, null, 2));
      const builderPolicy = path.join(work, 'policy-builders.json'); // written once the mirrors have node keys

      // --- servers
      const upstream: Proc = { name: 'up', node: 'up', argv: [process.execPath, path.join(ROOT, 'test/stress/upstream.ts'), upDir, `${net.node('up').address}:${PORT}`], stopped: false };
      procs.push(upstream);
      await start(upstream);
      const witnesses: Proc[] = wKeys.map((k, i) => ({ name: `w${i + 1}`, node: `w${i + 1}`, stopped: false, argv: [...cli.argv, 'witness', 'serve', '--state', path.join(work, `w${i + 1}`), '--key', k.file, '--listen', BEHIND, '--log', logKey.pub, '--log-level', 'warn', '--roughtime', `${net.node(`w${i + 1}`).address}:${RT_PORT}`] }));
      const logRoot = path.join(work, 'log');
      const logProc: Proc = { name: 'log', node: 'log', stopped: false, argv: [...cli.argv, 'log', 'serve', '--root', logRoot, '--key', logKey.file, '--listen', BEHIND, '--checkpoint-interval', '500ms', '--log-level', 'warn', '--admit-any-signed', '--quorum', '2', ...wKeys.flatMap((k, i) => ['--witness', `${k.pub}=${url(`w${i + 1}`)}`])] };
      procs.push(...witnesses, logProc);
      await Promise.all(['log', 'w1', 'w2', 'w3'].map((n) => startProxy(n)));
      await Promise.all(witnesses.map(start));
      await start(logProc);

      // Mirror roots: a small tmpfs for each mirror a disk-full fault targets.
      const roots = new Map<string, string>();
      for (const m of mirrors) {
        const r = path.join(work, 'mirrors', m);
        mkdirSync(r, { recursive: true });
        if (faults.some((f) => f.kind === 'disk-full' && f.target === m)) execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${32 * MiB}`, 'tmpfs', r]);
        roots.set(m, r);
      }
      // serve on every address of the node: the proxy reaches it on loopback, discovering clients on the
      // address it announces; the seed beside it over the same root, behind a proxy of its own (on the
      // node's address, port 6881) that can make it lie.
      const mirrorProcs = new Map(mirrors.map((m) => [m, { name: m, node: m, stopped: false, argv: [...cli.argv, 'serve', '--root', roots.get(m)!, '--listen', `0.0.0.0:${DIRECT}`, '--announce', '--no-access-log', '--send-timeout', '10s', '--shutdown-timeout', '1s'] } as Proc]));
      const seedProcs = new Map(mirrors.map((m) => [m, { name: `${m}-seed`, node: m, stopped: false, argv: [...cli.argv, 'seed', '--root', roots.get(m)!, '--listen', `127.0.0.1:${SEED_PORT}`, '--max-peers', '64'] } as Proc]));
      procs.push(...mirrorProcs.values(), ...seedProcs.values());

      // --- releases (the maintainer, on upstream's node)
      let released = '0';
      const release = async (version: string): Promise<boolean> => {
        const r = await runIn('up', 'maintainer', ['release', 'sign', manifestFile(version), '--key', rKeys[0]!.file, '--key', rKeys[1]!.file, '--log', url('log'), '--json'], 60_000);
        let index: number | undefined;
        try {
          index = r.code === 0 ? (JSON.parse(r.stdout) as { index: number }).index : undefined;
        } catch {
          index = undefined;
        }
        history.add({ type: 'release', version, exit: r.code, ...(index !== undefined ? { index } : {}) });
        if (r.code === 0) released = version;
        return r.code === 0;
      };
      for (let i = 0; i < 10 && !(await release('1')); i++) await new Promise((r) => setTimeout(r, 1000));
      if (released !== '1') throw new Error('the first release could not be logged; see the maintainer log');

      // --- mirror sync: once before serving, then again now and then (and right after some faults)
      const syncing = new Set<string>();
      const sync = async (m: string) => {
        if (syncing.has(m) || ending) return;
        syncing.add(m);
        const start = history.now();
        const version = released;
        const r = await runIn(m, `${m}-sync`, ['mirror', 'sync', manifestFile(version), '--root', roots.get(m)!, '--key-name', `${m}.stress.test`, '--timeout', '5', '--retries', '2', '-j', '2']);
        history.add({ type: 'sync', mirror: m, version, exit: r.code, start });
        history.add({ type: 'mirror-files', mirror: m, files: hashDir(roots.get(m)!) });
        syncing.delete(m);
      };
      await Promise.all(mirrors.flatMap((m) => [startProxy(m), startProxy(m, true)]));
      for (let i = 0; i < mirrors.length; i += 2) await Promise.all(mirrors.slice(i, i + 2).map(sync));
      await Promise.all(mirrors.map((m) => start(mirrorProcs.get(m)!)));
      // A seed that does not start (the program under test failed it) is recorded and the run goes on
      // without it: the report says so, and BitTorrent clients then have the mirrors alone.
      await Promise.all(mirrors.map((m) => start(seedProcs.get(m)!).catch((e: Error) => {
        say(`warning: ${e.message}`);
        history.add({ type: 'role-failed', role: 'seed', node: m, message: readFileSync(path.join(out, 'logs', `${m}-seed.log`), 'utf8').split('\n')[0]!.slice(0, 300) });
      })));
      // The builders' quorum: every mirror's node key (made by its first sync), threshold 2.
      const nodeKeyOf = (m: string) => path.join(roots.get(m)!, '.sourcemesh', 'node.key');
      const builderVkeys = mirrors.map((m) => readFileSync(path.join(roots.get(m)!, '.sourcemesh', 'node.pub'), 'utf8').trim());
      writeFileSync(builderPolicy, JSON.stringify({ ...policyBody, builders: { threshold: BUILDERS_THRESHOLD, vkeys: builderVkeys } }, null, 2));
      say(`${mirrors.length} mirrors synced, serving and seeding; ${clients.length} clients start (${o.durationMs / 1000} s)`);

      // --- the load phase: faults, releases, re-syncs, clients, checkpoint watch
      const load0 = performance.now();
      // A fault the harness failed to inject ends the run as a harness failure: a run must not pass on faults that never happened.
      const at = (ms: number, fn: () => unknown) => timers.push(setTimeout(() => void Promise.resolve().then(fn).catch((e) => {
        harnessErrors.push((e as Error).message);
        say(`error: ${(e as Error).stack}`);
      }), ms));
      const nftTable = (node: string, rule: string) => net.nft(node, `table inet stress {\n chain in { type filter hook input priority 0; iifname "eth0" ${rule}; }\n chain out { type filter hook output priority 0; oifname "eth0" ${rule}; }\n}\n`);
      const nftClear = (node: string) => net.nft(node, 'delete table inet stress\n');
      const filler = (m: string) => path.join(roots.get(m)!, '.filler');
      const rtLiars = new Map<string, ChildProcess>();
      const applyFault = async (f: Fault, phase: 'start' | 'end') => {
        const p = procs.find((x) => x.name === f.target);
        switch (f.kind) {
          case 'seed-kill': {
            const seed = seedProcs.get(f.target)!;
            if (phase === 'start') seed.child?.kill('SIGKILL');
            else await start(seed).catch((e) => say(`restart ${seed.name}: ${(e as Error).message}`));
            break;
          }
          case 'seed-liar':
            changeProxy(`${f.target}:seed`, { tamper: phase === 'start' });
            break;
          case 'time-liar':
            if (phase === 'start') {
              // The witness's own key, a clock param seconds off; its Roughtime port redirected there.
              const k = wKeys[Number(f.target.slice(1)) - 1]!;
              const liar = net.spawn(f.target, [process.execPath, path.join(ROOT, 'test/stress/roughtime-liar.ts'), srcDir, k.file, `${net.node(f.target).address}:${RT_LIAR_PORT}`, String(Number(f.param) * 1000)], { stdio: ['ignore', 'pipe', 'pipe'] });
              rtLiars.set(f.target, liar);
              liar.stderr!.pipe(logFile(`${f.target}-roughtime-liar`));
              await new Promise<void>((resolve, reject) => {
                createInterface({ input: liar.stdout! }).once('line', () => resolve());
                liar.once('exit', (code) => reject(new Error(`the Roughtime liar of ${f.target} exited (${code})`)));
              });
              net.nft(f.target, `table ip stress_rt {\n chain pre { type nat hook prerouting priority -100; udp dport ${RT_PORT} redirect to :${RT_LIAR_PORT}; }\n}\n`);
              // One client asks for signed time right away (once the fault is on record), as a sync follows
              // a full disk: the lie is put to a client in every run, not only when a client happens by.
              const asker = clients[Math.floor(f.at / 1000) % clients.length]!;
              timers.push(setTimeout(() => void signedTime(asker), 500));
            } else {
              net.nft(f.target, 'delete table ip stress_rt\n');
              rtLiars.get(f.target)?.kill('SIGKILL');
            }
            break;
          case 'bogus-attest': {
            // The mirror's builder key attests other bytes for the snapshot it made; clients get this
            // bundle in its place from now on.
            const dir = path.join(work, 'forged', f.target);
            mkdirSync(dir, { recursive: true });
            const claim = { kind: 'git-snapshot', name: snapName, sha256: sha256(Buffer.from(`forged by ${f.target}`)), repository: `${url('up')}/git/proj.git`, ref: commit, commit, prefix, compression: 'gzip-n', level: 6 };
            const r = spawnSync(process.execPath, [path.join(ROOT, 'test/stress/forge-attestation.ts'), srcDir, nodeKeyOf(f.target), dir, JSON.stringify(claim)], { encoding: 'utf8' });
            if (r.status !== 0) throw new Error(`forging an attestation of ${f.target}: ${r.stderr}`);
            forged.set(f.target, r.stdout.trim());
            break;
          }
          case 'kill':
            if (phase === 'start') p?.child?.kill('SIGKILL');
            else if (p) await start(p).catch((e) => say(`restart ${p.name}: ${(e as Error).message}`));
            break;
          case 'stop':
            p?.child?.kill(phase === 'start' ? 'SIGSTOP' : 'SIGCONT');
            break;
          case 'partition':
            if (phase === 'start') nftTable(f.target, 'drop');
            else nftClear(f.target);
            break;
          case 'loss':
            if (phase === 'start') nftTable(f.target, `numgen random mod 100 < ${f.param} drop`);
            else nftClear(f.target);
            break;
          case 'latency':
            changeProxy(f.target, { latencyMs: phase === 'start' ? Number(f.param) : 0 });
            break;
          case 'bandwidth':
            changeProxy(f.target, { bytesPerSec: phase === 'start' ? Number(f.param) : 0 });
            break;
          case 'reset':
            changeProxy(f.target, { resetPercent: phase === 'start' ? Number(f.param) : 0 });
            break;
          case 'refuse':
            changeProxy(f.target, { refuse: phase === 'start' });
            break;
          case 'liar':
            changeProxy(f.target, { tamper: phase === 'start' });
            break;
          case 'replace': {
            const file = path.join(upDir, String(f.param));
            const size = sizes.get(String(f.param))!;
            writeFileSync(`${file}.new`, content(o.seed + 1, String(f.param), size));
            renameSync(`${file}.new`, file);
            break;
          }
          case 'disk-full':
            if (phase === 'start') {
              const s = statfsSync(roots.get(f.target)!);
              const free = s.bavail * s.bsize;
              if (free > 64 * KiB) execFileSync('fallocate', ['-l', String(free - 32 * KiB), filler(f.target)]);
              void sync(f.target);
            } else rmSync(filler(f.target), { force: true });
            break;
        }
      };
      const forged = new Map<string, string>(); // mirror -> its forged bundle
      const on = new Set<Fault>();
      for (const f of faults) {
        at(f.at, async () => {
          if (ending) return;
          await applyFault(f, 'start');
          on.add(f);
          history.add({ type: 'fault', kind: f.kind, target: f.target, phase: 'start', ...(f.param !== undefined ? { param: f.param } : {}) });
        });
        if (f.until !== undefined) {
          at(f.until, async () => {
            if (!on.delete(f)) return;
            await applyFault(f, 'end');
            history.add({ type: 'fault', kind: f.kind, target: f.target, phase: 'end' });
          });
        }
      }
      at(o.durationMs * 0.35, async () => {
        for (let i = 0; i < 5 && !ending && !(await release('2')); i++) await new Promise((r) => setTimeout(r, 2000));
        for (const m of mirrors) void sync(m);
      });
      at(o.durationMs * 0.7, async () => {
        for (let i = 0; i < 5 && !ending && !(await release('3')); i++) await new Promise((r) => setTimeout(r, 2000));
        for (const m of mirrors) void sync(m);
      });
      // The log's published checkpoint, read from its directory: which witnesses cosigned which tree.
      let lastCheckpoint = '';
      const watch = setInterval(() => {
        const text = (() => {
          try {
            return readFileSync(path.join(logRoot, 'checkpoint'), 'utf8');
          } catch {
            return '';
          }
        })();
        if (text === '' || text === lastCheckpoint) return;
        lastCheckpoint = text;
        const [body, sigs = ''] = text.split('\n\n');
        const [, size, root] = body!.split('\n');
        const cosigners = sigs.split('\n').filter((l) => l.startsWith('\u2014 ')).map((l) => l.split(' ')[1]!).filter((n) => n !== LOG_ORIGIN);
        history.add({ type: 'checkpoint', size: Number(size), root: root!, cosigners });
      }, 250);
      // Each witness asked directly (from upstream's node, through its proxy) for the last checkpoint it
      // cosigned (GET /<sha256 of the log's origin>/checkpoint): what it says there must agree too.
      const lastRead = new Map<string, string>();
      let reading = false;
      const readWitnesses = setInterval(() => {
        if (reading || ending) return;
        reading = true;
        void Promise.all(['w1', 'w2', 'w3'].map((w) => new Promise<void>((resolve) => {
          const child = net.spawn('up', ['curl', '-sf', '-m', '2', `${url(w)}/${sha256(Buffer.from(LOG_ORIGIN))}/checkpoint`], { stdio: ['ignore', 'pipe', 'ignore'] });
          let text = '';
          child.stdout!.on('data', (d) => (text += d));
          child.on('close', (code) => {
            const [origin, size, root] = text.split('\n');
            if (code === 0 && origin === LOG_ORIGIN && /^\d+$/.test(size ?? '') && root && lastRead.get(w) !== `${size} ${root}`) {
              lastRead.set(w, `${size} ${root}`);
              history.add({ type: 'checkpoint', size: Number(size), root, cosigners: [`${w}.stress.test`], from: w });
            }
            resolve();
          });
        }))).finally(() => (reading = false));
      }, 2000);

      /** `sourcemesh time` with the witnesses' Roughtime: who agreed, who was named a liar, who failed. */
      const signedTime = async (c: string) => {
        const start = history.now();
        const q = await runIn(c, c, ['time', '--trust-policy', timePolicy, '--state', path.join(work, 'clients', c, 'state-time'), '--json'], 60_000);
        let r: { agreed?: string[]; liars?: { witness: string }[]; failed?: { server: string }[] } = {};
        try {
          r = JSON.parse(q.stdout);
        } catch {
          r = {};
        }
        history.add({ type: 'time', client: c, start, exit: q.code, agreed: (r.agreed ?? []).map(nodeOfKeyName), liars: (r.liars ?? []).map((l) => nodeOfKeyName(l.witness)), failed: (r.failed ?? []).map((f) => nodeOfKeyName(f.server)) });
      };
      /**
       * `attest verify` of the bundles every mirror's sync wrote (as its serve publishes them), with the
       * builders' quorum of the mirrors' keys: a forged mirror's bundle for the snapshot replaces its own.
       */
      const attestCheck = async (c: string, version: string, dir: string) => {
        const start = history.now();
        const given = path.join(dir, 'attestations');
        mkdirSync(given, { recursive: true });
        let honest = 0;
        // The forgeries as they are now, when the bundles are gathered (a fault may start during the check).
        const forgedNow = new Map(forged);
        for (const m of mirrors) {
          const from = path.join(roots.get(m)!, '.well-known', 'sourcemesh', 'attestations');
          const names = existsSync(from) ? readdirSync(from).filter((n) => n.endsWith('.sigstore.json')) : [];
          const forgery = forgedNow.get(m);
          for (const n of names) if (!(forgery !== undefined && n.startsWith(`${snapName}.`))) copyFileSync(path.join(from, n), path.join(given, n));
          if (forgery !== undefined) copyFileSync(forgery, path.join(given, path.basename(forgery)));
          else if (names.some((n) => n.startsWith(`${snapName}.`))) honest++;
        }
        const q = await runIn(c, c, ['attest', 'verify', given, '--trust-policy', builderPolicy, '--manifest', manifestFile(version), '--state', path.join(work, 'clients', c, 'state-attest'), '--json'], 60_000);
        let snapshots: AttestedSnapshot[] = [];
        try {
          const r = JSON.parse(q.stdout) as { snapshots: { name: string; accepted: boolean; sha256?: string; builders?: string[]; liars?: { builder: string }[] }[] };
          snapshots = r.snapshots.map((x) => ({ name: x.name, accepted: x.accepted, ...(x.sha256 ? { sha256: x.sha256 } : {}), builders: (x.builders ?? []).map(nodeOfKeyName), liars: (x.liars ?? []).map((l) => nodeOfKeyName(l.builder)) }));
        } catch {
          snapshots = [];
        }
        const bogus = [...forgedNow.keys()][0];
        history.add({ type: 'attest', client: c, start, version, exit: q.code, ...(bogus !== undefined ? { bogus } : {}), honestBuilders: honest, threshold: BUILDERS_THRESHOLD, snapshots });
      };

      const gate = new Semaphore(o.concurrency);
      let opCount = 0;
      const clientLoop = async (c: string, i: number) => {
        const crng = new Prng(o.seed * 31 + i);
        // A third of the clients also take pieces from the mirrors' seeds, a third use only the mirrors
        // they discover on the link (and upstream), the rest the mirrors they are given.
        const transport: Transport = i % 3 === 1 ? 'bittorrent' : i % 3 === 2 ? 'discover' : 'mirrors';
        let n = 0;
        await new Promise((r) => setTimeout(r, crng.below(2000)));
        while (performance.now() - load0 < o.durationMs && !ending) {
          await gate.take();
          try {
            const op = ++opCount;
            const version = released;
            const dir = path.join(work, 'clients', c, String(++n));
            mkdirSync(dir, { recursive: true });
            const start = history.now();
            let exit: number | null;
            let files: FileReport[] = [];
            if (o.brokenClient === c) {
              // Test-only: no verification at all; each file from one mirror in turn, exported as it came.
              exit = 0;
              const m = JSON.parse(readFileSync(manifestFile(version), 'utf8')) as { distfiles: { name: string }[] };
              mkdirSync(path.join(dir, 'out'), { recursive: true });
              for (const [k, d] of m.distfiles.entries()) {
                const from = mirrors[(op + k) % mirrors.length]!;
                const r = await new Promise<number | null>((res) => net.spawn(c, ['curl', '-sf', '-m', '10', '-o', path.join(dir, 'out', d.name), `${url(from)}/${d.name}`], { stdio: 'ignore' }).on('close', res));
                if (r !== 0) exit = 1;
                files.push({ name: d.name, status: r === 0 ? 'fetched' : 'failed', source: `${url(from)}/`, rejected: [] });
              }
            } else {
              const given = mirrors.flatMap((m) => ['--mirror', `${url(m)}/`]);
              const how = transport === 'discover' ? ['--discover', '2']
                : transport === 'bittorrent' ? [...given, '--bittorrent', ...torrentsOf(version).flatMap((t) => ['--torrent', t]), ...mirrors.flatMap((m) => ['--peer', `${net.node(m).address}:${SEED_PORT}`]), '--no-upload']
                  : given;
              const r = await runIn(c, c, ['fetch', manifestFile(version), '-o', path.join(dir, 'out'), '--store', path.join(dir, 'store'), '--json', '--timeout', '5', '--retries', '1', '-j', '2', '--segments', '4', '--min-piece', '256KiB', ...how], 180_000);
              exit = r.code;
              try {
                files = ((JSON.parse(r.stdout) as { files: FileReport[] }).files ?? []).map((f) => ({ name: f.name, status: f.status, source: f.source, size: f.size, ms: f.ms, contributors: f.contributors, rejected: (f.rejected ?? []).map((x) => ({ source: x.source, code: x.code })) }));
              } catch {
                files = [];
              }
            }
            history.add({ type: 'fetch', op, client: c, start, exit, version, exported: hashDir(path.join(dir, 'out')), files, ...(o.brokenClient === c ? { broken: true } : { transport }) });
            if (n % 3 === 1 && !ending) {
              const v = await runIn(c, c, ['release', 'verify', manifestFile(version), '--trust-policy', policy, '--state', path.join(work, 'clients', c, 'state')]);
              history.add({ type: 'release-verify', client: c, version, exit: v.code });
            }
            if (n % 3 === 2 && !ending) await signedTime(c);
            if (n % 3 === 0 && !ending) await attestCheck(c, version, dir);
            rmSync(dir, { recursive: true, force: true });
          } finally {
            gate.give();
          }
          await new Promise((r) => setTimeout(r, 200 + crng.below(1500)));
        }
      };
      const resync = setInterval(() => {
        const m = mirrors[Math.floor(((performance.now() - load0) / 1000) % mirrors.length)]!;
        void sync(m);
      }, Math.max(5000, o.durationMs / 8));
      await Promise.all(clients.map(clientLoop));
      ending = true;
      clearInterval(resync);
      for (const t of timers) clearTimeout(t);
      // End every fault still on, so the final checks see a healed network.
      for (const f of on) {
        if (f.until === undefined) continue; // a liar lies and a replaced file stays replaced to the end
        on.delete(f);
        await applyFault(f, 'end');
        history.add({ type: 'fault', kind: f.kind, target: f.target, phase: 'end' });
      }
      for (const p of procs) if (p.child && p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGCONT');
      while (syncing.size > 0) await new Promise((r) => setTimeout(r, 200));
      for (const m of mirrors) history.add({ type: 'mirror-files', mirror: m, files: hashDir(roots.get(m)!) });
      // Every release the log acknowledged must still be in it: checked against its newest checkpoint.
      await new Promise((r) => setTimeout(r, 1500));
      for (const r of readHistory(history.file)) {
        if (r.type !== 'release' || r.exit !== 0 || r.index === undefined) continue;
        const v = await runIn('up', 'entry-check', ['release', 'verify', manifestFile(r.version), '--trust-policy', policy, '--online', '--state', path.join(work, 'entry-check', r.version)]);
        history.add({ type: 'entry-check', version: r.version, index: r.index, exit: v.code });
      }
      clearInterval(watch);
      clearInterval(readWitnesses);
      history.add({ type: 'end' });
      if (harnessErrors.length > 0) throw new Error(`the harness failed to inject or end faults: ${harnessErrors.join('; ')}`);
      const result = check(readHistory(history.file));
      const report = `sourcemesh stress run ${runId}: seed ${o.seed}, ${o.mirrors} mirrors, ${o.clients} clients, ${o.durationMs / 1000} s, faults ${o.faults.join(',') || 'none'}\n${formatReport(result)}history: ${history.file}\n`;
      writeFileSync(path.join(out, 'report.txt'), report);
      return { runId, out, history: history.file, result, report };
    })();
  } finally {
    ending = true;
    for (const t of timers) clearTimeout(t);
    for (const p of procs) p.child?.kill('SIGKILL');
    for (const c of proxies.values()) c.kill('SIGKILL');
    net.destroy(work);
    process.removeListener('exit', onExit);
  }
}
