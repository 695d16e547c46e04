// Download one distfile from one source into the store's partial file, hashing every byte as it is
// written, resuming after interruptions, enforcing the pinned size. The caller decides what the
// digest means (accept, blame, try elsewhere).
import { createHash, type Hash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Dispatcher } from '../net/undici.ts';
import { SourcemeshError, fromSystemError } from '../errors.ts';
import { writeFully } from '../fs/write-fully.ts';
import type { Limits } from '../limits.ts';
import type { Distfile } from '../manifest/distfile.ts';
import { hashFile } from '../store/digest.ts';
import type { Partial, Store } from '../store/store.ts';
import { backoffDelay, parseRetryAfter } from './backoff.ts';
import { openFile } from './file.ts';
import { StreamHash, type StreamDigest } from './hash-thread.ts';
import type { PieceMap as BlockPieceMap } from './piece-map.ts';
import { networkError, openHttp } from './http.ts';
import type { Source } from './plan.ts';
import type { PieceMap } from './segmented.ts';
import { isRetryable, pipeBody, transferError, type Opened } from './transport.ts';

// Batch writes (fewer syscalls) but keep little unwritten: what is on disk is what a resume after a
// crash keeps.
const FLUSH_BYTES = 256 << 10;
const SYNC_BYTES = 32 << 20;

/**
 * Appends to a partial file while hashing. Writes are batched (~256 KiB writev) with one batch in
 * flight while the next is received, and the data is flushed to disk (fdatasync) in the background
 * every SYNC_BYTES, so the fsync before the store's rename finds little left to write: the disk works
 * while the network does, instead of after it. A chunk is taken without a promise (accept) unless the
 * next batch is full while the previous one is still being written: then the caller waits.
 */
class PartialWriter {
  written = 0;
  /** Hashing here, chunk by chunk as accepted; or, with `thread`, each batch once written, on a thread. */
  private hash: Hash = createHash('sha256');
  private readonly thread: StreamHash | undefined;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private inflight: Promise<void> = Promise.resolve();
  private busy = false;
  /** The first failed write: every later accept or flush reports it. */
  private failure: unknown = undefined;
  /** Told when the batch in flight is done (a caller waiting for room). */
  private waiter: (() => void) | undefined;
  private syncing: Promise<void> = Promise.resolve();
  private unsynced = 0;
  private readonly fh: FileHandle;
  private readonly path: string;

  private constructor(fh: FileHandle, path: string, thread?: StreamHash) {
    this.fh = fh;
    this.path = path;
    this.thread = thread;
  }

  /** `threaded`: hash on a thread, with the BEP 52 piece map when a piece length is given. */
  static async open(partial: Partial, threaded?: { pieceLength?: number; aheadBytes: number }): Promise<PartialWriter> {
    const fh = await open(partial.path, 'r+');
    const w = new PartialWriter(fh, partial.path, threaded ? new StreamHash(threaded) : undefined);
    try {
      const size = (await w.fh.stat()).size;
      if (size > 0) {
        // Bytes from an adopted partial or an earlier source count only once we have hashed them.
        if (w.thread) await w.thread.prefix(partial.path, size);
        else w.hash = await hashFile(partial.path, w.hash, size);
        w.written = size;
      }
    } catch (err) {
      w.thread?.close();
      await fh.close();
      throw err;
    }
    return w;
  }

  /** Hash and queue `chunk`; a promise when the caller must wait for room before the next one. */
  accept(chunk: Uint8Array): void | Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    if (!this.thread) this.hash.update(chunk);
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    this.written += chunk.length;
    if (this.pendingBytes < FLUSH_BYTES) return;
    if (!this.busy) {
      this.startBatch();
      return;
    }
    return new Promise<void>((resolve, reject) => {
      this.waiter = () => (this.failure === undefined ? resolve() : reject(this.failure));
    });
  }

  async write(chunk: Uint8Array): Promise<void> {
    await this.accept(chunk);
  }

  /** Hand the pending bytes to the file system (only when no batch is in flight). */
  private startBatch(): void {
    const buffers = this.pending;
    const bytes = this.pendingBytes;
    const position = this.written - bytes;
    this.pending = [];
    this.pendingBytes = 0;
    this.busy = true;
    // For the thread: one buffer of its own (transferred to it once written), never a pooled one.
    const one = this.thread ? Buffer.allocUnsafeSlow(bytes) : undefined;
    if (one) for (let at = 0, i = 0; i < buffers.length; at += buffers[i]!.length, i++) one.set(buffers[i]!, at);
    const written = one ? writeFully(this.fh, [one], position).then(() => this.thread!.update(one)) : writeFully(this.fh, buffers, position);
    this.inflight = written.then(() => {
      this.busy = false;
      this.unsynced += bytes;
      if (this.unsynced >= SYNC_BYTES) {
        this.unsynced = 0;
        this.syncing = this.syncing.then(() => this.fh.datasync());
        this.syncing.catch(() => {}); // early flushing only; the final commit fsyncs and reports
      }
      if (this.pendingBytes >= FLUSH_BYTES) this.startBatch();
      this.wake();
    }, (err) => {
      this.busy = false;
      this.failure ??= fromSystemError(err, this.path);
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  /** Everything accepted so far is in the file (not necessarily on disk). */
  async flush(): Promise<void> {
    while (this.busy) await this.inflight;
    if (this.failure === undefined && this.pendingBytes > 0) {
      this.startBatch();
      await this.inflight;
    }
    if (this.failure !== undefined) throw this.failure;
  }

  async restart(): Promise<void> {
    while (this.busy) await this.inflight;
    this.pending = [];
    this.pendingBytes = 0;
    this.written = 0;
    this.hash = createHash('sha256');
    this.thread?.reset();
    await this.fh.truncate(0);
  }

  /** The digest of every byte accepted (call after flush); with a thread, once only. */
  async digest(): Promise<StreamDigest> {
    return this.thread ? this.thread.result() : { sha256: this.hash.copy().digest('hex') };
  }

  async close(): Promise<void> {
    while (this.busy) await this.inflight;
    this.thread?.close();
    await this.syncing.catch(() => {});
    await this.fh.close();
  }
}

export interface DownloadContext {
  store: Store;
  dispatcher: Dispatcher;
  /** The dispatcher for a given source (stream isolation); default: `dispatcher`. */
  dispatcherFor?: (source: Source) => Dispatcher;
  limits: Limits;
  random: () => number;
  signal?: AbortSignal;
  onBytes?: (delta: number) => void;
  /** Told before each retry, with the error that caused it. */
  onRetry?: (err: SourcemeshError, attempt: number, delayMs: number) => void;
  /** Opens a generated git snapshot of `d` (sources of type 'git'). */
  openSnapshot?: (d: Distfile, signal?: AbortSignal) => Promise<Opened>;
  /**
   * A piece map of `d` from a torrent (src/torrent/swarm-fetch.ts): a BEP 52 piece layer already checked
   * against its pinned merkleRoot, used for a segmented download instead of asking mirrors for one, or a
   * v1 torrent's SHA-1 pieces (`hash: 'sha1'`), which check that torrent's peers only (segmented.ts, PieceMap).
   */
  pieceLayerFor?: (d: Distfile, size: number) => PieceMap | undefined;
  /**
   * Piece `index` of `d` is in the partial at `path`, checked against a piece map (segmented downloads
   * with one only): `fetch --bittorrent` offers it to other peers (src/torrent/leech-upload.ts).
   */
  onPieceVerified?: (d: Distfile, index: number, path: string, pieceLength: number, leaves?: Buffer) => void;
  /**
   * Hash on a thread in the download's pass and also take the file's BEP 52 piece map with this piece
   * length (mirror sync's piece layers: no second pass, no read-back).
   */
  hashPieces?: number;
}

export interface Downloaded {
  digest: string;
  bytes: number;
  /** True when some bytes came from an earlier attempt or an adopted partial. */
  resumed: boolean;
  /** With ctx.hashPieces: the piece map of the same bytes. */
  pieceMap?: BlockPieceMap;
}

/**
 * Fill `partial` with the whole file from `source`, retrying transient failures with backoff and
 * resuming with Range/If-Range. Throws E_SIZE when the source sends more than the pinned size
 * (it is cut off at once), and non-retryable transfer errors as they come.
 */
export async function downloadFrom(d: Distfile, source: Source, partial: Partial, ctx: DownloadContext): Promise<Downloaded> {
  const threaded = ctx.hashPieces !== undefined ? { pieceLength: ctx.hashPieces, aheadBytes: ctx.limits.downloadHashAheadBytes } : undefined;
  const writer = await PartialWriter.open(partial, threaded).catch((err) => { throw err instanceof SourcemeshError ? err : fromSystemError(err, partial.path); });
  let resumed = writer.written > 0;
  const done = async (): Promise<Downloaded> => {
    const { sha256, pieceMap } = await writer.digest();
    return { digest: sha256, bytes: writer.written, resumed, ...(pieceMap ? { pieceMap } : {}) };
  };
  try {
    if (d.size !== undefined && writer.written === d.size) return await done();
    for (let attempt = 0; ; attempt++) {
      try {
        await transferOnce(d, source, partial, writer, ctx);
        return await done();
      } catch (err) {
        await writer.flush(); // a write that fails here (disk full) ends the download
        if (!(err instanceof SourcemeshError) || !isRetryable(err) || attempt + 1 >= ctx.limits.attemptsPerSource) throw err;
        if (writer.written > 0) resumed = true;
        const hinted = parseRetryAfter(err.details.retryAfter as string | undefined, Date.now());
        const delay = hinted !== undefined && hinted <= ctx.limits.backoffMaxMs ? hinted : backoffDelay(attempt, ctx.limits.backoffBaseMs, ctx.limits.backoffMaxMs, ctx.random());
        ctx.onRetry?.(err, attempt + 1, delay);
        await sleep(delay, undefined, { signal: ctx.signal });
      }
    }
  } finally {
    await writer.close();
  }
}

async function transferOnce(d: Distfile, source: Source, partial: Partial, writer: PartialWriter, ctx: DownloadContext): Promise<void> {
  const location = source.location;
  // A generated snapshot always starts from its first byte.
  const offset = (d.size !== undefined && writer.written > d.size) || location.type === 'git' ? 0 : writer.written;
  if (offset === 0 && writer.written > 0) await writer.restart();
  // If-Range only makes sense against the very URL whose validator we kept.
  const ifRange = location.type === 'http' && partial.meta.url === location.url ? partial.meta.etag ?? partial.meta.lastModified : undefined;
  let opened: Opened;
  try {
    if (location.type === 'http') opened = await openHttp(location.url, { offset, ifRange, signal: ctx.signal, dispatcher: ctx.dispatcherFor?.(source) ?? ctx.dispatcher, limits: ctx.limits });
    else if (location.type === 'file') opened = await openFile(location.path, { offset, signal: ctx.signal });
    else if (location.type === 'opener') opened = await location.open({ offset, signal: ctx.signal });
    else if (ctx.openSnapshot) opened = await ctx.openSnapshot(d, ctx.signal);
    else throw new SourcemeshError('E_UNSUPPORTED', `${d.name}: no snapshot generator configured`);
  } catch (err) {
    if (err instanceof SourcemeshError && (err.details.rangeNotSatisfiable || err.details.badRange) && offset > 0) {
      // The partial reaches the end of the file or beyond (RFC 9110 §14.1.2: no byte from `offset` on).
      // As long as the file, it may be the whole file: the caller's digest judges it, and fetches the file
      // again whole if it does not verify. Otherwise (longer: garbage; or a range the server garbled)
      // drop it and take the whole file now, not after a retry's backoff.
      if (d.size === undefined && err.details.completeLength === writer.written) return;
      await writer.restart();
      return transferOnce(d, source, partial, writer, ctx); // from byte 0: no Range, cannot come back here
    }
    throw err;
  }
  if (opened.start === 0 && writer.written > 0) await writer.restart(); // Range ignored or validator changed: a full 200 body
  if (location.type === 'http') {
    await ctx.store.saveMeta(partial, { url: location.url, etag: opened.etag, lastModified: opened.lastModified });
  }
  if (d.size !== undefined && opened.total !== undefined && opened.total !== d.size) {
    opened.cancel();
    throw new SourcemeshError('E_SIZE', `${source.label} announces ${opened.total} bytes, the manifest pins ${d.size}`, { source: source.label, expected: d.size, announced: opened.total });
  }
  const cap = d.size ?? ctx.limits.maxDistfileBytes;
  try {
    // Each chunk in a plain call (HTTP: from undici's handler); a promise only when the writer is full.
    await pipeBody(opened, (chunk) => {
      if (writer.written + chunk.length > cap) {
        throw new SourcemeshError('E_SIZE', `${source.label} sent more than ${cap} bytes`, { source: source.label, limit: cap });
      }
      const wait = writer.accept(chunk);
      ctx.onBytes?.(chunk.length);
      return wait;
    });
  } catch (err) {
    if (err instanceof SourcemeshError) throw err;
    throw networkError(err, opened.url);
  }
  await writer.flush();
  if (d.size !== undefined && writer.written < d.size) {
    throw transferError('E_NETWORK', `${opened.url}: body ended after ${writer.written} of ${d.size} bytes`, true, { url: opened.url, truncated: true });
  }
  if (opened.total !== undefined && writer.written < opened.total) {
    throw transferError('E_NETWORK', `${opened.url}: body ended after ${writer.written} of ${opened.total} bytes`, true, { url: opened.url, truncated: true });
  }
}
