// Files' BEP 52 piece maps computed on worker threads, read back from the file: mirror sync makes the
// piece layer of every file it publishes, a SHA-256 of each 16 KiB block. A file it downloads whole gets
// its map from the download's own pass (src/fetch/hash-thread.ts); these threads do the others (already
// published, made by the snapshot generator), as many at once as the machine has cores (bench:node,
// docs/BENCHMARKS.md). The threads are kept for the whole run: starting
// one per file cost some 60 ms of CPU each (loading its modules), about 5% of a clone's CPU.
// The same module is the worker.
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { SourcemeshError, fromSystemError } from '../errors.ts';
import { pieceMapOfFile, type PieceMap } from '../fetch/piece-map.ts';

const ROLE = 'sourcemesh-piece-layer';

type Job = { id: number; file: string; pieceLength: number };
type Reply = { id: number } & ({ ok: true; root: Uint8Array; layer: Uint8Array[] } | { ok: false; message: string; code?: string });

interface Pending {
  job: Job;
  resolve: (m: PieceMap) => void;
  reject: (e: Error) => void;
}

/** A thread and the job it is working on, if any. */
interface Lane {
  worker: Worker;
  busy?: Pending;
}

/**
 * Up to `size` worker threads, each computing one file's piece map at a time; jobs beyond wait in order.
 * Idle threads do not keep the process alive; close() ends them all.
 */
export class PieceLayerThreads {
  private readonly size: number;
  private readonly lanes = new Set<Lane>();
  private readonly queue: Pending[] = [];
  private seq = 0;
  private closed = false;

  constructor(size: number) {
    this.size = Math.max(1, size);
  }

  /** pieceMapOfFile(file, pieceLength), on one of the threads. */
  pieceMap(file: string, pieceLength: number): Promise<PieceMap> {
    if (this.closed) return Promise.reject(new SourcemeshError('E_INTERNAL', `${file}: the piece-layer threads are closed`));
    return new Promise((resolve, reject) => {
      this.queue.push({ job: { id: ++this.seq, file, pieceLength }, resolve, reject });
      this.pump();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.queue.splice(0)) p.reject(new SourcemeshError('E_INTERNAL', `${p.job.file}: the piece-layer threads were closed`));
    await Promise.all([...this.lanes].map((l) => l.worker.terminate()));
    this.lanes.clear();
  }

  private pump(): void {
    while (this.queue.length) {
      let lane = [...this.lanes].find((l) => !l.busy);
      if (!lane && this.lanes.size < this.size) lane = this.start();
      if (!lane) return;
      const p = this.queue.shift()!;
      lane.busy = p;
      lane.worker.ref();
      lane.worker.postMessage(p.job);
    }
  }

  private start(): Lane {
    const lane: Lane = { worker: new Worker(new URL(import.meta.url), { workerData: { role: ROLE } }) };
    this.lanes.add(lane);
    lane.worker.on('message', (r: Reply) => {
      const p = lane.busy;
      if (!p || p.job.id !== r.id) return;
      lane.busy = undefined;
      lane.worker.unref();
      if (r.ok) p.resolve({ root: Buffer.from(r.root), pieceLength: p.job.pieceLength, layer: r.layer.map((h) => Buffer.from(h)) });
      // Our own errors cross the thread as their message and code; a system error (ENOENT, EIO...) as
      // its errno code, named like any other read of this file.
      else if (r.code?.startsWith('E_')) p.reject(new SourcemeshError(r.code as 'E_INTERNAL', r.message));
      else p.reject(fromSystemError(Object.assign(new Error(r.message), { code: r.code }), p.job.file));
      this.pump();
    });
    // A thread that dies takes only its own job with it; the next job starts a new thread.
    const dead = (why: string, cause?: Error) => {
      if (!this.lanes.delete(lane)) return;
      const p = lane.busy;
      lane.busy = undefined;
      p?.reject(new SourcemeshError('E_INTERNAL', `${p.job.file}: the piece-layer thread ${why}`, {}, cause ? { cause } : undefined));
      if (!this.closed) this.pump();
    };
    lane.worker.once('error', (err) => dead(`failed: ${err.message}`, err));
    lane.worker.once('exit', (code) => dead(`exited with ${code} before answering`));
    return lane;
  }
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === ROLE) {
  parentPort!.on('message', async ({ id, file, pieceLength }: Job) => {
    try {
      const map = await pieceMapOfFile(file, pieceLength);
      parentPort!.postMessage({ id, ok: true, root: map.root, layer: map.layer } satisfies Reply);
    } catch (err) {
      const e = err as Error & { code?: string };
      parentPort!.postMessage({ id, ok: false, message: e.message, code: typeof e.code === 'string' ? e.code : undefined } satisfies Reply);
    }
  });
}
