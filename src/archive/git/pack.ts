// Reading entries of a packfile (gitformat-pack, "pack-*.pack files have the following format").
//
// Header: "PACK", version 2 or 3, object count; trailer: the SHA-1 of everything before it, which the index
// repeats. Each entry starts with a type (3 bits) and an inflated size (4 bits, then 7 bits per byte while the
// high bit is set), then for OFS_DELTA a backwards distance to the base and for REF_DELTA the base's id,
// then zlib data. The pack and its index are attacker-controlled: offsets are checked against the pack's
// extent, sizes against the limits, and compressed reads are bounded by the next entry's offset.

import { closeSync, createReadStream, fstatSync, openSync, readSync } from 'node:fs';
import zlib from 'node:zlib';
import { SourcemeshError, fromSystemError } from '../../errors.ts';
import { inflateChunks, inflateExact, inflateInto } from './inflate.ts';
import { OID_BYTES, corrupt, type ObjectType, type What } from './object-id.ts';
import type { PackIndex } from './pack-index.ts';

export const OBJ_COMMIT = 1;
export const OBJ_TREE = 2;
export const OBJ_BLOB = 3;
export const OBJ_TAG = 4;
export const OBJ_OFS_DELTA = 6;
export const OBJ_REF_DELTA = 7;

export const TYPE_NAMES: readonly (ObjectType | null)[] = [null, 'commit', 'tree', 'blob', 'tag', null, null, null];

/** Entries whose whole extent is at most this many bytes are read with their header. */
const SMALL_ENTRY_BYTES = 256 * 1024;
/**
 * The pack is read in aligned blocks of this size, kept in an LRU bounded by `gitPackCacheBytes`: git writes
 * a commit's trees and blobs in roughly the order a tree walk visits them, and a delta family (a base and the
 * deltas against it) together (pack-objects' write order), so one read serves many entries and a chain's
 * entries mostly sit in blocks already read. A small block keeps a random access cheap: the 1 MiB window
 * read on every miss before cost 19,500 reads of 1 MiB, most of them page faults, per archive of an old
 * gnulib commit (issue 14). Larger extents are read exactly, bypassing the blocks.
 */
const BLOCK_BYTES = 64 * 1024;
/** Extents up to this many bytes that straddle blocks are served from (and copied out of) blocks. */
const BLOCK_SPAN_BYTES = 4 * BLOCK_BYTES;
/** Reads of a streamed entry (a large blob): one block of the file at a time. */
const STREAM_READ_BYTES = 256 * 1024;
/** Enough for the longest entry header: a 10-byte size varint and a 10-byte offset or a 20-byte base id. */
const HEADER_READ_BYTES = 64;

export interface PackEntry {
  offset: number;
  /** OBJ_COMMIT..OBJ_TAG, OBJ_OFS_DELTA or OBJ_REF_DELTA. */
  type: number;
  /** Inflated size: of the object, or of the delta for delta entries. */
  size: number;
  /** Where the zlib data starts and the bound on where it ends. */
  dataStart: number;
  end: number;
  baseOffset: number;
  baseOid: Buffer | null;
  /** The compressed bytes when they were read together with the header. */
  compressed: Buffer | null;
}

/** Deflate never expands data by more than about 0.03% plus a few bytes; a longer stream is hostile padding. */
export function maxCompressedBytes(size: number): number {
  return size + Math.floor(size / 1024) + 64;
}

export class Pack {
  readonly path: string;
  readonly index: PackIndex;
  /** Distinguishes packs in cache keys. */
  readonly id: number;
  private fd = -1;
  private dataEnd = 0;
  /** Block number -> its bytes, least recently used first (Map order). */
  private readonly blocks = new Map<number, Buffer>();
  private readonly blockBudget: number;
  /** For the profile and tests: blocks read, buffers allocated for them, and extents read exactly. */
  readonly stats = { blockReads: 0, blockHits: 0, blockAllocs: 0, exactReads: 0 };

  /** `cacheBytes`: the budget of the block LRU (limits.gitPackCacheBytes); at least one block is kept. */
  constructor(path: string, index: PackIndex, id: number, cacheBytes = 16 * BLOCK_BYTES) {
    this.path = path;
    this.index = index;
    this.id = id;
    this.blockBudget = Math.max(1, Math.floor(cacheBytes / BLOCK_BYTES));
  }

  private open(): number {
    if (this.fd >= 0) return this.fd;
    let fd: number;
    try {
      fd = openSync(this.path, 'r');
    } catch (err) {
      throw fromSystemError(err, `opening pack ${this.path}`);
    }
    try {
      const size = fstatSync(fd).size;
      if (size < 12 + OID_BYTES) throw corrupt(this.path, 'pack is truncated');
      const head = Buffer.alloc(12);
      readSync(fd, head, 0, 12, 0);
      if (head.toString('latin1', 0, 4) !== 'PACK') throw corrupt(this.path, 'not a pack (bad signature)');
      const version = head.readUInt32BE(4);
      if (version !== 2 && version !== 3) throw corrupt(this.path, `unsupported pack version ${version}`);
      const count = head.readUInt32BE(8);
      if (count !== this.index.count) throw corrupt(this.path, `pack holds ${count} objects, its index lists ${this.index.count}`);
      const trailer = Buffer.alloc(OID_BYTES);
      readSync(fd, trailer, 0, OID_BYTES, size - OID_BYTES);
      if (!trailer.equals(this.index.packChecksum())) throw corrupt(this.path, 'pack checksum does not match its index');
      this.dataEnd = size - OID_BYTES;
    } catch (err) {
      closeSync(fd);
      throw fromSystemError(err, `reading pack ${this.path}`);
    }
    this.fd = fd;
    return fd;
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
    this.blocks.clear();
  }

  private read(buf: Buffer, position: number): number {
    let done = 0;
    while (done < buf.length) {
      let n: number;
      try {
        n = readSync(this.fd, buf, done, buf.length - done, position + done);
      } catch (err) {
        throw fromSystemError(err, `reading pack ${this.path}`);
      }
      if (n === 0) break;
      done += n;
    }
    return done;
  }

  /** Block `n` of the pack, from the LRU or read now (the last one may be short). */
  private block(n: number): Buffer {
    const hit = this.blocks.get(n);
    if (hit) {
      this.stats.blockHits++;
      this.blocks.delete(n);
      this.blocks.set(n, hit);
      return hit;
    }
    const start = n * BLOCK_BYTES;
    // The least recently used block's memory is read into again once the budget is reached (issue 14: a
    // fresh buffer per block was a page fault per 4 KiB of pack read, about 5 us each on this VM, where a
    // 64 KiB read from the page cache into memory already mapped takes a few). A view of a block handed
    // out before is not valid after the next call to the database (see odb.ts, BlobReader).
    let mem: Buffer | null = null;
    if (this.blocks.size >= this.blockBudget) {
      const old = this.blocks.keys().next().value!;
      const evicted = this.blocks.get(old)!;
      this.blocks.delete(old);
      if (evicted.buffer.byteLength >= BLOCK_BYTES) mem = Buffer.from(evicted.buffer, evicted.byteOffset, BLOCK_BYTES);
    }
    if (!mem) {
      mem = Buffer.allocUnsafeSlow(BLOCK_BYTES);
      this.stats.blockAllocs++;
    }
    // Never past the trailer: entries end at dataEnd at the latest.
    const buf = mem.subarray(0, Math.min(BLOCK_BYTES, this.dataEnd - start));
    if (this.read(buf, start) !== buf.length) throw corrupt(`${this.path} at offset ${start}`, 'pack is shorter than its index says');
    this.stats.blockReads++;
    this.blocks.set(n, buf);
    return buf;
  }

  /** Pack bytes [start, end) (within the pack's data): a view of a block, or a copy when they straddle. */
  private bytes(start: number, end: number): Buffer {
    const first = Math.floor(start / BLOCK_BYTES);
    const last = Math.floor((end - 1) / BLOCK_BYTES);
    if (first === last) {
      const at = first * BLOCK_BYTES;
      const b = this.block(first);
      if (end - at > b.length) throw corrupt(`${this.path} at offset ${start}`, 'pack is shorter than its index says');
      return b.subarray(start - at, end - at);
    }
    const len = end - start;
    const out = Buffer.allocUnsafe(len);
    if (len > BLOCK_SPAN_BYTES) {
      this.stats.exactReads++;
      if (this.read(out, start) !== len) throw corrupt(`${this.path} at offset ${start}`, 'pack is shorter than its index says');
      return out;
    }
    let o = 0;
    for (let n = first; n <= last; n++) {
      const at = n * BLOCK_BYTES;
      const b = this.block(n);
      const from = Math.max(start, at) - at;
      const to = Math.min(end, at + b.length) - at;
      b.copy(out, o, from, to);
      o += to - from;
    }
    if (o !== len) throw corrupt(`${this.path} at offset ${start}`, 'pack is shorter than its index says');
    return out;
  }

  private fail(offset: number, cause: string): Error {
    return corrupt(`${this.path} at offset ${offset}`, cause);
  }

  /** Parse the entry header at `offset`. */
  entry(offset: number): PackEntry {
    this.open();
    if (!Number.isSafeInteger(offset) || offset < 12 || offset >= this.dataEnd) throw corrupt(`${this.path} at offset ${offset}`, 'offset is outside the pack');
    const end = this.index.entryEnd(offset, this.dataEnd);
    const whole = end - offset <= SMALL_ENTRY_BYTES;
    const head = this.bytes(offset, whole ? end : Math.min(offset + HEADER_READ_BYTES, end));
    let i = 0;
    let b = head[i++]!;
    const type = (b >> 4) & 7;
    let size = b & 15;
    let shift = 4;
    while (b & 0x80) {
      if (i >= head.length) throw this.fail(offset, 'entry header is truncated');
      if (shift > 49) throw this.fail(offset, 'entry size is absurdly large');
      b = head[i++]!;
      size += (b & 0x7f) * 2 ** shift;
      shift += 7;
    }
    let baseOffset = -1;
    let baseOid: Buffer | null = null;
    if (type === OBJ_OFS_DELTA) {
      // gitformat-pack: the distance is big-endian base-128, and each continuation byte adds one before the
      // shift, so that every distance has exactly one encoding.
      if (i >= head.length) throw this.fail(offset, 'delta base offset is truncated');
      b = head[i++]!;
      let distance = b & 0x7f;
      while (b & 0x80) {
        if (i >= head.length) throw this.fail(offset, 'delta base offset is truncated');
        if (distance > 2 ** 45) throw this.fail(offset, 'delta base offset is absurdly large');
        b = head[i++]!;
        distance = (distance + 1) * 128 + (b & 0x7f);
      }
      baseOffset = offset - distance;
      if (distance === 0 || baseOffset < 12) throw this.fail(offset, `delta base offset ${baseOffset} is outside the pack`);
    } else if (type === OBJ_REF_DELTA) {
      if (i + OID_BYTES > head.length) throw this.fail(offset, 'delta base id is truncated');
      baseOid = Buffer.from(head.subarray(i, i + OID_BYTES));
      i += OID_BYTES;
    } else if (type < OBJ_COMMIT || type > OBJ_TAG) {
      throw this.fail(offset, `invalid object type ${type}`);
    }
    if (offset + i >= end) throw this.fail(offset, 'entry has no compressed data');
    return { offset, type, size, dataStart: offset + i, end, baseOffset, baseOid, compressed: whole ? head.subarray(i) : null };
  }

  /** Inflate an entry's data whole; it must inflate to exactly its declared size. */
  inflate(e: PackEntry, what: What): Buffer {
    let input = e.compressed;
    if (!input) {
      this.open();
      input = this.bytes(e.dataStart, e.dataStart + Math.min(e.end - e.dataStart, maxCompressedBytes(e.size)));
    }
    return inflateExact(input, e.size, what);
  }

  /** Inflate an entry's data into buf[at, at + size + 1) (the last byte is scratch). */
  inflateInto(e: PackEntry, buf: Buffer, at: number, what: What): void {
    let input = e.compressed;
    if (!input) {
      this.open();
      input = this.bytes(e.dataStart, e.dataStart + Math.min(e.end - e.dataStart, maxCompressedBytes(e.size)));
    }
    inflateInto(input, e.size, buf, at, what);
  }

  /** Inflate an entry as a stream of chunks (for blobs too large to hold); checks the total size. */
  async *stream(e: PackEntry, what: string): AsyncGenerator<Buffer> {
    const end = Math.min(e.end, e.dataStart + maxCompressedBytes(e.size));
    yield* inflateStream(this.path, e.dataStart, end, 0, e.size, what);
  }
}

/**
 * Stream-inflate file bytes [start, end) and yield the output after skipping `skip` bytes; the output after
 * the skip must be exactly `size` bytes. Used for large blobs, loose or packed.
 */
export async function* inflateStream(file: string, start: number, end: number, skip: number, size: number, what: string): AsyncGenerator<Buffer> {
  // Synchronously, a block of the file at a time, on a zlib handle of its own: no thread-pool round trip
  // per chunk (issue 14). The file is read through an fd of its own, closed when the stream ends or is
  // abandoned.
  let fd = -1;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    throw fromSystemError(err, `opening ${file}`);
  }
  try {
    const block = Buffer.allocUnsafe(Math.min(STREAM_READ_BYTES, Math.max(1, end - start)));
    let pos = start;
    const read = (): Buffer | null => {
      if (pos >= end) return null;
      let n: number;
      try {
        n = readSync(fd, block, 0, Math.min(block.length, end - pos), pos);
      } catch (err) {
        throw fromSystemError(err, `reading ${file}`);
      }
      if (n === 0) return null;
      pos += n;
      return block.subarray(0, n);
    };
    const chunks = inflateChunks(read, skip, size, what);
    if (chunks) {
      yield* chunks;
      return;
    }
  } finally {
    closeSync(fd);
  }
  const source = createReadStream(file, { start, end: end - 1, highWaterMark: 1 << 20 });
  const inflater = zlib.createInflate({ chunkSize: 1 << 20 });
  source.on('error', (err) => inflater.destroy(err));
  source.pipe(inflater);
  let seen = 0;
  let toSkip = skip;
  try {
    for await (const raw of inflater as AsyncIterable<Buffer>) {
      let chunk = raw;
      if (toSkip > 0) {
        const n = Math.min(toSkip, chunk.length);
        toSkip -= n;
        chunk = chunk.subarray(n);
        if (chunk.length === 0) continue;
      }
      seen += chunk.length;
      if (seen > size) throw corrupt(what, `inflates to more than its declared ${size} bytes`);
      yield chunk;
    }
  } catch (err) {
    if (err instanceof SourcemeshError) throw err;
    const e = err as NodeJS.ErrnoException;
    if (typeof e?.code === 'string' && e.code.startsWith('Z_')) throw corrupt(what, `zlib data is corrupt (${e.message})`, {}, err);
    throw fromSystemError(err, `reading ${file}`);
  } finally {
    source.destroy();
    inflater.destroy();
  }
  if (seen !== size) throw corrupt(what, `inflates to ${seen} bytes, ${size} declared`);
}
