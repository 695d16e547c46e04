// N network namespaces made by a test (as root), all on one Ethernet segment: a hub namespace holds a
// bridge, and each node namespace has one veth link to it with address 10.217.S.(i+1)/24. Processes run
// in a node through `ip netns exec`; everything (processes, then namespaces) goes when the test ends.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { CLI, ROOT } from './run.ts';

export interface Node {
  ns: string;
  address: string;
}

export interface Proc {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code once the process ends. */
  exited: Promise<number | null>;
}

export interface Hub {
  nodes: Node[];
  spawn(node: Node, cmd: string, args: string[]): Proc;
  /** The CLI in a node. */
  cli(node: Node, args: string[]): Proc;
}

function ip(...args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
}

let counter = 0;

export function makeHub(t: { after(fn: () => Promise<void> | void): void }, count: number): Hub {
  const tag = `sh${process.pid.toString(36)}${counter++}`;
  const subnet = `10.217.${(process.pid + counter) % 250}`;
  const hub = `${tag}h`;
  const nodes: Node[] = Array.from({ length: count }, (_, i) => ({ ns: `${tag}n${i}`, address: `${subnet}.${i + 1}` }));
  const children: ChildProcess[] = [];
  t.after(async () => {
    const live = children.filter((c) => c.exitCode === null && c.signalCode === null);
    const closed = live.map((c) => new Promise((r) => c.once('close', r)));
    for (const c of live) c.kill('SIGTERM');
    const timer = setTimeout(() => live.forEach((c) => c.kill('SIGKILL')), 3000);
    await Promise.all(closed);
    clearTimeout(timer);
    for (const ns of [hub, ...nodes.map((n) => n.ns)]) spawnSync('ip', ['netns', 'del', ns]);
  });
  ip('netns', 'add', hub);
  ip('-n', hub, 'link', 'add', 'br0', 'type', 'bridge');
  ip('-n', hub, 'link', 'set', 'br0', 'up');
  nodes.forEach((n, i) => {
    ip('netns', 'add', n.ns);
    const outer = `${tag}o${i}`.slice(0, 15);
    const inner = `${tag}i${i}`.slice(0, 15);
    ip('link', 'add', outer, 'type', 'veth', 'peer', 'name', inner);
    ip('link', 'set', outer, 'netns', hub);
    ip('link', 'set', inner, 'netns', n.ns);
    ip('-n', hub, 'link', 'set', outer, 'master', 'br0');
    ip('-n', hub, 'link', 'set', outer, 'up');
    ip('-n', n.ns, 'addr', 'add', `${n.address}/24`, 'dev', inner);
    ip('-n', n.ns, 'link', 'set', inner, 'up');
    ip('-n', n.ns, 'link', 'set', 'lo', 'up');
  });
  const start = (node: Node, cmd: string, args: string[]): Proc => {
    const child = spawn('ip', ['netns', 'exec', node.ns, cmd, ...args], { cwd: ROOT, env: { ...process.env, CI: '1', NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let out = '';
    let err = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (err += d));
    const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    return { child, stdout: () => out, stderr: () => err, exited };
  };
  return { nodes, spawn: start, cli: (node, args) => start(node, process.execPath, [CLI, ...args]) };
}
