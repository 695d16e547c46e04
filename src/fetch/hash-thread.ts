// The one hashing thread of a process: every download that hashes off the main thread uses it.
// A worker thread costs some 20 MB of RSS on this Node (docs/BENCHMARKS.md, bench:mirrors), and a second
// one was no faster on two cores (bench:node), so there is one, shared, started by the first user and
// kept (unreferenced while idle: it never holds the process open) until it dies; the next user then
// starts another. Two kinds of work, both in the download's own pass over the bytes:
//
// - StreamHash (a whole-file download that wants its BEP 52 piece map too: mirror sync's piece layers):
//   each batch the download has just written is handed over (transferred, not copied again) and the
//   thread takes the SHA-256 of the file and, when asked, its 16 KiB block hashes folded per piece. At
//   most limits.downloadHashAheadBytes may wait per download: past it the writer waits, so a slow thread
//   slows the download instead of holding its bytes in memory.
// - PieceHasher (segmented downloads): the BEP 52 piece hash of each piece as it arrives, checked against
//   a trusted piece map, and the SHA-256 of the whole file, read back in file order as its written prefix
//   grows (pieces arrive out of order; hashing only once the file is complete would add a whole pass
//   after the last byte arrived).
//
// The same module is the worker: started with workerData.role === ROLE, it serves the messages below.
import { createHash, type Hash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { SourcemeshError, fromSystemError } from '../errors.ts';
import { PieceMapBuilder, blockHashes, pieceHashOfLeaves, type PieceMap } from './piece-map.ts';

const ROLE = 'sourcemesh-hash-thread';
/** The thread's name, as ps and /proc/PID/task/TID/comm show it (15 characters at most). */
export const HASH_THREAD_NAME = 'sourcemesh-hash';
/** File bytes read per read(2): whole blocks, as pieceMapOfFile reads. */
const READ_BYTES = 1 << 20;

type Fault = { message: string; code?: string; syscall?: string };

type ToWorker =
  // StreamHash: bytes pushed in order.
  | { op: 'open'; id: number; pieceLength?: number }
  /** Hash the first `bytes` of `file` (a partial adopted from an earlier run or source). */
  | { op: 'prefix'; id: number; file: string; bytes: number }
  | { op: 'data'; id: number; buf: Uint8Array }
  | { op: 'reset'; id: number }
  | { op: 'end'; id: number }
  | { op: 'drop'; id: number }
  // PieceHasher: pieces hashed and handed back; a file read back as its prefix grows.
  | { op: 'piece'; call: number; buf: ArrayBuffer; length: number; pieceLength: number }
  | { op: 'watch'; id: number; path: string }
  | { op: 'grown'; id: number; bytes: number }
  | { op: 'digest'; call: number; id: number; size: number };

type FromWorker =
  | { op: 'ack'; id: number; bytes: number }
  | { op: 'result'; id: number; sha256: string; root?: Uint8Array; layer?: Uint8Array[]; pieceLength?: number }
  | { op: 'error'; id: number; message: string; code?: string; file?: string }
  | { op: 'piece'; call: number; hash: Uint8Array; leaves: Uint8Array; buf: ArrayBuffer }
  | { op: 'digest'; call: number; hex?: string; short?: string; fault?: Fault };

/** A user of the thread: told of messages for its id, and of the thread's death. */
interface Client {
  receive(m: FromWorker): void;
  fail(err: Error): void;
}

/** The thread, its users and the calls waiting for an answer. */
class Thread {
  readonly worker: Worker;
  failed?: Error;
  private readonly clients = new Map<number, Client>();
  private readonly calls = new Map<number, { resolve: (r: FromWorker) => void; reject: (e: Error) => void }>();
  private seq = 0;

  constructor() {
    this.worker = new Worker(new URL(import.meta.url), { name: HASH_THREAD_NAME, workerData: { role: ROLE } });
    this.worker.unref();
    this.worker.on('message', (m: FromWorker) => {
      if ('call' in m) {
        const w = this.calls.get(m.call);
        this.calls.delete(m.call);
        w?.resolve(m);
      } else this.clients.get(m.id)?.receive(m);
    });
    const dead = (why: string, cause?: Error) => {
      // The thread is ours: its death is no answer about any file, and no "could not read" either.
      this.failed ??= new SourcemeshError('E_INTERNAL', `the hashing thread ${why}`, {}, cause ? { cause } : undefined);
      if (shared === this) shared = undefined; // the next user starts a new one
      for (const c of this.clients.values()) c.fail(this.failed);
      for (const w of this.calls.values()) w.reject(this.failed);
      this.clients.clear();
      this.calls.clear();
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

  call(m: ToWorker & { call: number }, transfer: ArrayBuffer[] = []): Promise<FromWorker> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.calls.set(m.call, { resolve, reject });
      try {
        this.worker.postMessage(m, transfer);
      } catch (err) {
        // Nothing was sent (memory that may not move, see pieceHash): no answer is coming.
        this.calls.delete(m.call);
        reject(err);
      }
    });
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

const isDataCloneError = (err: unknown): boolean => err instanceof Error && err.name === 'DataCloneError';

/** One segmented download's hashes on the thread: its pieces', and its file's as the written prefix grows. */
export class PieceHasher implements Client {
  private readonly thread: Thread;
  private readonly id: number;
  private readonly path: string;
  private prefix = 0;
  private closed = false;

  /** Hash the file at `path` (read by the thread as its prefix is written) and the pieces sent here. */
  constructor(path: string) {
    this.path = path;
    this.thread = thread();
    this.id = this.thread.nextId();
    this.thread.join(this.id, this);
    this.thread.post({ op: 'watch', id: this.id, path });
  }

  /**
   * The piece hash of `body` (BEP 52, `pieceLength` a power of two), and the same bytes back. The
   * memory goes to the thread and returns without a copy when `body` starts its ArrayBuffer (which the
   * caller then no longer reads through `body`: use the returned `body`, or `memory` for all of it).
   */
  async pieceHash(body: Buffer, pieceLength: number): Promise<{ hash: Buffer; body: Buffer; memory: Buffer; leaves: Buffer }> {
    const length = body.length; // `body` reads as empty once its memory has moved
    const own = body.byteOffset === 0 && body.buffer instanceof ArrayBuffer;
    const ask = (buf: ArrayBuffer) => this.thread.call({ op: 'piece', call: this.thread.nextId(), buf, length, pieceLength }, [buf]);
    const copy = () => new Uint8Array(body).buffer;
    // A slice of Node's Buffer pool (Buffer.from and allocUnsafe below half of Buffer.poolSize, 64 KiB
    // in Node 24) may start at offset 0 but is marked untransferable: postMessage refuses it
    // (DataCloneError) before sending anything, and the bytes are copied instead.
    const r = own ? await ask(body.buffer as ArrayBuffer).catch((err) => { if (isDataCloneError(err)) return ask(copy()); throw err; }) : await ask(copy());
    if (r.op !== 'piece') throw new SourcemeshError('E_INTERNAL', 'unexpected reply from the hashing thread');
    const memory = Buffer.from(r.buf);
    // The leaves too (32 bytes per 16 KiB block): an uploading leecher keeps them to check each block it sends, without hashing the piece again.
    return { hash: Buffer.from(r.hash), body: memory.subarray(0, length), memory, leaves: Buffer.from(r.leaves.buffer, r.leaves.byteOffset, r.leaves.byteLength) };
  }

  /** Bytes [0, bytes) of the file are written and final: they may be hashed now. */
  prefixWritten(bytes: number): void {
    if (bytes <= this.prefix) return;
    this.prefix = bytes;
    this.thread.post({ op: 'grown', id: this.id, bytes });
  }

  /**
   * SHA-256 (hex) of the file's first `size` bytes, all written by now; undefined when the file is shorter
   * than that (its bytes are not all there: no hash of them). A read that fails (EIO, EISDIR...) is
   * thrown as the fault it is, naming the file; so is a failure of the thread.
   */
  async digest(size: number): Promise<string | undefined> {
    const r = await this.thread.call({ op: 'digest', call: this.thread.nextId(), id: this.id, size });
    if (r.op !== 'digest') throw new SourcemeshError('E_INTERNAL', 'unexpected reply from the hashing thread');
    if (r.fault) {
      const err = Object.assign(new Error(r.fault.message), { code: r.fault.code, syscall: r.fault.syscall });
      throw fromSystemError(err, `${this.path}: cannot hash`);
    }
    return r.hex;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.thread.post({ op: 'drop', id: this.id });
    this.thread.leave(this.id);
  }

  /** @internal nothing is pushed to a piece hasher: its answers come to its calls. */
  receive(): void {}

  /** @internal its calls fail with the thread. */
  fail(): void {}
}

// ---- the worker ----

interface Stream {
  kind: 'stream';
  sha: Hash;
  pieceLength?: number;
  pieces?: PieceMapBuilder;
}

interface Watched {
  kind: 'file';
  path: string;
  fd?: number;
  hash: Hash;
  hashed: number;
  target: number;
  /** Ends before the bytes asked for: no digest of them. */
  short?: string;
  /** A read failed: reported as the fault it is. */
  fault?: Fault;
  digests: { call: number; size: number }[];
}

function serve(): void {
  const port = parentPort!;
  const send = (m: FromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);
  const states = new Map<number, Stream | Watched>();
  const scratch = Buffer.allocUnsafe(READ_BYTES);
  const freshStream = (pieceLength?: number): Stream => ({ kind: 'stream', sha: createHash('sha256'), pieceLength, ...(pieceLength !== undefined ? { pieces: new PieceMapBuilder(pieceLength) } : {}) });
  let scheduled = false;

  const broken = (f: Watched) => f.short !== undefined || f.fault !== undefined;
  const answer = (f: Watched) => {
    f.digests = f.digests.filter((d) => {
      if (!broken(f) && f.hashed < d.size) return true;
      const ok = !broken(f) && f.hashed === d.size;
      send({ op: 'digest', call: d.call, ...(ok ? { hex: f.hash.copy().digest('hex') } : f.fault ? { fault: f.fault } : { short: f.short ?? `hashed ${f.hashed} of ${d.size} bytes` }) });
      return false;
    });
  };
  // One read per watched file per turn, then back to the event loop: piece requests and stream batches
  // queued meanwhile go first.
  const step = () => {
    scheduled = false;
    let more = false;
    for (const f of states.values()) {
      if (f.kind !== 'file') continue;
      if (!broken(f) && f.hashed < f.target) {
        try {
          f.fd ??= openSync(f.path, 'r');
          const n = readSync(f.fd, scratch, 0, Math.min(READ_BYTES, f.target - f.hashed), f.hashed);
          if (n === 0) f.short = `${f.path}: ends at ${f.hashed} bytes`;
          else {
            f.hash.update(scratch.subarray(0, n));
            f.hashed += n;
          }
        } catch (err) {
          const e = err as NodeJS.ErrnoException;
          f.fault = { message: e.message, code: e.code, syscall: e.syscall };
        }
      }
      answer(f);
      if (!broken(f) && f.hashed < f.target) more = true;
    }
    if (more) schedule();
  };
  const schedule = () => {
    if (!scheduled) {
      scheduled = true;
      setImmediate(step);
    }
  };
  const drop = (id: number) => {
    const s = states.get(id);
    states.delete(id);
    if (s?.kind === 'file' && s.fd !== undefined) closeSync(s.fd);
  };

  port.on('message', (m: ToWorker) => {
    if (m.op === 'piece') {
      const leaves = blockHashes(new Uint8Array(m.buf, 0, m.length));
      const hash = pieceHashOfLeaves(leaves, m.pieceLength);
      send({ op: 'piece', call: m.call, hash, leaves: Buffer.concat(leaves), buf: m.buf }, [m.buf]);
      return;
    }
    if (m.op === 'watch') {
      states.set(m.id, { kind: 'file', path: m.path, hash: createHash('sha256'), hashed: 0, target: 0, digests: [] });
      return;
    }
    if (m.op === 'open') {
      states.set(m.id, freshStream(m.pieceLength));
      return;
    }
    if (m.op === 'drop') return drop(m.id);
    const s = states.get(m.id);
    if (m.op === 'grown' || m.op === 'digest') {
      if (s?.kind !== 'file') {
        if (m.op === 'digest') send({ op: 'digest', call: m.call, fault: { message: 'digest of a file that is not open' } });
        return;
      }
      if (m.op === 'digest') s.digests.push({ call: m.call, size: m.size });
      s.target = Math.max(s.target, m.op === 'digest' ? m.size : m.bytes);
      schedule();
      return;
    }
    if (s?.kind !== 'stream') return;
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
          states.set(m.id, freshStream(s.pieceLength));
          break;
        case 'end': {
          states.delete(m.id);
          const map = s.pieces?.finish();
          send({ op: 'result', id: m.id, sha256: s.sha.digest('hex'), ...(map ? { root: map.root, layer: map.layer, pieceLength: map.pieceLength } : {}) });
          break;
        }
      }
    } catch (err) {
      states.delete(m.id);
      const e = err as Error & { code?: string };
      send({ op: 'error', id: m.id, message: e.message, code: typeof e.code === 'string' ? e.code : undefined, ...(m.op === 'prefix' ? { file: m.file } : {}) });
    }
  });
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === ROLE) serve();
