// The network of a stress run and what runs on it: the namespaces (test/helpers/netns.ts), the processes
// of each node with their logs, the proxies (proxy.ts) in front of its servers, and nftables rules. Each
// HTTP server listens on loopback in its namespace behind our proxy on the namespace's address, so that
// latency, bandwidth, resets, refusal and lies can be switched on and off mid-run; a mirror's serve also
// answers on its own port 8080 (what it announces, no proxy in between), and its seed listens on loopback
// behind a BitTorrent proxy of its own on 6881 (which can make it lie).
import type { ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { Network } from '../helpers/netns.ts';
import { ROOT } from '../helpers/run.ts';
import type { History } from './history.ts';
import type { ProxyMessage, ProxyMode } from './proxy.ts';

export const PORT = 80; // the proxy, on the node's address
export const BEHIND = '127.0.0.1:8080'; // the server, on the node's loopback
export const DIRECT = 8080; // a mirror's serve on every address of its node: what it announces (no proxy)
export const SEED_PORT = 6881; // a mirror's BitTorrent seed, on the node's address
export const RT_PORT = 2002; // a witness's Roughtime (UDP), on the node's address
export const RT_LIAR_PORT = 2003; // where the time-liar fault redirects it (roughtime-liar.ts)

/** A server process of a node, started (and restarted after a kill) by `Nodes.start`. */
export interface Proc {
  name: string;
  node: string;
  argv: string[];
  child?: ChildProcess;
  stopped: boolean;
}

export class Nodes {
  readonly net: Network;
  /** Every server process started on the network, for faults to find by name and the end to kill. */
  readonly procs: Proc[] = [];
  /** The argv that runs sourcemesh. */
  readonly cliArgv: string[];
  private readonly out: string;
  private readonly history: History;
  private readonly proxies = new Map<string, ChildProcess>();
  private readonly modes = new Map<string, ProxyMode>();

  /** `cli`: the argv that runs sourcemesh; `out`: where the logs go (out/logs/NAME.log). */
  constructor(net: Network, cli: string[], out: string, history: History) {
    this.net = net;
    this.cliArgv = cli;
    this.out = out;
    this.history = history;
  }

  address(node: string): string {
    return this.net.node(node).address;
  }

  /** The node's HTTP service, through its proxy. */
  url(node: string): string {
    return `http://${this.address(node)}`;
  }

  logPath(name: string): string {
    return path.join(this.out, 'logs', `${name}.log`);
  }

  logFile(name: string): WriteStream {
    return createWriteStream(this.logPath(name), { flags: 'a' });
  }

  /** Run a CLI command to completion inside a node; its output to the node's log, stdout returned. */
  runIn(node: string, name: string, args: string[], timeoutMs = 120_000): Promise<{ code: number | null; stdout: string }> {
    return new Promise((resolve) => {
      const child = this.net.spawn(node, [...this.cliArgv, ...args], { env: { ...process.env, CI: '1', NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
      const log = this.logFile(name);
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
  }

  /** Run any program inside a node (curl as a client would); its exit code, and its stdout when `stdout`. */
  exec(node: string, argv: string[], stdout = false): Promise<{ code: number | null; stdout: string }> {
    return new Promise((resolve) => {
      const child = this.net.spawn(node, argv, { stdio: ['ignore', stdout ? 'pipe' : 'ignore', 'ignore'] });
      let text = '';
      child.stdout?.on('data', (d) => (text += d));
      child.on('close', (code) => resolve({ code, stdout: text }));
    });
  }

  /** Start (or restart) a server process; resolves once its first stdout line says it listens. */
  start(p: Proc): Promise<void> {
    if (!this.procs.includes(p)) this.procs.push(p);
    return new Promise((resolve, reject) => {
      const child = this.net.spawn(p.node, p.argv, { env: { ...process.env, CI: '1', NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
      p.child = child;
      p.stopped = false;
      const log = this.logFile(p.name);
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
        if (!ready) reject(new Error(`${p.name} exited (${code ?? signal}) before listening; see ${this.logPath(p.name)}`));
      });
    });
  }

  /** The proxy of a node's HTTP server, or (`seed`) of a mirror's seed: named `NODE` or `NODE:seed`. Its lies go into the history. */
  startProxy(node: string, seed = false): Promise<void> {
    return new Promise((resolve, reject) => {
      const name = seed ? `${node}:seed` : node;
      const args = seed ? [`${this.address(node)}:${SEED_PORT}`, `127.0.0.1:${SEED_PORT}`, 'bittorrent'] : [`${this.address(node)}:${PORT}`, BEHIND];
      const child = this.net.spawn(node, [process.execPath, path.join(ROOT, 'test/stress/proxy.ts'), ...args], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
      this.proxies.set(name, child);
      child.stderr!.pipe(this.logFile(`${seed ? `${node}-seed` : node}-proxy`));
      child.on('message', (m: ProxyMessage) => {
        if (m.type === 'listening') resolve();
        else if (m.type === 'lie') this.history.add({ type: 'lie', mirror: name, client: m.client, path: m.path, flipped: m.flipped, read: m.read });
      });
      child.on('exit', (code) => reject(new Error(`the proxy of ${name} exited (${code})`)));
    });
  }

  /** Change some of a proxy's settings (latency, bandwidth, resets, refusal, lies), keeping the others. */
  changeProxy(name: string, change: ProxyMode): void {
    const m = { ...this.modes.get(name), ...change };
    this.modes.set(name, m);
    this.proxies.get(name)?.send(m);
  }

  /** An nftables rule on the node's link, both ways (partitions, packet loss). */
  nftTable(node: string, rule: string): void {
    this.net.nft(node, `table inet stress {\n chain in { type filter hook input priority 0; iifname "eth0" ${rule}; }\n chain out { type filter hook output priority 0; oifname "eth0" ${rule}; }\n}\n`);
  }

  nftClear(node: string): void {
    this.net.nft(node, 'delete table inet stress\n');
  }

  /** Every server and proxy killed (the network itself is destroyed by its owner). */
  killAll(): void {
    for (const p of this.procs) p.child?.kill('SIGKILL');
    for (const c of this.proxies.values()) c.kill('SIGKILL');
  }
}
