// Response bodies from disk for the mirror server, at close to sendfile speed without sendfile:
// - large bodies are read with positional reads into reused 1 MiB buffers and written to the socket,
//   the next read starting when the kernel has taken the previous buffer (the socket's own buffer keeps
//   the pipe full meanwhile). Fresh buffers per read would cost page faults and garbage on every MiB;
//   64 KiB stream reads cost a system call and a callback per 64 KiB.
// - files up to 1 MiB are kept in memory after a first read whose bytes hashed to the indexed sha256,
//   so the cache only ever holds verified bytes (serving them costs one copy less than reading the
//   page cache again); a hot entry re-checks its file at most once a second.
import { createHash } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import type http from 'node:http';
import { SourcemeshError } from '../errors.ts';
import type { FileIndex, IndexedFile } from './file-index.ts';

/**
 * Read buffers of one size, reused; at most `max` lent out at once (responses wait for one beyond
 * that, so many slow clients cannot make us hold unbounded memory), at most `keep` idle ones held.
 */
export class BufferPool {
  private readonly idle: Buffer[] = [];
  private readonly waiting: ((buf: Buffer) => void)[] = [];
  private lent = 0;
  readonly size: number;
  private readonly keep: number;
  private readonly max: number;

  constructor(size: number, keep: number, max: number) {
    this.size = size;
    this.keep = keep;
    this.max = Math.max(1, max);
  }

  take(): Promise<Buffer> {
    if (this.lent < this.max) {
      this.lent++;
      // allocUnsafeSlow: a buffer of its own (never a slice of Node's shared pool), reused many times.
      return Promise.resolve(this.idle.pop() ?? Buffer.allocUnsafeSlow(this.size));
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** Return a buffer nobody references any more. */
  give(buf: Buffer): void {
    const next = this.waiting.shift();
    if (next !== undefined) return next(buf);
    this.lent--;
    if (this.idle.length < this.keep) this.idle.push(buf);
  }

  /** A lent buffer that may still be referenced (a cancelled socket write): never reused. */
  forget(): void {
    const next = this.waiting.shift();
    if (next !== undefined) return next(Buffer.allocUnsafeSlow(this.size));
    this.lent--;
  }
}

/**
 * Write bytes [start, end] of an open file to `res` (whose head is written), with backpressure: a
 * buffer goes back to the pool only once the socket has taken its bytes. The next chunk is read while
 * the current one is written (two buffers per response at most). Resolves when the last byte is handed
 * to the socket (and the response ended, when `last`), or when the client went away.
 */
export async function writeFileRange(fh: FileHandle, res: http.ServerResponse, start: number, end: number, pool: BufferPool, last: boolean): Promise<void> {
  const readAt = async (pos: number): Promise<{ buf: Buffer; n: number }> => {
    const buf = await pool.take();
    try {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, end - pos + 1), pos);
      if (bytesRead === 0) throw new SourcemeshError('E_IO', 'the file is shorter than indexed');
      return { buf, n: bytesRead };
    } catch (err) {
      pool.give(buf);
      throw err;
    }
  };
  let pos = start;
  let next: Promise<{ buf: Buffer; n: number }> | undefined = readAt(pos);
  try {
    while (next !== undefined) {
      const { buf, n } = await next;
      next = undefined;
      pos += n;
      if (pos <= end) next = readAt(pos);
      if (res.destroyed) {
        pool.give(buf);
        return;
      }
      const chunk = n === buf.length ? buf : buf.subarray(0, n);
      const ok = await new Promise<boolean>((resolve) => {
        let settled = false;
        const done = (flushed: boolean) => {
          if (settled) return;
          settled = true;
          res.off('close', onClose);
          resolve(flushed);
        };
        // If the connection closes first, the buffer may still be referenced by a cancelled write:
        // it is left to the garbage collector, never reused.
        const onClose = () => done(false);
        res.once('close', onClose);
        if (last && pos > end) res.end(chunk, () => done(true));
        else res.write(chunk, (err) => done(!err));
      });
      if (!ok) {
        pool.forget();
        return;
      }
      pool.give(buf);
    }
  } finally {
    // A read still in flight when we stop: let it finish, then recycle its buffer.
    if (next !== undefined) next.then(({ buf }) => pool.give(buf), () => {});
  }
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
  refs: number;
  /** Out of the table: close when the last user releases it. */
  retired: boolean;
  checkedAt: number;
}

/** An open file lent to one response; release it when the response is done with it. */
export interface OpenFile {
  fh: FileHandle;
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
      entry = { fh: openIndexed(f), refs: 0, retired: false, checkedAt: now };
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

function keyOf(f: IndexedFile): string {
  return `${f.dev}:${f.ino}:${f.size}:${f.mtimeMs}:${f.sha256}`;
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
