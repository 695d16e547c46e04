// The process's one hashing thread, for the whole-file downloads that want their BEP 52 piece map as well
// as their SHA-256 (mirror sync's piece layers: DownloadContext.hashPieces). A worker thread costs some 20 MB
// of RSS on this Node (docs/BENCHMARKS.md, bench:mirrors), and a second one was no faster on two cores
// (bench:node), so there is one, shared by every such download, started by the first and kept
// (unreferenced while idle: it never holds the process open) until it dies; the next user then starts
// another. Other downloads hash on the main thread: fetch's whole files as they arrive (download.ts),
// segmented downloads' pieces and files (piece-hasher.ts), where the thread bought no time.
//
// StreamHash: each batch the download has just written is handed over (transferred, not copied again)
// and the thread takes the SHA-256 of the file and its 16 KiB block hashes folded per piece, in the
// download's own pass over the bytes (hashing the blocks afterwards meant reading each file back). At most
// limits.downloadHashAheadBytes may wait per download: past it the writer waits, so a slow thread slows
// the download instead of holding its bytes in memory.
//
// The same module is the worker: started with workerData.role === ROLE, it serves the messages below.
import { createHash, type Hash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { SourcemeshError, fromSystemError } from '../errors.ts';
import { PieceMapBuilder, type PieceMap } from './piece-map.ts';

const ROLE = 'sourcemesh-hash-thread';
/** The thread's name, as ps and /proc/PID/task/TID/comm show it (15 characters at most). */
export const HASH_THREAD_NAME = 'sourcemesh-hash';
/** File bytes read per read(2) of a prefix: whole blocks, as pieceMapOfFile reads. */
const READ_BYTES = 1 << 20;

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

/** A user of the thread: told of messages for its id, and of the thread's death. */
interface Client {
  receive(m: FromWorker): void;
  fail(err: Error): void;
}

/** The thread and its users. */
class Thread {
  readonly worker: Worker;
  failed?: Error;
  private readonly clients = new Map<number, Client>();
  private seq = 0;

  constructor() {
    this.worker = new Worker(new URL(import.meta.url), { name: HASH_THREAD_NAME, workerData: { role: ROLE } });
    this.worker.unref();
    this.worker.on('message', (m: FromWorker) => this.clients.get(m.id)?.receive(m));
    const dead = (why: string, cause?: Error) => {
      // The thread is ours: its death is no answer about any file, and no "could not read" either.
      this.failed ??= new SourcemeshError('E_INTERNAL', `the hashing thread ${why}`, {}, cause ? { cause } : undefined);
      if (shared === this) shared = undefined; // the next user starts a new one
      for (const c of this.clients.values()) c.fail(this.failed);
      this.clients.clear();
    };
    this.worker.once('error', (err) => dead(`failed: ${err.message}`, err));
    this.worker.once('exit', (code) => dead(`exited with ${code}`));
  }

  nextId(): number {
    return ++this.seq;
  }

  /** Referenced (keeping the process alive) only while it has users. */
  join(id: number, c: Client): void {
    this.clients.set(id, c);
    if (this.clients.size === 1) this.worker.ref();
  }

  leave(id: number): void {
    if (this.clients.delete(id) && this.clients.size === 0) this.worker.unref();
  }

  post(m: ToWorker, transfer: ArrayBuffer[] = []): void {
    if (!this.failed) this.worker.postMessage(m, transfer);
  }
}

let shared: Thread | undefined;
const thread = (): Thread => (shared ??= new Thread());

export interface StreamDigest {
  sha256: string;
  /** With a piece length asked for: the bytes' BEP 52 piece map. */
  pieceMap?: PieceMap;
}

/**
 * One download's hashes on the thread. update() takes ownership of the buffer (it is transferred: the
 * caller must not use it again, and it must own its whole ArrayBuffer). Messages are handled in order, so
 * a reset() or result() applies after every update() before it.
 */
export class StreamHash implements Client {
  private readonly thread: Thread;
  private readonly id: number;
  private readonly aheadBytes: number;
  private outstanding = 0;
  private failure: Error | undefined;
  private roomWaiter: { resolve: () => void; reject: (e: Error) => void } | undefined;
  private resultWaiter: { resolve: (d: StreamDigest) => void; reject: (e: Error) => void } | undefined;
  private prefixWaiter: { resolve: () => void; reject: (e: Error) => void } | undefined;
  private closed = false;

  constructor(opts: { pieceLength?: number; aheadBytes: number }) {
    this.aheadBytes = opts.aheadBytes;
    this.thread = thread();
    this.id = this.thread.nextId();
    this.thread.join(this.id, this);
    this.thread.post({ op: 'open', id: this.id, pieceLength: opts.pieceLength });
  }

  /** Hash the file's first `bytes` (read by the thread); resolves once done. */
  prefix(file: string, bytes: number): Promise<void> {
    this.throwIfFailed();
    return new Promise((resolve, reject) => {
      this.prefixWaiter = { resolve, reject };
      this.thread.post({ op: 'prefix', id: this.id, file, bytes });
    });
  }

  /** Hash `buf` (transferred); a promise when more than aheadBytes wait to be hashed. */
  update(buf: Buffer): void | Promise<void> {
    this.throwIfFailed();
    if (buf.byteOffset !== 0 || buf.byteLength !== buf.buffer.byteLength) throw new SourcemeshError('E_INTERNAL', 'StreamHash.update: the buffer must own its whole ArrayBuffer');
    this.outstanding += buf.length;
    this.thread.post({ op: 'data', id: this.id, buf }, [buf.buffer as ArrayBuffer]);
    if (this.outstanding <= this.aheadBytes) return;
    return new Promise<void>((resolve, reject) => {
      this.roomWaiter = { resolve, reject };
    });
  }

  /** Forget every byte hashed so far (the partial was truncated). */
  reset(): void {
    this.throwIfFailed();
    this.thread.post({ op: 'reset', id: this.id });
  }

  /** The digest of every byte given since the last reset; the stream is done after it. */
  result(): Promise<StreamDigest> {
    this.throwIfFailed();
    return new Promise((resolve, reject) => {
      this.resultWaiter = { resolve, reject };
      this.thread.post({ op: 'end', id: this.id });
    });
  }

  /** Free the stream's state on the thread (after result(), or on the way out of a failed download). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (!this.failure) this.thread.post({ op: 'drop', id: this.id });
    this.thread.leave(this.id);
  }

  /** @internal from the thread */
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
    } else if (m.op === 'error') {
      // Our own errors keep their code; a system error (reading a prefix) is named like any read of the file.
      this.fail(m.code?.startsWith('E_') ? new SourcemeshError(m.code as 'E_INTERNAL', m.message) : fromSystemError(Object.assign(new Error(m.message), { code: m.code }), m.file ?? 'the hashing thread'));
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
}

// ---- the worker ----

interface Stream {
  sha: Hash;
  pieceLength?: number;
  pieces?: PieceMapBuilder;
}

function serve(): void {
  const port = parentPort!;
  const send = (m: FromWorker) => port.postMessage(m);
  const streams = new Map<number, Stream>();
  const scratch = Buffer.allocUnsafe(READ_BYTES);
  const fresh = (pieceLength?: number): Stream => ({ sha: createHash('sha256'), pieceLength, ...(pieceLength !== undefined ? { pieces: new PieceMapBuilder(pieceLength) } : {}) });

  port.on('message', (m: ToWorker) => {
    if (m.op === 'open') return void streams.set(m.id, fresh(m.pieceLength));
    if (m.op === 'drop') return void streams.delete(m.id);
    const s = streams.get(m.id);
    if (!s) return;
    try {
      switch (m.op) {
        case 'data':
          s.sha.update(m.buf);
          s.pieces?.update(m.buf);
          send({ op: 'ack', id: m.id, bytes: m.buf.length });
          break;
        case 'prefix': {
          const fd = openSync(m.file, 'r');
          try {
            for (let pos = 0; pos < m.bytes;) {
              const n = readSync(fd, scratch, 0, Math.min(scratch.length, m.bytes - pos), pos);
              if (n === 0) throw new SourcemeshError('E_IO', `${m.file}: ended after ${pos} of ${m.bytes} bytes while hashing it`);
              s.sha.update(scratch.subarray(0, n));
              s.pieces?.update(scratch.subarray(0, n));
              pos += n;
            }
          } finally {
            closeSync(fd);
          }
          send({ op: 'ack', id: m.id, bytes: -1 });
          break;
        }
        case 'reset':
          streams.set(m.id, fresh(s.pieceLength));
          break;
        case 'end': {
          streams.delete(m.id);
          const map = s.pieces?.finish();
          send({ op: 'result', id: m.id, sha256: s.sha.digest('hex'), ...(map ? { root: map.root, layer: map.layer, pieceLength: map.pieceLength } : {}) });
          break;
        }
      }
    } catch (err) {
      streams.delete(m.id);
      const e = err as Error & { code?: string };
      send({ op: 'error', id: m.id, message: e.message, code: typeof e.code === 'string' ? e.code : undefined, ...(m.op === 'prefix' ? { file: m.file } : {}) });
    }
  });
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === ROLE) serve();
