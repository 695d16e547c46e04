// Hashing for segmented downloads, on a worker thread: the piece hash of each piece as it arrives (BEP
// 52, against a trusted piece map) and the SHA-256 of the whole file, read back in file order as its
// written prefix grows. A GiB costs two SHA-256 passes; on the main thread they would stall the sockets
// (the main thread then is the bottleneck of the download), and hashing the file only once it is
// complete would add a whole pass after the last byte arrived.
//
// One thread serves every file the process downloads at once: a thread costs some 17 MiB, and a second
// one (a thread per pass) was no faster on two cores. It ends when the last file is done with it.
//
// The same module is the worker: started with workerData.role === ROLE, it serves the messages below.
import { closeSync, openSync, readSync } from 'node:fs';
import { createHash, type Hash } from 'node:crypto';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { SourcemeshError, fromSystemError } from '../errors.ts';
import { blockHashes, pieceHashOfLeaves } from './piece-map.ts';

const ROLE = 'sourcemesh-piece-hasher';
/** File bytes hashed per turn of the worker's loop, so that piece requests wait little behind it. */
const READ_BYTES = 1 << 20;

type Request =
  | { type: 'piece'; id: number; buf: ArrayBuffer; length: number; pieceLength: number }
  | { type: 'open'; file: number; path: string }
  | { type: 'prefix'; file: number; bytes: number }
  | { type: 'digest'; id: number; file: number; size: number }
  | { type: 'close'; file: number };
type Reply =
  | { type: 'piece'; id: number; hash: Uint8Array; leaves: Uint8Array; buf: ArrayBuffer }
  | { type: 'digest'; id: number; hex?: string; short?: string; fault?: { message: string; code?: string; syscall?: string } };

/** The thread and the requests waiting for its answers. */
class Thread {
  readonly worker: Worker;
  users = 0;
  failed?: Error;
  private seq = 0;
  private readonly waiting = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();

  constructor() {
    this.worker = new Worker(new URL(import.meta.url), { workerData: { role: ROLE } });
    this.worker.on('message', (r: Reply) => {
      const w = this.waiting.get(r.id);
      this.waiting.delete(r.id);
      w?.resolve(r);
    });
    const fail = (err: Error) => {
      // The thread is ours: its death is no answer about the file, and no "could not read" either.
      this.failed ??= new SourcemeshError('E_INTERNAL', `the hashing thread failed: ${err.message}`, {}, { cause: err });
      if (shared === this) shared = undefined; // the next file starts a new one
      for (const w of this.waiting.values()) w.reject(err);
      this.waiting.clear();
    };
    this.worker.on('error', fail);
    this.worker.on('exit', () => fail(new Error('the hashing thread exited')));
  }

  call(req: Request & { id: number }, transfer: ArrayBuffer[] = []): Promise<Reply> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.waiting.set(req.id, { resolve, reject });
      try {
        this.worker.postMessage(req, transfer);
      } catch (err) {
        // Nothing was sent (memory that may not move, see pieceHash): no answer is coming.
        this.waiting.delete(req.id);
        reject(err);
      }
    });
  }

  nextId(): number {
    return ++this.seq;
  }

  post(req: Request): void {
    if (!this.failed) this.worker.postMessage(req);
  }
}

const isDataCloneError = (err: unknown): boolean => err instanceof Error && err.name === 'DataCloneError';

let shared: Thread | undefined;
let files = 0;

export class PieceHasher {
  private readonly thread: Thread;
  private readonly file = ++files;
  private prefix = 0;
  private closed = false;

  /** Hash the file at `path` (read by the worker as its prefix is written) and the pieces sent here. */
  private readonly path: string;

  constructor(path: string) {
    this.path = path;
    shared ??= new Thread();
    this.thread = shared;
    this.thread.users++;
    this.thread.post({ type: 'open', file: this.file, path });
  }

  /**
   * The piece hash of `body` (BEP 52, `pieceLength` a power of two), and the same bytes back. The
   * memory goes to the worker and returns without a copy when `body` starts its ArrayBuffer (which the
   * caller then no longer reads through `body`: use the returned `body`, or `memory` for all of it).
   */
  async pieceHash(body: Buffer, pieceLength: number): Promise<{ hash: Buffer; body: Buffer; memory: Buffer; leaves: Buffer }> {
    const length = body.length; // `body` reads as empty once its memory has moved
    const own = body.byteOffset === 0 && body.buffer instanceof ArrayBuffer;
    const ask = (buf: ArrayBuffer) => this.thread.call({ type: 'piece', id: this.thread.nextId(), buf, length, pieceLength }, [buf]);
    const copy = () => new Uint8Array(body).buffer;
    // A slice of Node's Buffer pool (Buffer.from and allocUnsafe below half of Buffer.poolSize, 64 KiB
    // in Node 24) may start at offset 0 but is marked untransferable: postMessage refuses it
    // (DataCloneError) before sending anything, and the bytes are copied instead.
    const r = own ? await ask(body.buffer as ArrayBuffer).catch((err) => { if (isDataCloneError(err)) return ask(copy()); throw err; }) : await ask(copy());
    if (r.type !== 'piece') throw new SourcemeshError('E_INTERNAL', 'unexpected reply from the hashing thread');
    const memory = Buffer.from(r.buf);
    // The leaves too (32 bytes per 16 KiB block): an uploading leecher keeps them to check each block it sends, without hashing the piece again.
    return { hash: Buffer.from(r.hash), body: memory.subarray(0, length), memory, leaves: Buffer.from(r.leaves.buffer, r.leaves.byteOffset, r.leaves.byteLength) };
  }

  /** Bytes [0, bytes) of the file are written and final: they may be hashed now. */
  prefixWritten(bytes: number): void {
    if (bytes <= this.prefix) return;
    this.prefix = bytes;
    this.thread.post({ type: 'prefix', file: this.file, bytes });
  }

  /**
   * SHA-256 (hex) of the file's first `size` bytes, all written by now; undefined when the file is shorter
   * than that (its bytes are not all there: no hash of them). A read that fails (EIO, EISDIR...) is
   * thrown as the fault it is, naming the file; so is a failure of the thread.
   */
  async digest(size: number): Promise<string | undefined> {
    const r = await this.thread.call({ type: 'digest', id: this.thread.nextId(), file: this.file, size });
    if (r.type !== 'digest') throw new SourcemeshError('E_INTERNAL', 'unexpected reply from the hashing thread');
    if (r.fault) {
      const err = Object.assign(new Error(r.fault.message), { code: r.fault.code, syscall: r.fault.syscall });
      throw fromSystemError(err, `${this.path}: cannot hash`);
    }
    return r.hex;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.thread.post({ type: 'close', file: this.file });
    if (--this.thread.users === 0) {
      if (shared === this.thread) shared = undefined;
      await this.thread.worker.terminate();
    }
  }
}

interface FileState {
  path: string;
  fd?: number;
  hash: Hash;
  hashed: number;
  target: number;
  /** Ends before the bytes asked for: no digest of them. */
  short?: string;
  /** A read failed: reported as the fault it is. */
  fault?: { message: string; code?: string; syscall?: string };
  digests: { id: number; size: number }[];
}

function serve(): void {
  const port = parentPort!;
  const open = new Map<number, FileState>();
  const scratch = Buffer.allocUnsafe(READ_BYTES);
  let scheduled = false;

  const answer = (f: FileState) => {
    const broken = f.short !== undefined || f.fault !== undefined;
    f.digests = f.digests.filter((d) => {
      if (!broken && f.hashed < d.size) return true;
      const ok = !broken && f.hashed === d.size;
      port.postMessage({ type: 'digest', id: d.id, ...(ok ? { hex: f.hash.copy().digest('hex') } : f.fault ? { fault: f.fault } : { short: f.short ?? `hashed ${f.hashed} of ${d.size} bytes` }) } satisfies Reply);
      return false;
    });
  };
  // One read per file per turn, then back to the event loop: piece requests queued meanwhile go first.
  const step = () => {
    scheduled = false;
    let more = false;
    for (const f of open.values()) {
      const broken = () => f.short !== undefined || f.fault !== undefined;
      if (!broken() && f.hashed < f.target) {
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
      if (!broken() && f.hashed < f.target) more = true;
    }
    if (more) schedule();
  };
  const schedule = () => {
    if (!scheduled) {
      scheduled = true;
      setImmediate(step);
    }
  };
  port.on('message', (m: Request) => {
    if (m.type === 'piece') {
      const leaves = blockHashes(new Uint8Array(m.buf, 0, m.length));
      const h = pieceHashOfLeaves(leaves, m.pieceLength);
      port.postMessage({ type: 'piece', id: m.id, hash: h, leaves: Buffer.concat(leaves), buf: m.buf } satisfies Reply, [m.buf]);
      return;
    }
    if (m.type === 'open') {
      open.set(m.file, { path: m.path, hash: createHash('sha256'), hashed: 0, target: 0, digests: [] });
      return;
    }
    const f = open.get(m.file);
    if (!f) {
      if (m.type === 'digest') port.postMessage({ type: 'digest', id: m.id, fault: { message: 'digest of a file that is not open' } } satisfies Reply);
      return;
    }
    if (m.type === 'close') {
      if (f.fd !== undefined) closeSync(f.fd);
      open.delete(m.file);
      return;
    }
    if (m.type === 'digest') f.digests.push({ id: m.id, size: m.size });
    f.target = Math.max(f.target, m.type === 'digest' ? m.size : m.bytes);
    schedule();
  });
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === ROLE) serve();
