// `serve --workers N`: the CLI's side of the worker pool (src/mirror/serve-workers.ts). The pool's
// process runs this command again as each worker, with SOURCEMESH_SERVE_WORKER=I/N/HOST/PORT in the
// environment: a worker takes its flags from the same command line, its connections from the pool.
import { fork } from 'node:child_process';
import type { Socket } from 'node:net';
import { SourcemeshError } from '../errors.ts';
import type { Limits } from '../limits.ts';
import type { Logger } from '../logger.ts';
import type { MirrorServer } from '../mirror/server.ts';
import { HANDED, READY, WorkerPool, workerLimits } from '../mirror/serve-workers.ts';

export const WORKER_ENV = 'SOURCEMESH_SERVE_WORKER';

export interface WorkerRole {
  index: number;
  count: number;
  /** The pool's address (what clients connect to). */
  host: string;
  port: number;
}

/** This process's place in a pool, from the environment the pool set; undefined for the pool itself or a lone server. */
export function workerRole(env: NodeJS.ProcessEnv): WorkerRole | undefined {
  const v = env[WORKER_ENV];
  if (v === undefined) return undefined;
  const m = /^(\d+)\/(\d+)\/(.+)\/(\d+)$/.exec(v);
  if (!m) throw new SourcemeshError('E_USAGE', `${WORKER_ENV}=${v}: not set by a serve pool (expected I/N/HOST/PORT)`);
  return { index: Number(m[1]), count: Number(m[2]), host: m[3]!, port: Number(m[4]) };
}

/** The limits and connection cap of one worker of `workers`. */
export function limitsOfWorker(limits: Limits, workers: number, maxConnections: number): { limits: Limits; maxConnections: number } {
  return workers > 1 ? workerLimits(limits, workers, maxConnections) : { limits, maxConnections };
}

/** Start the pool: `workers` copies of this command, each handed the connections of its addresses. */
export function startPool(host: string, port: number, workers: number, affinity: boolean, log: Logger): Promise<WorkerPool> {
  const script = process.argv[1]!;
  const args = process.argv.slice(2);
  return WorkerPool.start({
    host, port, workers, affinity, log,
    spawn: (i, address) => fork(script, args, {
      env: { ...process.env, [WORKER_ENV]: `${i}/${workers}/${address.address}/${address.port}` },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'json',
    }),
  });
}

/**
 * In a worker: take the connections the pool hands over and say we are ready. `gone` resolves when the
 * pool is (its IPC channel closed: it stopped, or was killed), so the worker ends too; `leave` closes
 * the channel once the worker has shut down (the open channel would keep the process alive).
 */
export function joinPool(server: MirrorServer): { gone: Promise<void>; leave(): void } {
  process.on('message', (m: unknown, socket?: Socket) => {
    if (m === HANDED && socket) server.accept(socket);
  });
  process.send!(READY);
  return {
    gone: new Promise((resolve) => process.once('disconnect', () => resolve())),
    leave: () => {
      if (process.connected) process.disconnect();
    },
  };
}
