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
import { pieceHash } from './piece-map.ts';

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
  | { type: 'piece'; id: number; hash: Uint8Array; buf: ArrayBuffer }
  | { type: 'digest'; id: number; hex?: string; error?: string };

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
      this.failed ??= err;
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
      this.worker.postMessage(req, transfer);
    });
  }

  nextId(): number {
    return ++this.seq;
  }

  post(req: Request): void {
    if (!this.failed) this.worker.postMessage(req);
  }
}

let shared: Thread | undefined;
let files = 0;

export class PieceHasher {
  private readonly thread: Thread;
  private readonly file = ++files;
  private prefix = 0;
  private closed = false;

  /** Hash the file at `path` (read by the worker as its prefix is written) and the pieces sent here. */
  constructor(path: string) {
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
  async pieceHash(body: Buffer, pieceLength: number): Promise<{ hash: Buffer; body: Buffer; memory: Buffer }> {
    const length = body.length; // `body` reads as empty once its memory has moved
    const own = body.byteOffset === 0 && body.buffer instanceof ArrayBuffer;
    const buf = own ? (body.buffer as ArrayBuffer) : new Uint8Array(body).buffer;
    const r = await this.thread.call({ type: 'piece', id: this.thread.nextId(), buf, length, pieceLength }, [buf]);
    if (r.type !== 'piece') throw new Error('unexpected reply from the hashing thread');
    const memory = Buffer.from(r.buf);
    return { hash: Buffer.from(r.hash), body: memory.subarray(0, length), memory };
  }

  /** Bytes [0, bytes) of the file are written and final: they may be hashed now. */
  prefixWritten(bytes: number): void {
    if (bytes <= this.prefix) return;
    this.prefix = bytes;
    this.thread.post({ type: 'prefix', file: this.file, bytes });
  }

  /** SHA-256 (hex) of the file's first `size` bytes, all written by now; undefined if it could not be read. */
  async digest(size: number): Promise<string | undefined> {
    try {
      const r = await this.thread.call({ type: 'digest', id: this.thread.nextId(), file: this.file, size });
      return r.type === 'digest' ? r.hex : undefined;
    } catch {
      return undefined;
    }
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
  broken?: string;
  digests: { id: number; size: number }[];
}

function serve(): void {
  const port = parentPort!;
  const open = new Map<number, FileState>();
  const scratch = Buffer.allocUnsafe(READ_BYTES);
  let scheduled = false;

  const answer = (f: FileState) => {
    f.digests = f.digests.filter((d) => {
      if (!f.broken && f.hashed < d.size) return true;
      const ok = !f.broken && f.hashed === d.size;
      port.postMessage({ type: 'digest', id: d.id, ...(ok ? { hex: f.hash.copy().digest('hex') } : { error: f.broken ?? `hashed ${f.hashed} of ${d.size} bytes` }) } satisfies Reply);
      return false;
    });
  };
  // One read per file per turn, then back to the event loop: piece requests queued meanwhile go first.
  const step = () => {
    scheduled = false;
    let more = false;
    for (const f of open.values()) {
      if (!f.broken && f.hashed < f.target) {
        try {
          f.fd ??= openSync(f.path, 'r');
          const n = readSync(f.fd, scratch, 0, Math.min(READ_BYTES, f.target - f.hashed), f.hashed);
          if (n === 0) throw new Error(`${f.path}: ends at ${f.hashed} bytes`);
          f.hash.update(scratch.subarray(0, n));
          f.hashed += n;
        } catch (err) {
          f.broken = (err as Error).message;
        }
      }
      answer(f);
      if (!f.broken && f.hashed < f.target) more = true;
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
      const h = pieceHash(new Uint8Array(m.buf, 0, m.length), m.pieceLength);
      port.postMessage({ type: 'piece', id: m.id, hash: h, buf: m.buf } satisfies Reply, [m.buf]);
      return;
    }
    if (m.type === 'open') {
      open.set(m.file, { path: m.path, hash: createHash('sha256'), hashed: 0, target: 0, digests: [] });
      return;
    }
    const f = open.get(m.file);
    if (!f) {
      if (m.type === 'digest') port.postMessage({ type: 'digest', id: m.id, error: 'not open' } satisfies Reply);
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
