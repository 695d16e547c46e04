// A download's hashes taken on a worker thread, in the download's own pass over the bytes: the SHA-256 of
// the file and, when asked, its BEP 52 piece map (a SHA-256 of every 16 KiB block, folded per piece). Mirror
// sync publishes a piece layer beside every file; hashing the blocks afterwards meant reading each file
// back and a second pass over the bytes on other threads (bench:node, docs/BENCHMARKS.md). Here each batch
// the download has just written is handed over (transferred, not copied again) and hashed while the next
// is received; the main thread only receives and writes.
// A bounded number of bytes may wait to be hashed per download (limits.downloadHashAheadBytes): past it the
// writer waits, so a slow thread slows the download instead of holding its bytes in memory.
// The same module is the worker.
import { createHash, type Hash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { SourcemeshError, fromSystemError } from '../errors.ts';
import { PieceMapBuilder, type PieceMap } from './piece-map.ts';

const ROLE = 'sourcemesh-download-hash';

type ToWorker =
  | { op: 'open'; id: number; pieceLength?: number }
  /** Hash the first `bytes` of `file` (a partial adopted from an earlier run or source). */
  | { op: 'prefix'; id: number; file: string; bytes: number }
  | { op: 'data'; id: number; buf: Uint8Array }
  | { op: 'reset'; id: number }
  | { op: 'end'; id: number }
  | { op: 'drop'; id: number };

type FromWorker =
  | { op: 'ack'; id: number; bytes: number }
  | { op: 'result'; id: number; sha256: string; root?: Uint8Array; layer?: Uint8Array[]; pieceLength?: number }
  | { op: 'error'; id: number; message: string; code?: string; file?: string };

export interface StreamDigest {
  sha256: string;
  /** With a piece length asked for: the bytes' BEP 52 piece map. */
  pieceMap?: PieceMap;
}

interface Lane {
  worker: Worker;
  streams: Map<number, StreamHash>;
}

let lanes: Lane[] = [];
let seq = 0;

/** The lane with the fewest open streams (a new thread while there are fewer than cores). */
function pickLane(): Lane {
  const size = Math.max(1, availableParallelism());
  let best = lanes.reduce<Lane | undefined>((b, l) => (!b || l.streams.size < b.streams.size ? l : b), undefined);
  if (!best || (best.streams.size > 0 && lanes.length < size)) best = startLane();
  return best;
}

function startLane(): Lane {
  const lane: Lane = { worker: new Worker(new URL(import.meta.url), { workerData: { role: ROLE } }), streams: new Map() };
  lane.worker.unref();
  lanes.push(lane);
  lane.worker.on('message', (m: FromWorker) => lane.streams.get(m.id)?.receive(m));
  // A thread that dies fails only its own streams; the next stream starts a new thread.
  const dead = (why: string) => {
    lanes = lanes.filter((l) => l !== lane);
    for (const s of lane.streams.values()) s.fail(new SourcemeshError('E_INTERNAL', `the download hash thread ${why}`));
    lane.streams.clear();
  };
  lane.worker.once('error', (err) => dead(`failed: ${err.message}`));
  lane.worker.once('exit', (code) => dead(`exited with ${code}`));
  return lane;
}

/**
 * One download's hashes on a thread. update() takes ownership of the buffer (it is transferred: the caller
 * must not use it again, and it must own its whole ArrayBuffer). Messages are handled in order, so a
 * reset() or result() applies after every update() before it.
 */
export class StreamHash {
  private readonly lane: Lane;
  private readonly id = ++seq;
  private readonly aheadBytes: number;
  private outstanding = 0;
  private failure: Error | undefined;
  private roomWaiter: { resolve: () => void; reject: (e: Error) => void } | undefined;
  private resultWaiter: { resolve: (d: StreamDigest) => void; reject: (e: Error) => void } | undefined;
  private prefixWaiter: { resolve: () => void; reject: (e: Error) => void; bytes: number } | undefined;
  private closed = false;

  constructor(opts: { pieceLength?: number; aheadBytes: number }) {
    this.aheadBytes = opts.aheadBytes;
    this.lane = pickLane();
    this.lane.streams.set(this.id, this);
    if (this.lane.streams.size === 1) this.lane.worker.ref();
    this.post({ op: 'open', id: this.id, pieceLength: opts.pieceLength });
  }

  /** Hash the file's first `bytes` (read by the thread); resolves once done. */
  prefix(file: string, bytes: number): Promise<void> {
    this.throwIfFailed();
    return new Promise((resolve, reject) => {
      this.prefixWaiter = { resolve, reject, bytes };
      this.post({ op: 'prefix', id: this.id, file, bytes });
    });
  }

  /** Hash `buf` (transferred); a promise when more than aheadBytes wait to be hashed. */
  update(buf: Buffer): void | Promise<void> {
    this.throwIfFailed();
    if (buf.byteOffset !== 0 || buf.byteLength !== buf.buffer.byteLength) throw new SourcemeshError('E_INTERNAL', 'StreamHash.update: the buffer must own its whole ArrayBuffer');
    this.outstanding += buf.length;
    this.lane.worker.postMessage({ op: 'data', id: this.id, buf } satisfies ToWorker, [buf.buffer as ArrayBuffer]);
    if (this.outstanding <= this.aheadBytes) return;
    return new Promise<void>((resolve, reject) => {
      this.roomWaiter = { resolve, reject };
    });
  }

  /** Forget every byte hashed so far (the partial was truncated). */
  reset(): void {
    this.throwIfFailed();
    this.post({ op: 'reset', id: this.id });
  }

  /** The digest of every byte given since the last reset; the stream is done after it. */
  result(): Promise<StreamDigest> {
    this.throwIfFailed();
    return new Promise((resolve, reject) => {
      this.resultWaiter = { resolve, reject };
      this.post({ op: 'end', id: this.id });
    });
  }

  /** Free the stream's state on the thread (after result(), or on the way out of a failed download). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (!this.failure) this.post({ op: 'drop', id: this.id });
    this.lane.streams.delete(this.id);
    if (this.lane.streams.size === 0) this.lane.worker.unref();
  }

  /** @internal from the lane */
  receive(m: FromWorker): void {
    if (m.op === 'ack' && m.bytes < 0) {
      const w = this.prefixWaiter;
      this.prefixWaiter = undefined;
      w?.resolve();
    } else if (m.op === 'ack') {
      this.outstanding -= m.bytes;
      if (this.outstanding <= this.aheadBytes && this.roomWaiter) {
        const w = this.roomWaiter;
        this.roomWaiter = undefined;
        w.resolve();
      }
    } else if (m.op === 'result') {
      const w = this.resultWaiter;
      this.resultWaiter = undefined;
      const pieceMap = m.root && m.layer ? { root: Buffer.from(m.root), pieceLength: m.pieceLength!, layer: m.layer.map((h) => Buffer.from(h)) } : undefined;
      w?.resolve({ sha256: m.sha256, ...(pieceMap ? { pieceMap } : {}) });
    } else {
      // Our own errors keep their code; a system error (reading a prefix) is named like any read of the file.
      this.fail(m.code?.startsWith('E_') ? new SourcemeshError(m.code as 'E_INTERNAL', m.message) : fromSystemError(Object.assign(new Error(m.message), { code: m.code }), m.file ?? 'download hash thread'));
    }
  }

  /** @internal the thread died or reported an error: every waiter fails. */
  fail(err: Error): void {
    this.failure ??= err;
    for (const w of [this.roomWaiter, this.resultWaiter, this.prefixWaiter]) w?.reject(this.failure);
    this.roomWaiter = this.resultWaiter = this.prefixWaiter = undefined;
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure;
    if (this.closed) throw new SourcemeshError('E_INTERNAL', 'StreamHash used after close');
  }

  private post(m: ToWorker): void {
    this.lane.worker.postMessage(m);
  }
}

/** Read size for a prefix: whole blocks, as pieceMapOfFile reads. */
const PREFIX_READ = 1 << 20;

if (!isMainThread && (workerData as { role?: string } | null)?.role === ROLE) {
  const streams = new Map<number, { sha: Hash; pieces?: PieceMapBuilder; pieceLength?: number }>();
  const fresh = (pieceLength?: number) => ({ sha: createHash('sha256'), pieceLength, ...(pieceLength !== undefined ? { pieces: new PieceMapBuilder(pieceLength) } : {}) });
  parentPort!.on('message', (m: ToWorker) => {
    const s = streams.get(m.id);
    try {
      switch (m.op) {
        case 'open':
          streams.set(m.id, fresh(m.pieceLength));
          break;
        case 'data':
          if (!s) return;
          s.sha.update(m.buf);
          s.pieces?.update(m.buf);
          parentPort!.postMessage({ op: 'ack', id: m.id, bytes: m.buf.length } satisfies FromWorker);
          break;
        case 'prefix': {
          if (!s) return;
          const buf = Buffer.allocUnsafe(PREFIX_READ);
          const fd = openSync(m.file, 'r');
          try {
            for (let pos = 0; pos < m.bytes;) {
              const n = readSync(fd, buf, 0, Math.min(buf.length, m.bytes - pos), pos);
              if (n === 0) throw new SourcemeshError('E_IO', `${m.file}: ended after ${pos} of ${m.bytes} bytes while hashing it`);
              s.sha.update(buf.subarray(0, n));
              s.pieces?.update(buf.subarray(0, n));
              pos += n;
            }
          } finally {
            closeSync(fd);
          }
          parentPort!.postMessage({ op: 'ack', id: m.id, bytes: -1 } satisfies FromWorker);
          break;
        }
        case 'reset':
          if (s) streams.set(m.id, fresh(s.pieceLength));
          break;
        case 'end': {
          if (!s) return;
          streams.delete(m.id);
          const map = s.pieces?.finish();
          parentPort!.postMessage({ op: 'result', id: m.id, sha256: s.sha.digest('hex'), ...(map ? { root: map.root, layer: map.layer, pieceLength: map.pieceLength } : {}) } satisfies FromWorker);
          break;
        }
        case 'drop':
          streams.delete(m.id);
          break;
      }
    } catch (err) {
      streams.delete(m.id);
      const e = err as Error & { code?: string };
      parentPort!.postMessage({ op: 'error', id: m.id, message: e.message, code: typeof e.code === 'string' ? e.code : undefined, ...(m.op === 'prefix' ? { file: m.file } : {}) } satisfies FromWorker);
    }
  });
}
