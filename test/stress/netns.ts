// The stress harness's network: one Linux network namespace per node, each with a veth pair whose other
// end sits on a bridge in a namespace of its own, so nothing touches the host's interfaces or addresses.
// Addresses are in 10.77.0.0/16 and exist only inside these namespaces. Every name carries the run id;
// a run registers its PID in RUN_DIR, and `sweepStale` removes the namespaces, mounts and work
// directories of runs whose process is gone (a harness killed with -9 leaves nothing behind for long).
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';

/** Where live runs register their PID (one file per run id). */
export const RUN_DIR = '/run/sourcemesh-stress';
export const PREFIX = 'sm-';
const BRIDGE = 'br0';
const RUN_ID = /^[0-9a-f]{6}$/;

export interface NetNode {
  /** Short role name, unique in the run: up, log, w1, m3, c12 ... */
  name: string;
  ns: string;
  ip: string;
}

function ip(args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export function namespaces(): string[] {
  return ip(['netns', 'list']).split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(PREFIX));
}

/** The address of the i-th node: 10.77.X.Y with Y in 2..251, so any number of nodes up to 64,000 fits. */
export function addressOf(i: number): string {
  return `10.77.${1 + Math.floor(i / 250)}.${2 + (i % 250)}`;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function workDirOf(runId: string, tmp: string): string {
  return `${tmp}/sourcemesh-stress-${runId}`;
}

/** Tear down every part of one run: processes in its namespaces (killed), the namespaces, its mounts, its work dir. */
export function destroyRun(runId: string, workDir: string | undefined): void {
  if (!RUN_ID.test(runId)) throw new Error(`not a run id: ${runId}`);
  for (const ns of namespaces().filter((n) => n.startsWith(`${PREFIX}${runId}-`))) {
    const pids = ip(['netns', 'pids', ns]).split('\n').map(Number).filter((p) => p > 0);
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

/** Remove what runs whose harness died left behind; returns their ids. Runs still alive are left alone. */
export function sweepStale(tmp: string): string[] {
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

  /** Register the run, then make the bridge namespace and its bridge. */
  static create(runId: string): Network {
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
    if (!/^[a-z][a-z0-9]{0,7}$/.test(name) || this.nodes.has(name)) throw new Error(`bad or duplicate node name ${name}`);
    const i = this.#count++;
    const ns = `${PREFIX}${this.runId}-${name}`;
    const outer = `s${this.runId}${i.toString(36)}`; // at most 15 characters (IFNAMSIZ)
    const addr = addressOf(i);
    ip(['netns', 'add', ns]);
    ip(['-n', this.bridgeNs, 'link', 'add', outer, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    ip(['-n', this.bridgeNs, 'link', 'set', outer, 'master', BRIDGE, 'up']);
    ip(['-n', ns, 'addr', 'add', `${addr}/16`, 'dev', 'eth0']);
    ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
    ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    const node = { name, ns, ip: addr };
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

  destroy(workDir: string | undefined): void {
    destroyRun(this.runId, workDir);
  }
}
