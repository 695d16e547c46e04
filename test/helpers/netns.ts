// The one network-namespace builder of the tests, the benchmarks and the stress harness (as root).
//
// A network is a run: a random 6-hex run id, one namespace per node (`sm-RUN-NAME`), each with a veth
// pair whose other end sits on a bridge in a namespace of its own (`sm-RUN-br`), so every node of a run
// shares one Ethernet segment (multicast included) and nothing touches the host's interfaces or
// addresses. Addresses are in 10.77.0.0/16 and exist only inside these namespaces (runs never see each
// other, so they may reuse them). A run registers its PID in RUN_DIR before it makes anything, and
// `sweepStale` removes the namespaces (killing what runs in them), mounts and work directories of runs
// whose process is gone: a test or harness killed with -9 leaves nothing behind for long, and a live
// run is left alone.
//
// `Network` is the bare run (the stress harness drives it); `makeNetwork(t, names)` is a network for one
// test, with its processes collected and everything torn down when the test ends.
import { execFileSync, spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { CLI, ROOT } from './run.ts';

/** Where live runs register their PID (one file per run id). */
export const RUN_DIR = '/run/sourcemesh-netns';
export const PREFIX = 'sm-';
const BRIDGE = 'br0';
const RUN_ID = /^[0-9a-f]{6}$/;
const NODE_NAME = /^[a-z][a-z0-9]{0,7}$/;

export interface NetNode {
  /** Short role name, unique in the run: up, log, w1, m3, c12, a, b ... */
  name: string;
  ns: string;
  /** The node's interface on the bridge, inside its namespace. */
  dev: string;
  address: string;
}

function ip(args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Why namespaces can't be made here, or undefined when they can (for `test(..., { skip })`). */
export function canMakeNamespaces(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (ip netns)';
  if (spawnSync('ip', ['netns', 'list']).status !== 0) return 'ip netns does not work here';
  return undefined;
}

/** Every namespace of every run (ours start with PREFIX). */
export function namespaces(): string[] {
  return ip(['netns', 'list']).split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(PREFIX));
}

/** The address of the i-th node: 10.77.X.Y with Y in 2..251, so any number of nodes up to 64,000 fits. */
export function addressOf(i: number): string {
  return `10.77.${1 + Math.floor(i / 250)}.${2 + (i % 250)}`;
}

export function newRunId(): string {
  return randomBytes(3).toString('hex');
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A run's work directory, when it has one (the stress harness's; swept with the run). */
export function workDirOf(runId: string, tmp: string): string {
  return `${tmp}/sourcemesh-stress-${runId}`;
}

/** Tear down every part of one run: processes in its namespaces (killed), the namespaces, its mounts, its work dir. */
export function destroyRun(runId: string, workDir: string | undefined): void {
  if (!RUN_ID.test(runId)) throw new Error(`not a run id: ${runId}`);
  for (const ns of namespaces().filter((n) => n.startsWith(`${PREFIX}${runId}-`))) {
    let pids: number[] = [];
    try {
      pids = ip(['netns', 'pids', ns]).split('\n').map(Number).filter((p) => p > 0);
    } catch {
      // deleted by a concurrent sweep
    }
    for (const p of pids) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    try {
      ip(['netns', 'del', ns]);
    } catch {
      // deleted by a concurrent sweep
    }
  }
  if (workDir !== undefined && existsSync(workDir)) {
    const mounts = readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1]!).filter((m) => m?.startsWith(`${workDir}/`));
    for (const m of mounts.sort().reverse()) execFileSync('umount', ['-l', m]);
    rmSync(workDir, { recursive: true, force: true });
  }
  rmSync(`${RUN_DIR}/${runId}.pid`, { force: true });
}

/** Remove what runs whose process died left behind; returns their ids. Runs still alive are left alone. */
export function sweepStale(tmp: string = os.tmpdir()): string[] {
  const ids = new Set(namespaces().map((n) => n.slice(PREFIX.length, PREFIX.length + 6)).filter((id) => RUN_ID.test(id)));
  if (existsSync(RUN_DIR)) for (const f of readdirSync(RUN_DIR)) if (f.endsWith('.pid')) ids.add(f.slice(0, -4));
  for (const f of existsSync(tmp) ? readdirSync(tmp) : []) {
    const m = /^sourcemesh-stress-([0-9a-f]{6})$/.exec(f);
    if (m) ids.add(m[1]!);
  }
  const swept: string[] = [];
  for (const id of ids) {
    if (!RUN_ID.test(id)) continue;
    const pidFile = `${RUN_DIR}/${id}.pid`;
    const owner = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : 0;
    if (owner > 0 && pidAlive(owner)) continue;
    destroyRun(id, workDirOf(id, tmp));
    swept.push(id);
  }
  return swept;
}

export class Network {
  readonly runId: string;
  readonly nodes = new Map<string, NetNode>();
  readonly bridgeNs: string;
  #count = 0;

  private constructor(runId: string) {
    this.runId = runId;
    this.bridgeNs = `${PREFIX}${runId}-br`;
  }

  /** Register the run (before anything exists, so a concurrent sweep leaves it alone), then make the bridge. */
  static create(runId: string = newRunId()): Network {
    if (!RUN_ID.test(runId)) throw new Error(`not a run id: ${runId}`);
    mkdirSync(RUN_DIR, { recursive: true });
    writeFileSync(`${RUN_DIR}/${runId}.pid`, `${process.pid}\n`);
    const net = new Network(runId);
    ip(['netns', 'add', net.bridgeNs]);
    ip(['-n', net.bridgeNs, 'link', 'add', BRIDGE, 'type', 'bridge']);
    ip(['-n', net.bridgeNs, 'link', 'set', BRIDGE, 'up']);
    ip(['-n', net.bridgeNs, 'link', 'set', 'lo', 'up']);
    return net;
  }

  /** A node: its namespace, a veth pair into the bridge, its address, loopback up. */
  add(name: string): NetNode {
    if (!NODE_NAME.test(name) || this.nodes.has(name)) throw new Error(`bad or duplicate node name ${name}`);
    const i = this.#count++;
    const ns = `${PREFIX}${this.runId}-${name}`;
    const outer = `s${this.runId}${i.toString(36)}`; // at most 15 characters (IFNAMSIZ)
    const address = addressOf(i);
    ip(['netns', 'add', ns]);
    ip(['-n', this.bridgeNs, 'link', 'add', outer, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    ip(['-n', this.bridgeNs, 'link', 'set', outer, 'master', BRIDGE, 'up']);
    ip(['-n', ns, 'addr', 'add', `${address}/16`, 'dev', 'eth0']);
    ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
    ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    const node = { name, ns, dev: 'eth0', address };
    this.nodes.set(name, node);
    return node;
  }

  node(name: string): NetNode {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`no node ${name}`);
    return n;
  }

  /** Start a program inside a node's namespace (`ip netns exec` execs it, so the PID is the program's). */
  spawn(node: string, argv: string[], opts: SpawnOptions = {}): ChildProcess {
    return spawn('ip', ['netns', 'exec', this.node(node).ns, ...argv], opts);
  }

  /** Run nft inside a node's namespace with a ruleset script on stdin. */
  nft(node: string, script: string): void {
    execFileSync('ip', ['netns', 'exec', this.node(node).ns, 'nft', '-f', '-'], { input: script, stdio: ['pipe', 'pipe', 'pipe'] });
  }

  destroy(workDir?: string): void {
    destroyRun(this.runId, workDir);
  }
}

export interface Proc {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code once the process ends. */
  exited: Promise<number | null>;
  /** Resolves once the standard error matches (rejects when the process ends first or after `timeoutMs`). */
  waitStderr(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
}

export interface TestNetwork<N extends string> {
  net: Network;
  nodes: Record<N, NetNode>;
  /** Start `cmd` in a node; its output is collected, and it is stopped when the test ends. */
  spawn(node: NetNode, cmd: string, args: string[], env?: NodeJS.ProcessEnv): Proc;
  /** The CLI (this checkout's sources) in a node. */
  cli(node: NetNode, args: string[], env?: NodeJS.ProcessEnv): Proc;
  /** The CLI in a node, run to its end (killed after `timeoutMs`, 60 s by default). */
  run(node: NetNode, args: string[], opts?: { timeoutMs?: number; env?: NodeJS.ProcessEnv }): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }>;
}

/**
 * A network of the named nodes for one test (or anything with `after`). When it ends: SIGTERM to what
 * was started (avahi-daemon removes its pid file), SIGKILL after 3 s, then the run is destroyed, which
 * kills anything else left in its namespaces. Stale runs are swept first.
 */
export function makeNetwork<N extends string>(t: { after(fn: () => Promise<void> | void): void }, names: readonly N[]): TestNetwork<N> {
  sweepStale();
  const net = Network.create();
  const children: ChildProcess[] = [];
  t.after(async () => {
    const live = children.filter((c) => c.exitCode === null && c.signalCode === null);
    const closed = live.map((c) => new Promise((r) => c.once('close', r)));
    for (const c of live) c.kill('SIGTERM');
    const timer = setTimeout(() => live.forEach((c) => c.kill('SIGKILL')), 3000);
    await Promise.all(closed);
    clearTimeout(timer);
    net.destroy();
  });
  const nodes = {} as Record<N, NetNode>;
  for (const n of names) nodes[n] = net.add(n);
  const start = (node: NetNode, cmd: string, args: string[], env?: NodeJS.ProcessEnv): Proc => {
    const child = net.spawn(node.name, [cmd, ...args], { cwd: ROOT, env: { ...process.env, CI: '1', NO_COLOR: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let out = '';
    let err = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (err += d));
    const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    return {
      child,
      stdout: () => out,
      stderr: () => err,
      exited,
      waitStderr: (re, timeoutMs = 30_000) => new Promise((resolve, reject) => {
        const check = () => {
          const m = re.exec(err);
          if (m) {
            done();
            resolve(m);
          }
        };
        const onClose = () => {
          done();
          reject(new Error(`${cmd} ended before its output matched ${re}: ${err}`));
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`waited ${timeoutMs} ms for ${re} from ${cmd}: ${err}`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          child.stderr!.off('data', check);
          child.off('close', onClose);
        };
        child.stderr!.on('data', check);
        child.once('close', onClose);
        check();
      }),
    };
  };
  return {
    net,
    nodes,
    spawn: start,
    cli: (node, args, env) => start(node, process.execPath, [CLI, ...args], env),
    run: (node, args, opts = {}) => new Promise((resolve, reject) => {
      const started = performance.now();
      const s = start(node, process.execPath, [CLI, ...args], opts.env);
      const timer = setTimeout(() => s.child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
      s.child.on('error', reject);
      s.child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout: s.stdout(), stderr: s.stderr(), ms: performance.now() - started });
      });
    }),
  };
}

