// Response bodies from disk for the mirror server, at close to sendfile speed without sendfile:
// - large bodies are read with positional reads into reused 1 MiB buffers and written to the socket,
//   the next read starting when the kernel has taken the previous buffer (the socket's own buffer keeps
//   the pipe full meanwhile). What each client holds is bounded, and when the pool runs short a
//   response gets 64 KiB buffers instead of waiting (BufferPool). Fresh buffers per read would cost page faults and garbage on every MiB;
//   64 KiB stream reads cost a system call and a callback per 64 KiB.
// - files up to 1 MiB are kept in memory after a first read whose bytes hashed to the indexed sha256,
//   so the cache only ever holds verified bytes (serving them costs one copy less than reading the
//   page cache again); a hot entry re-checks its file at most once a second.
import { createHash } from 'node:crypto';
import { constants as fsc, readSync } from 'node:fs';
import { open, stat, statfs, type FileHandle } from 'node:fs/promises';
import type http from 'node:http';
import { SourcemeshError } from '../errors.ts';
import type { FileIndex, IndexedFile } from './file-index.ts';

export interface BufferPoolLimits {
  /** The size that gets Node near sendfile speed (1 MiB). */
  largeBytes: number;
  /** What a response gets when its client or the pool is short of large buffers (64 KiB). */
  smallBytes: number;
  /** Bytes lent at once, in all. */
  maxBytes: number;
  /** The last part of maxBytes, lent only as small buffers, so that a newcomer gets one at once. */
  reserveBytes: number;
  /** Bytes of large buffers one client may hold at once. */
  clientBytes: number;
  /** Small buffers one client may hold beyond that (one per connection it may open), before it waits. */
  clientSmallBytes: number;
  /** Idle bytes always kept for reuse; idle buffers beyond are freed after `idleMs` unused. */
  floorBytes: number;
  idleMs: number;
}

interface Waiter {
  client: string;
  resolve: (buf: Buffer) => void;
}

/**
 * Read buffers for response bodies, reused, in two sizes. Everything a client holds is bounded (docs/
 * OPERATIONS.md, "Limits"): past `clientBytes` of large buffers a client's further responses get small
 * ones, and past `clientSmallBytes` more they wait for its own buffers to come back, so many slow
 * readers on one address (IPv6: one /64) hold little. When the pool runs short, responses get small
 * buffers from a reserve instead of waiting for large ones. Idle buffers beyond the floor are
 * freed at once (detached, not left to the garbage collector), so memory taken in a burst is given back.
 *
 * The decision of which size to lend is pure (`sizeFor`); a future coordinator of worker processes can
 * hold the per-client counts instead of this object.
 */
export class BufferPool {
  readonly limits: BufferPoolLimits;
  private readonly idle: { large: Buffer[]; small: Buffer[] } = { large: [], small: [] };
  private readonly waiting: Waiter[] = [];
  private readonly held = new Map<string, number>();
  private lentBytes = 0;
  /** When a buffer was last lent beyond what the floor holds (for the idle trim). */
  private busyAt = 0;

  constructor(limits: BufferPoolLimits) {
    this.limits = limits;
  }

  /** Bytes lent now, in all and to `client`. */
  lent(client?: string): number {
    return client === undefined ? this.lentBytes : this.held.get(client) ?? 0;
  }

  /** Bytes held idle for reuse. */
  get idleBytes(): number {
    return this.idle.large.length * this.limits.largeBytes + this.idle.small.length * this.limits.smallBytes;
  }

  /**
   * The size `client` may borrow now: large while both its share and the pool outside the reserve
   * allow, else small while its share with the small allowance and the whole pool allow, else none
   * (wait). `largeOnly` is for a read-ahead, which is worth a large buffer only.
   */
  sizeFor(client: string, largeOnly = false): number | undefined {
    const { largeBytes, smallBytes, maxBytes, reserveBytes, clientBytes, clientSmallBytes } = this.limits;
    const mine = this.held.get(client) ?? 0;
    if (mine + largeBytes <= clientBytes && this.lentBytes + largeBytes <= maxBytes - reserveBytes) return largeBytes;
    if (largeOnly) return undefined;
    // A client holding nothing always gets a small buffer while the pool has one, whatever its share.
    if ((mine === 0 || mine + smallBytes <= clientBytes + clientSmallBytes) && this.lentBytes + smallBytes <= maxBytes) return smallBytes;
    return undefined;
  }

  /** A buffer for `client`, waiting (first come, first served among those that fit) when none may be lent. */
  take(client: string, now: number): Promise<Buffer> {
    const buf = this.tryTake(client, now);
    if (buf !== undefined) return Promise.resolve(buf);
    return new Promise((resolve) => this.waiting.push({ client, resolve }));
  }

  /** A buffer for `client` if one may be lent now (`largeOnly`: a large one, for a read-ahead). */
  tryTake(client: string, now: number, largeOnly = false): Buffer | undefined {
    const size = this.sizeFor(client, largeOnly);
    return size === undefined ? undefined : this.lend(client, size, now);
  }

  /** Return a buffer of `client`'s that nothing references any more (its write completed or failed). */
  give(client: string, buf: Buffer, now: number): void {
    this.unlend(client, buf.length);
    this.keep(buf);
    this.serveWaiters(now);
  }

  /**
   * A buffer of `client`'s whose connection closed while a write of it may still be pending: it no
   * longer counts against anyone, and comes back through `late` once the write has completed (or
   * been cancelled), never earlier.
   */
  release(client: string, size: number, now: number): void {
    this.unlend(client, size);
    this.serveWaiters(now);
  }

  /** A buffer released earlier whose pending write has since completed: kept for reuse or freed. */
  late(buf: Buffer): void {
    this.keep(buf);
  }

  /** Free idle buffers beyond the floor, small ones first, once none was needed for `idleMs` (call now and then). */
  trim(now: number): void {
    if (now - this.busyAt < this.limits.idleMs) return;
    while (this.idleBytes > this.limits.floorBytes) {
      const buf = this.idle.small.pop() ?? this.idle.large.pop();
      if (buf === undefined) break;
      free(buf);
    }
  }

  private lend(client: string, size: number, now: number): Buffer {
    this.lentBytes += size;
    this.held.set(client, (this.held.get(client) ?? 0) + size);
    const list = size === this.limits.largeBytes ? this.idle.large : this.idle.small;
    if (this.lentBytes > this.limits.floorBytes) this.busyAt = now;
    return list.pop() ?? allocate(size);
  }

  private unlend(client: string, size: number): void {
    this.lentBytes -= size;
    const left = (this.held.get(client) ?? size) - size;
    if (left > 0) this.held.set(client, left);
    else this.held.delete(client);
  }

  private keep(buf: Buffer): void {
    const list = buf.length === this.limits.largeBytes ? this.idle.large : buf.length === this.limits.smallBytes ? this.idle.small : undefined;
    // Idle memory beyond what the pool may lend is never kept; the rest waits for `trim`.
    if (list === undefined || this.idleBytes + this.lentBytes + buf.length > this.limits.maxBytes) return free(buf);
    list.push(buf);
  }

  private serveWaiters(now: number): void {
    for (let i = 0; i < this.waiting.length; i++) {
      const w = this.waiting[i]!;
      const size = this.sizeFor(w.client);
      if (size === undefined) continue;
      this.waiting.splice(i--, 1);
      w.resolve(this.lend(w.client, size, now));
    }
  }
}

/**
 * A buffer of its own (never a slice of Node's shared pool), reused many times, whose memory can be
 * given back to the system. Its ArrayBuffer is resizable only so that V8 maps its memory itself
 * instead of taking it from malloc: freed malloc chunks of 1 MiB stay in the process (measured: the
 * server's RSS stayed at 350 MiB after 200 MiB of plain pool buffers were freed), a mapping is unmapped.
 */
function allocate(size: number): Buffer {
  return Buffer.from(new ArrayBuffer(size, { maxByteLength: size }));
}

/**
 * Give a buffer's memory back now rather than at some later garbage collection: detaching its
 * ArrayBuffer drops the backing store at once. Only for a buffer that nothing, native writes
 * included, reads any more.
 */
function free(buf: Buffer): void {
  const ab = buf.buffer;
  try {
    if (ab instanceof ArrayBuffer) (ab as ArrayBuffer & { transfer(length: number): ArrayBuffer }).transfer(0);
  } catch {
    // not detachable (never the case for allocUnsafeSlow): left to the garbage collector
  }
}

/**
 * Where body reads are done (pure; the clock is passed in). A pread on the event loop costs one
 * system call and leaves the bytes in this core's cache for the write that follows; through libuv's
 * thread pool it costs a hand-over each way and the copy lands on another core (docs/BENCHMARKS.md,
 * bench:serve, "Synchronous reads"). But a read the page cache cannot answer waits for the disk, and
 * on the event loop every connection would wait with it: so one read slower than `slowMs` sends the
 * reads to the thread pool for `backoffMs`, and only files on a local file system are read in place
 * (a network file system can hang a read for good).
 */
export class ReadPlace {
  private poolUntil = 0;
  readonly slowMs: number;
  readonly backoffMs: number;

  constructor(slowMs: number, backoffMs: number) {
    this.slowMs = slowMs;
    this.backoffMs = backoffMs;
  }

  /** Read on the event loop at `now`? */
  inPlace(now: number): boolean {
    return now >= this.poolUntil;
  }

  /** A read in place started at `started` ended at `now`. */
  took(started: number, now: number): void {
    if (now - started > this.slowMs) this.poolUntil = now + this.backoffMs;
  }
}

/** File systems whose reads end (local block devices and memory), by statfs(2)'s f_type. */
const LOCAL_FILE_SYSTEMS = new Set([
  0xef53, // ext2, ext3, ext4
  0x58465342, // xfs
  0x9123683e, // btrfs
  0x01021994, // tmpfs
  0x794c7630, // overlayfs
  0x2fc12fc1, // zfs
  0xf2f52010, // f2fs
]);

/** Whether each device holds a local file system (asked once per device). */
const localDevices = new Map<number, Promise<boolean>>();

/** Whether `f` lies on a local file system, whose reads may be done in place (ReadPlace). */
export function onLocalFileSystem(f: IndexedFile): Promise<boolean> {
  let local = localDevices.get(f.dev);
  if (local === undefined) {
    local = statfs(f.path).then((s) => LOCAL_FILE_SYSTEMS.has(s.type), () => false);
    localDevices.set(f.dev, local);
  }
  return local;
}

/**
 * Write bytes [start, end] of an open file to `res` (whose head is written), with backpressure, on
 * behalf of `client` (the pool's key). With reads in the thread pool the next chunk is read while the
 * socket takes the current one when the pool lends a second buffer (a read-ahead); reads in place, or
 * without a second buffer, one buffer goes back and forth (read, then write). A
 * buffer goes back to the pool only once its write is over. Resolves when the last byte is handed to
 * the socket (and the response ended, when `last`), or when the client went away. With `place`, reads
 * are done on the event loop while it says so (a file on a local file system); else in the thread pool.
 * `readBytes` caps each read below the buffer's size: with one or two connections open, the client
 * copies one piece out of the socket while the next is read, where one 1 MiB read leaves it waiting
 * (docs/BENCHMARKS.md, bench:serve, "Accepting, and reads with few connections").
 */
export async function writeFileRange(fh: FileHandle, res: http.ServerResponse, start: number, end: number, pool: BufferPool, client: string, last: boolean, place?: ReadPlace, readBytes = Infinity): Promise<void> {
  const now = () => performance.now();
  const readInto = async (buf: Buffer, pos: number): Promise<number> => {
    const length = Math.min(readBytes, buf.length, end - pos + 1);
    let bytesRead: number;
    const t0 = place === undefined ? 0 : now();
    if (place !== undefined && place.inPlace(t0)) {
      bytesRead = readSync(fh.fd, buf, 0, length, pos);
      place.took(t0, now());
    } else {
      bytesRead = (await fh.read(buf, 0, length, pos)).bytesRead;
    }
    if (bytesRead === 0) throw new SourcemeshError('E_IO', 'the file is shorter than indexed');
    return bytesRead;
  };
  let pos = start;
  // The buffer being filled or written; undefined once it is no longer ours to give back.
  let current: Buffer | undefined = await pool.take(client, now());
  // A read-ahead in flight: its buffer and the promise of its byte count.
  let ahead: { buf: Buffer; n: Promise<number> } | undefined;
  try {
    if (res.destroyed) return;
    let n = await readInto(current, pos);
    for (;;) {
      const chunk: Buffer = n === current.length ? current : current.subarray(0, n);
      pos += n;
      const more = pos <= end;
      // A read-ahead overlaps a read with the write only in the thread pool: in place it would run
      // before this write, delaying it and holding a second 1 MiB buffer (at 128 connections of large
      // files the pool runs short and some responses get 64 KiB ones; docs/BENCHMARKS.md, bench:serve,
      // "Read-ahead").
      if (more && ahead === undefined && !(place !== undefined && place.inPlace(now()))) {
        const next = pool.tryTake(client, now(), true);
        if (next !== undefined) ahead = { buf: next, n: readInto(next, pos) };
      }
      const written: Buffer = current;
      const outcome = await writeChunk(res, chunk, () => pool.late(written));
      if (outcome === 'closed') {
        // The connection closed with the write perhaps still pending: the buffer stops counting now
        // and comes back through late() when the write is over, never before.
        pool.release(client, written.length, now());
        current = undefined;
        return;
      }
      if (outcome === 'failed' || !more) {
        if (outcome === 'written' && last) res.end();
        return;
      }
      if (ahead !== undefined) {
        pool.give(client, written, now());
        current = ahead.buf;
        const pending = ahead.n;
        ahead = undefined;
        n = await pending;
      } else {
        n = await readInto(current, pos);
      }
      if (res.destroyed) return;
    }
  } finally {
    if (current !== undefined) pool.give(client, current, now());
    // A read still in flight finishes before its buffer goes back.
    if (ahead !== undefined) {
      const a = ahead;
      a.n.then(() => pool.give(client, a.buf, now()), () => pool.give(client, a.buf, now()));
    }
  }
}

/**
 * Write one chunk: 'written' once the socket took it, 'failed' if the write failed (it is over), or
 * 'closed' if the connection closed first, the write perhaps still pending: then `lateOver` runs when
 * it is over (Node calls a write's callback once libuv has completed or cancelled it; from then on
 * nothing reads the chunk's memory). A write dropped without a callback never calls `lateOver`, and
 * its buffer is left to the garbage collector.
 */
function writeChunk(res: http.ServerResponse, chunk: Buffer, lateOver: () => void): Promise<'written' | 'failed' | 'closed'> {
  return new Promise((resolve) => {
    let settled = false;
    const onClose = () => {
      settled = true;
      resolve('closed');
    };
    res.once('close', onClose);
    res.write(chunk, (err) => {
      if (settled) return lateOver();
      settled = true;
      res.off('close', onClose);
      resolve(err ? 'failed' : 'written');
    });
  });
}

interface CachedFile {
  bytes: Buffer;
  checkedAt: number;
}

/** Small files in memory, verified against their indexed sha256, bounded in total bytes. */
export class SmallFileCache {
  private readonly files = new Map<string, CachedFile>();
  private readonly loading = new Map<string, Promise<Buffer | 'gone' | 'changed'>>();
  private bytes = 0;
  private readonly maxBytes: number;
  private readonly maxFileBytes: number;
  private readonly onChanged: () => void;

  /** `onChanged` runs when a cached file is found changed on disk (the index is then stale). */
  constructor(maxBytes: number, maxFileBytes: number, onChanged: () => void) {
    this.maxBytes = maxBytes;
    this.maxFileBytes = maxFileBytes;
    this.onChanged = onChanged;
  }

  fits(f: IndexedFile): boolean {
    return f.size <= this.maxFileBytes && this.maxBytes > 0;
  }

  /** The verified bytes of `f` if cached; a stale entry is re-checked in the background. */
  get(f: IndexedFile, now: number): Buffer | undefined {
    const key = keyOf(f);
    const hit = this.files.get(key);
    if (hit === undefined) return undefined;
    if (now - hit.checkedAt >= 1000) {
      hit.checkedAt = now;
      void stat(f.path).then((st) => {
        if (st.dev !== f.dev || st.ino !== f.ino || st.size !== f.size || st.mtimeMs !== f.mtimeMs) this.drop(key, true);
      }, () => this.drop(key, true));
    }
    return hit.bytes;
  }

  /**
   * Read `f` whole, check it hashes to its sha256, and keep it. Resolves to 'gone' or 'changed' when
   * the file on disk is no longer the one indexed.
   */
  load(f: IndexedFile, now: number): Promise<Buffer | 'gone' | 'changed'> {
    // Concurrent first requests for one file share one read.
    const key = keyOf(f);
    let pending = this.loading.get(key);
    if (pending === undefined) {
      pending = this.read(f, now).finally(() => this.loading.delete(key));
      this.loading.set(key, pending);
    }
    return pending;
  }

  private async read(f: IndexedFile, now: number): Promise<Buffer | 'gone' | 'changed'> {
    const opened = await openIndexed(f);
    if (typeof opened === 'string') return opened;
    let bytes: Buffer;
    try {
      bytes = Buffer.allocUnsafeSlow(f.size);
      let done = 0;
      while (done < f.size) {
        const { bytesRead } = await opened.read(bytes, done, f.size - done, done);
        if (bytesRead === 0) return 'changed';
        done += bytesRead;
      }
    } finally {
      await opened.close().catch(() => {});
    }
    if (createHash('sha256').update(bytes).digest('hex') !== f.sha256) return 'changed';
    const key = keyOf(f);
    if (!this.files.has(key)) {
      this.files.set(key, { bytes, checkedAt: now });
      this.bytes += bytes.length;
      // Oldest first out (Map keeps insertion order).
      for (const [k, v] of this.files) {
        if (this.bytes <= this.maxBytes) break;
        this.files.delete(k);
        this.bytes -= v.bytes.length;
      }
    }
    return bytes;
  }

  private drop(key: string, changed: boolean): void {
    const entry = this.files.get(key);
    if (entry === undefined) return;
    this.files.delete(key);
    this.bytes -= entry.bytes.length;
    if (changed) this.onChanged();
  }
}

interface OpenEntry {
  fh: Promise<FileHandle | 'gone' | 'changed'>;
  local: Promise<boolean>;
  refs: number;
  /** Out of the table: close when the last user releases it. */
  retired: boolean;
  checkedAt: number;
}

/** An open file lent to one response; release it when the response is done with it. */
export interface OpenFile {
  fh: FileHandle;
  /** On a local file system (onLocalFileSystem): its reads may be done in place. */
  local: boolean;
  release(): void;
}

/**
 * Open files kept between requests (as nginx's open_file_cache does): a request for a hot file costs
 * one positional read, not an open, an fstat and a close. A descriptor always reads the inode that was
 * indexed, even if the name is replaced meanwhile; a hot entry re-checks its path at most once a
 * second and, when the file was replaced, is retired and the index rebuilt. At most `max` idle files
 * stay open.
 */
export class OpenFiles {
  private readonly table = new Map<string, OpenEntry>();
  private readonly max: number;
  private readonly onChanged: () => void;

  constructor(max: number, onChanged: () => void) {
    this.max = max;
    this.onChanged = onChanged;
  }

  async acquire(f: IndexedFile, now: number): Promise<OpenFile | 'gone' | 'changed'> {
    const key = keyOf(f);
    let entry = this.table.get(key);
    if (entry === undefined) {
      entry = { fh: openIndexed(f), local: onLocalFileSystem(f), refs: 0, retired: false, checkedAt: now };
      this.table.set(key, entry);
      this.evict();
    } else {
      // Most recently used last.
      this.table.delete(key);
      this.table.set(key, entry);
      if (now - entry.checkedAt >= 1000) {
        entry.checkedAt = now;
        const e = entry;
        void stat(f.path).then((st) => st.dev !== f.dev || st.ino !== f.ino || st.size !== f.size || st.mtimeMs !== f.mtimeMs, () => true).then((changed) => {
          if (changed) this.retire(key, e, true);
        });
      }
    }
    entry.refs++;
    const e = entry;
    let fh: FileHandle | 'gone' | 'changed';
    try {
      fh = await e.fh;
    } catch (err) {
      e.refs--;
      this.retire(key, e, false);
      throw err;
    }
    if (typeof fh === 'string') {
      e.refs--;
      this.retire(key, e, false);
      return fh;
    }
    let released = false;
    return {
      fh,
      local: await e.local,
      release: () => {
        if (released) return;
        released = true;
        if (--e.refs === 0 && e.retired) void fh.close().catch(() => {});
      },
    };
  }

  /** Retire files the index no longer holds (so a deleted file's space is not held open). */
  retain(index: FileIndex): void {
    const keep = new Set<string>();
    for (const map of [index.byName, index.bySha256, index.pieces]) for (const f of map.values()) keep.add(keyOf(f));
    for (const [key, e] of this.table) if (!keep.has(key)) this.retire(key, e, false);
  }

  /** Close every idle file (shutdown). */
  closeAll(): void {
    for (const [key, e] of this.table) this.retire(key, e, false);
  }

  private retire(key: string, e: OpenEntry, changed: boolean): void {
    if (e.retired) return;
    e.retired = true;
    if (this.table.get(key) === e) this.table.delete(key);
    if (e.refs === 0) void e.fh.then((fh) => (typeof fh === 'string' ? undefined : fh.close()), () => {}).catch(() => {});
    if (changed) this.onChanged();
  }

  private evict(): void {
    if (this.table.size <= this.max) return;
    for (const [key, e] of this.table) {
      if (this.table.size <= this.max) break;
      if (e.refs === 0) this.retire(key, e, false);
    }
  }
}

/** Each indexed file's key, built once (a request for a hot file looks it up by the same string). */
const keys = new WeakMap<IndexedFile, string>();

function keyOf(f: IndexedFile): string {
  let key = keys.get(f);
  if (key === undefined) keys.set(f, (key = `${f.dev}:${f.ino}:${f.size}:${f.mtimeMs}:${f.sha256}`));
  return key;
}

/** Open an indexed file, refusing one that is no longer the file indexed. */
export async function openIndexed(f: IndexedFile): Promise<FileHandle | 'gone' | 'changed'> {
  let fh: FileHandle;
  try {
    // O_NOFOLLOW: the path is a real path from the index; a symlink put there since is not followed.
    fh = await open(f.path, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'gone';
    if (code === 'ELOOP') return 'changed';
    throw err;
  }
  const st = await fh.stat();
  if (!st.isFile() || st.dev !== f.dev || st.ino !== f.ino || st.size !== f.size || st.mtimeMs !== f.mtimeMs) {
    await fh.close();
    return 'changed';
  }
  return fh;
}
