// The supervisor of `node run`: each switched-on service is a child process of our own CLI (services.ts
// says which command), started and stopped alone when the config changes, restarted with a doubling
// backoff when it dies on its own, stopped with SIGTERM (then SIGKILL after limits.nodeStopMs). Every
// line a service prints becomes a JSON log line of the node, tagged with the service's name.
import { spawn, type ChildProcess } from 'node:child_process';
import { backoffDelay } from '../fetch/backoff.ts';
import { LIMITS, type Limits } from '../limits.ts';
import type { Logger } from '../logger.ts';
import { type NodeConfig, SERVICE_NAMES, type ServiceName } from './config.ts';
import { planChanges, wantedServices } from './services.ts';
import { SUPERVISED_ENV } from './supervised.ts';

export type ServiceState = 'off' | 'starting' | 'running' | 'backoff' | 'stopping';

export interface ServiceStatus {
  name: ServiceName;
  state: ServiceState;
  pid?: number;
  /** Where it listens, from its first line (serve, log serve, witness serve). */
  url?: string;
  since?: number;
  restarts: number;
  lastExit?: { code: number | null; signal: string | null; at: number };
  /** The last lines it printed (for the panel). */
  recent: string[];
}

export interface SupervisorOptions {
  dir: string;
  /** How to run our CLI: the executable and its first arguments ([node, ...execArgv, main]). */
  cli: readonly string[];
  logger: Logger;
  env?: NodeJS.ProcessEnv;
  limits?: Pick<Limits, 'nodeRestartBaseMs' | 'nodeRestartMaxMs' | 'nodeRestartResetMs' | 'nodeStopMs' | 'nodeServiceLineBytes'>;
  random?: () => number;
  now?: () => number;
  /** Every complete line a service prints, for what reads them (sync reports for the node state). */
  onLine?: (service: ServiceName, stream: 'stdout' | 'stderr', line: string) => void;
}

const RECENT_LINES = 20;

interface Slot {
  status: ServiceStatus;
  args?: string[];
  child?: ChildProcess;
  exited?: Promise<unknown>;
  timer?: NodeJS.Timeout;
  attempt: number;
}

export class Supervisor {
  readonly #o: SupervisorOptions;
  readonly #limits: NonNullable<SupervisorOptions['limits']>;
  readonly #slots = new Map<ServiceName, Slot>();
  #closing = false;
  /** Config changes are applied one at a time, in order. */
  #queue: Promise<void> = Promise.resolve();

  constructor(o: SupervisorOptions) {
    this.#o = o;
    this.#limits = o.limits ?? LIMITS;
    for (const name of SERVICE_NAMES) this.#slots.set(name, { status: { name, state: 'off', restarts: 0, recent: [] }, attempt: 0 });
  }

  status(): ServiceStatus[] {
    return SERVICE_NAMES.map((n) => ({ ...this.#slots.get(n)!.status, recent: [...this.#slots.get(n)!.status.recent] }));
  }

  /** Bring the running services in line with `config` (already validated); resolves when done. */
  apply(config: NodeConfig): Promise<void> {
    const run = async () => {
      if (this.#closing) return;
      const running = new Map<ServiceName, string[]>();
      for (const [n, s] of this.#slots) if (s.args) running.set(n, s.args);
      const wanted = wantedServices(config, this.#o.dir);
      const plan = planChanges(running, wanted);
      await Promise.all([...plan.stop, ...plan.restart].map((n) => this.#stop(n)));
      for (const n of [...plan.restart, ...plan.start]) {
        const slot = this.#slots.get(n)!;
        slot.args = wanted.get(n)!;
        slot.attempt = 0;
        slot.status.restarts = 0;
        this.#start(n);
      }
      if (plan.start.length + plan.stop.length + plan.restart.length > 0) this.#o.logger.info({ ...plan }, 'services changed');
    };
    const p = this.#queue.then(run);
    this.#queue = p.catch(() => {});
    return p;
  }

  /** Stop every service (SIGTERM, then SIGKILL at the deadline). */
  async close(): Promise<void> {
    await this.#queue;
    this.#closing = true;
    await Promise.all(SERVICE_NAMES.map((n) => this.#stop(n)));
  }

  #start(name: ServiceName): void {
    const slot = this.#slots.get(name)!;
    const args = slot.args!;
    const now = this.#o.now ?? Date.now;
    const [exe, ...first] = this.#o.cli;
    // The IPC channel is how the service learns that this process is gone, even killed with SIGKILL
    // (supervised.ts): no service outlives its supervisor.
    const child = spawn(exe!, [...first, ...args], {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'], serialization: 'json',
      env: { ...process.env, NO_COLOR: '1', ...this.#o.env, [SUPERVISED_ENV]: '1' },
    });
    slot.child = child;
    slot.status = { ...slot.status, state: 'starting', pid: child.pid, url: undefined, since: now() };
    this.#o.logger.info({ service: name, child: child.pid, args }, 'service started');
    const onLine = (stream: 'stdout' | 'stderr') => (line: string) => {
      if (slot.child !== child) return;
      if (slot.status.state === 'starting' && stream === 'stdout') {
        const url = listeningUrl(line);
        if (url !== undefined) slot.status = { ...slot.status, state: 'running', url };
      }
      slot.status.recent.push(line);
      if (slot.status.recent.length > RECENT_LINES) slot.status.recent.shift();
      this.#o.logger.info({ service: name, stream, line }, 'service output');
      this.#o.onLine?.(name, stream, line);
    };
    splitLines(child.stdout!, this.#limits.nodeServiceLineBytes, onLine('stdout'));
    splitLines(child.stderr!, this.#limits.nodeServiceLineBytes, onLine('stderr'));
    // A service that prints no address (mirror sync) is running once spawned.
    if (name === 'mirrorSync') child.once('spawn', () => slot.child === child && slot.status.state === 'starting' && (slot.status = { ...slot.status, state: 'running' }));
    slot.exited = new Promise<void>((resolve) => {
      child.once('error', (err) => {
        this.#o.logger.error({ service: name, error: err.message }, 'service could not start');
        if (child.exitCode === null && child.signalCode === null && child.pid === undefined) {
          this.#onExit(name, child, null, null);
          resolve();
        }
      });
      child.once('close', (code, signal) => {
        this.#onExit(name, child, code, signal);
        resolve();
      });
    });
  }

  #onExit(name: ServiceName, child: ChildProcess, code: number | null, signal: string | null): void {
    const slot = this.#slots.get(name)!;
    if (slot.child !== child) return;
    const now = (this.#o.now ?? Date.now)();
    slot.child = undefined;
    const ran = now - (slot.status.since ?? now);
    slot.status = { ...slot.status, pid: undefined, url: undefined, lastExit: { code, signal, at: now } };
    if (slot.status.state === 'stopping' || this.#closing || slot.args === undefined) {
      slot.status.state = 'off';
      this.#o.logger.info({ service: name, code, signal }, 'service stopped');
      return;
    }
    // It ended on its own: a crash (or a bad flag, which will fail again: the backoff keeps that cheap).
    if (ran >= this.#limits.nodeRestartResetMs) slot.attempt = 0;
    const delay = backoffDelay(slot.attempt++, this.#limits.nodeRestartBaseMs, this.#limits.nodeRestartMaxMs, (this.#o.random ?? Math.random)());
    slot.status.state = 'backoff';
    slot.status.restarts++;
    this.#o.logger.warn({ service: name, code, signal, restartInMs: delay }, 'service exited; restarting after a backoff');
    slot.timer = setTimeout(() => {
      slot.timer = undefined;
      if (!this.#closing && slot.args !== undefined && slot.status.state === 'backoff') this.#start(name);
    }, delay);
  }

  async #stop(name: ServiceName): Promise<void> {
    const slot = this.#slots.get(name)!;
    slot.args = undefined;
    if (slot.timer) {
      clearTimeout(slot.timer);
      slot.timer = undefined;
    }
    const child = slot.child;
    if (!child) {
      slot.status = { ...slot.status, state: 'off', pid: undefined, url: undefined };
      return;
    }
    slot.status.state = 'stopping';
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), this.#limits.nodeStopMs);
    await slot.exited;
    clearTimeout(killer);
  }
}

/** The address a service's first stdout line announces: serve's JSON `url`, seed's `address`, or `listening on URL`. */
export function listeningUrl(line: string): string | undefined {
  const m = /^listening on (\S+)$/.exec(line);
  if (m) return m[1];
  if (line.startsWith('{')) {
    try {
      const o = JSON.parse(line) as { msg?: unknown; url?: unknown; address?: unknown };
      if (o.msg === 'listening' && typeof o.url === 'string') return o.url;
      if (o.msg === 'listening' && typeof o.address === 'string') return o.address;
    } catch {
      // not JSON: not the line we look for
    }
  }
  return undefined;
}

/** Complete lines of a stream; a line longer than `max` bytes is cut there (the rest of it dropped). */
function splitLines(stream: NodeJS.ReadableStream, max: number, onLine: (line: string) => void): void {
  let buf = '';
  let dropping = false;
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    let start = 0;
    for (let i = chunk.indexOf('\n'); i !== -1; i = chunk.indexOf('\n', start)) {
      const piece = chunk.slice(start, i);
      if (!dropping) onLine((buf + piece).slice(0, max));
      buf = '';
      dropping = false;
      start = i + 1;
    }
    if (!dropping) {
      buf += chunk.slice(start);
      if (buf.length > max) {
        onLine(buf.slice(0, max));
        buf = '';
        dropping = true;
      }
    }
  });
  stream.on('end', () => {
    if (buf && !dropping) onLine(buf);
  });
}
