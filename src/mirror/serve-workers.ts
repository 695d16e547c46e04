// `serve --workers N`: N processes serve one address. Node has no shared memory between processes, so
// per-address limits (connections, buffers, request rate; docs/OPERATIONS.md "Limits") would hold N
// times over if each worker saw a share of every client. Instead one small process accepts every
// connection (paused, no byte read) and hands it to a worker chosen by the client's address: all the
// connections of one address go to the same worker, whose limits are then the address's limits.
// With per-client limits off (`--max-connections-per-client 0`, behind a proxy or for a benchmark)
// connections go round robin. Limits of the whole server (connections, buffers, cache, open files)
// are split evenly among the workers, so the sum stays what one process would hold.
//
// The hand-over is Node's own (ChildProcess.send of a socket: the descriptor travels over the IPC
// channel with SCM_RIGHTS), the same mechanism node:cluster's round-robin scheduling uses.
import type { ChildProcess } from 'node:child_process';
import net, { type AddressInfo, type Socket } from 'node:net';
import { fromSystemError } from '../errors.ts';
import type { Limits } from '../limits.ts';
import type { Logger } from '../logger.ts';
import { clientKey } from '../net/rate-limit.ts';
import { listenOn } from '../net/listen.ts';

/** The message a worker gets with each connection, and the one it sends once it can take them. */
export const HANDED = 'sourcemesh:connection';
export const READY = 'sourcemesh:ready';

/** FNV-1a over the client key: stable for the life of the pool (a client can only choose its own worker). */
export function keyHash(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/**
 * The worker for a connection (pure). With affinity, the client's worker by its hash, or while that
 * one is down the next one up (so a client's connections stay together); without, the next one up
 * after `last`. Undefined when no worker is up.
 */
export function pickWorker(key: string, up: readonly boolean[], affinity: boolean, last: number): number | undefined {
  const n = up.length;
  const start = affinity ? keyHash(key) % n : (last + 1) % n;
  for (let i = 0; i < n; i++) {
    const w = (start + i) % n;
    if (up[w]) return w;
  }
  return undefined;
}

/** One worker's share of the server-wide limits (per-client ones are unchanged: a client is in one worker). */
export function workerLimits(limits: Limits, workers: number, maxConnections: number): { limits: Limits; maxConnections: number } {
  const share = (n: number, floor: number) => Math.max(floor, Math.floor(n / workers));
  return {
    maxConnections: share(maxConnections, 1),
    limits: {
      ...limits,
      serveBufferBytes: share(limits.serveBufferBytes, limits.serveStreamBufferBytes + limits.serveSmallBufferBytes),
      serveBufferReserveBytes: share(limits.serveBufferReserveBytes, 0),
      serveBufferFloorBytes: share(limits.serveBufferFloorBytes, 0),
      serveCacheBytes: share(limits.serveCacheBytes, limits.serveCachedFileBytes),
      serveOpenFiles: share(limits.serveOpenFiles, 4),
      serveRateClients: share(limits.serveRateClients, 1024),
    },
  };
}

export interface PoolOptions {
  host: string;
  port: number;
  workers: number;
  /** Per-client limits are on: keep each address on one worker. */
  affinity: boolean;
  /** Start worker `i` (a child process with an IPC channel that runs `serve` with `listen: false`), for the pool at `address`. */
  spawn: (i: number, address: AddressInfo) => ChildProcess;
  log?: Logger;
  /** A worker that exits while the pool runs is started again after this long. */
  restartMs?: number;
}

export class WorkerPool {
  readonly address: AddressInfo;
  private readonly server: net.Server;
  private readonly children: (ChildProcess | undefined)[];
  private readonly up: boolean[];
  /** Sockets sent to each worker and not yet written to its channel. */
  private readonly pending: Set<Socket>[];
  private readonly opts: PoolOptions;
  private last = -1;
  private stopping = false;
  private readonly timers = new Set<NodeJS.Timeout>();

  private constructor(opts: PoolOptions, server: net.Server, address: AddressInfo) {
    this.opts = opts;
    this.server = server;
    this.address = address;
    this.children = Array.from({ length: opts.workers }, () => undefined);
    this.up = Array.from({ length: opts.workers }, () => false);
    this.pending = Array.from({ length: opts.workers }, () => new Set<Socket>());
  }

  /** Start every worker, wait until each can take connections, then listen. */
  static async start(opts: PoolOptions): Promise<WorkerPool> {
    const server = net.createServer({ pauseOnConnect: true, noDelay: true });
    await listenOn(server, { host: opts.host, port: opts.port }).catch((err) => {
      throw fromSystemError(err, `cannot listen on ${opts.host}:${opts.port}`);
    });
    const pool = new WorkerPool(opts, server, server.address() as AddressInfo);
    try {
      await Promise.all(pool.children.map((_, i) => pool.startWorker(i)));
    } catch (err) {
      await pool.stop();
      throw err;
    }
    server.on('connection', (socket: Socket) => pool.hand(socket));
    return pool;
  }

  /** Workers up now. */
  get workersUp(): number {
    return this.up.filter(Boolean).length;
  }

  /** Process ids of the workers (tests, SIGHUP forwarding). */
  pids(): number[] {
    return this.children.flatMap((c) => (c?.pid === undefined ? [] : [c.pid]));
  }

  /** Pass a signal on to every worker (SIGHUP: reindex, reopen logs). */
  signal(sig: NodeJS.Signals): void {
    for (const c of this.children) if (c && c.exitCode === null && c.signalCode === null) c.kill(sig);
  }

  private startWorker(i: number): Promise<void> {
    const child = this.opts.spawn(i, this.address);
    this.children[i] = child;
    return new Promise<void>((resolve, reject) => {
      const onMessage = (m: unknown) => {
        if (m !== READY) return;
        this.up[i] = true;
        resolve();
      };
      child.on('message', onMessage);
      child.once('exit', (code, sig) => {
        this.up[i] = false;
        for (const s of this.pending[i]!) s.destroy();
        this.pending[i]!.clear();
        child.off('message', onMessage);
        reject(new Error(`serve worker ${i} exited (${sig ?? code}) before it was ready`));
        if (this.stopping) return;
        this.opts.log?.warn({ worker: i, code, signal: sig }, 'a serve worker exited; starting it again');
        const timer = setTimeout(() => {
          this.timers.delete(timer);
          if (!this.stopping) this.startWorker(i).catch(() => undefined);
        }, this.opts.restartMs ?? 1000);
        this.timers.add(timer);
      });
    });
  }

  private hand(socket: Socket): void {
    const w = pickWorker(clientKey(socket.remoteAddress), this.up, this.opts.affinity, this.last);
    const child = w === undefined ? undefined : this.children[w];
    if (w === undefined || child === undefined || !child.connected) {
      socket.destroy();
      return;
    }
    this.last = w;
    // The descriptor travels to the worker; ours is closed once it is written to the channel (the one
    // in flight keeps the connection open until the worker takes it, and closes it if the worker died
    // first). Not Node's keepOpen: false, which leaves ours open for good when the worker dies before
    // acknowledging. Sockets still queued for a worker that exits are closed with it.
    const pending = this.pending[w]!;
    pending.add(socket);
    child.send(HANDED, socket, { keepOpen: true }, () => {
      pending.delete(socket);
      socket.destroy();
    });
  }

  /**
   * Stop accepting and end the workers: SIGTERM each (their own graceful shutdown, bounded by their
   * --shutdown-timeout), and resolve once all have exited.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const t of this.timers) clearTimeout(t);
    this.server.close();
    await Promise.all(this.children.map((c) => {
      if (!c || c.exitCode !== null || c.signalCode !== null) return undefined;
      return new Promise<void>((resolve) => {
        c.once('exit', () => resolve());
        c.kill('SIGTERM');
      });
    }));
  }
}
