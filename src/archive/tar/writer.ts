// Blocking a tar stream the way git's archive-tar.c does: every header and every file's data padded with
// zeros to a 512-byte block, the output a sequence of 10240-byte records. At the end the last record is
// zero-filled, and one more zero record follows if that left fewer than two zero blocks (the end-of-archive
// marker). Output is handed out as chunks of about `chunkBytes`; large data is passed through without a copy.

import { BLOCK, RECORD } from './header.ts';

/** Data at least this large goes out as its own chunk instead of being copied. */
const PASS_THROUGH_BYTES = 64 * 1024;
/**
 * Bytes of staging buffers handed back by the consumer (recycle) and kept for reuse, at most: what a
 * consumer holds at once and then hands back together (durable-file's writeOverlapped: a 1 MiB batch being
 * written while the next is filled) must come back to the spare list, or the next batch is made of fresh
 * buffers (issue 14: with 8 kept, 325 fresh 64 KiB buffers per 35 MB tar into a file, 68-138 into a pipe;
 * with 2 MiB, 13-39; page faults 11.0k -> 8.4k per archive; docs/BENCHMARKS.md, bench:archive).
 */
const SPARE_STAGING_BYTES = 2 * 1024 * 1024;
/** And at least this many buffers, whatever their size. */
const SPARE_STAGING_MIN = 8;

export class TarBlocker {
  private readonly chunkBytes: number;
  private staging: Buffer;
  private pos = 0;
  private ready: Buffer[] = [];
  private readyBytes = 0;
  /** Staging buffers out with the consumer: only these are taken back by recycle, each once. */
  private readonly lent = new WeakSet<ArrayBufferLike>();
  private readonly spare: Buffer[] = [];
  private readonly spareMax: number;
  /** Bytes written so far, padding included. */
  total = 0;

  constructor(chunkBytes = 512 * 1024) {
    this.chunkBytes = Math.max(BLOCK, Math.ceil(chunkBytes / BLOCK) * BLOCK);
    this.spareMax = Math.max(SPARE_STAGING_MIN, Math.floor(SPARE_STAGING_BYTES / this.chunkBytes));
    this.staging = this.freshStaging();
  }

  private freshStaging(): Buffer {
    return this.spare.pop() ?? Buffer.allocUnsafeSlow(this.chunkBytes);
  }

  /**
   * The consumer is done with `chunk` (written out, nothing keeps it): its staging buffer is reused instead
   * of a new one being allocated and collected (a 35 MB tar went through 540 of them). Anything else (data
   * passed through, a chunk handed back twice) is ignored.
   */
  recycle(chunk: Uint8Array): void {
    if (!this.lent.has(chunk.buffer)) return;
    this.lent.delete(chunk.buffer);
    if (this.spare.length < this.spareMax) this.spare.push(Buffer.from(chunk.buffer, 0, this.chunkBytes));
  }

  private flushStaging(): void {
    if (this.pos === 0) return;
    const out = this.staging.subarray(0, this.pos);
    this.lent.add(out.buffer);
    this.ready.push(out);
    this.readyBytes += out.length;
    this.staging = this.freshStaging();
    this.pos = 0;
  }

  private copyIn(data: Buffer): void {
    let from = 0;
    while (from < data.length) {
      const n = Math.min(data.length - from, this.chunkBytes - this.pos);
      data.copy(this.staging, this.pos, from, from + n);
      this.pos += n;
      from += n;
      if (this.pos === this.chunkBytes) this.flushStaging();
    }
    this.total += data.length;
  }

  private zeros(n: number): void {
    while (n > 0) {
      const k = Math.min(n, this.chunkBytes - this.pos);
      // The typed array's own fill: Buffer#fill validates its arguments and allocated on each of the
      // thousands of paddings of an archive (issue 14: 0.6 of the 22 MB a tar of 5,000 files allocated).
      Uint8Array.prototype.fill.call(this.staging, 0, this.pos, this.pos + k);
      this.pos += k;
      n -= k;
      this.total += k;
      if (this.pos === this.chunkBytes) this.flushStaging();
    }
  }

  /** A 512-byte header. */
  header(h: Buffer): void {
    this.copyIn(h);
  }

  /** Room for one header, written in place by the caller: [buffer, offset]. */
  headerSlot(): [Buffer, number] {
    // Streamed data can leave the staging buffer mid-block: start a new one when the header would not fit.
    if (this.pos + BLOCK > this.chunkBytes) this.flushStaging();
    const at = this.pos;
    this.pos += BLOCK;
    this.total += BLOCK;
    const buf = this.staging;
    if (this.pos === this.chunkBytes) this.flushStaging();
    return [buf, at];
  }

  /** Data, padded to a whole block unless `pad` is false (the caller pads). */
  data(buf: Buffer, pad = true): void {
    if (buf.length >= PASS_THROUGH_BYTES) {
      this.flushStaging();
      this.ready.push(buf);
      this.readyBytes += buf.length;
      this.total += buf.length;
    } else {
      this.copyIn(buf);
    }
    if (pad) this.pad(buf.length);
  }

  /**
   * Room for `size` bytes of data plus one byte of scratch in the staging buffer, for the caller to fill in
   * place (then call pad(size)); null when it could never fit.
   */
  reserveData(size: number): [Buffer, number] | null {
    if (size + 1 > this.chunkBytes) return null;
    // Start a new staging buffer rather than copy: the current one goes out a little short.
    if (this.pos + size + 1 > this.chunkBytes) this.flushStaging();
    const at = this.pos;
    this.pos += size;
    this.total += size;
    return [this.staging, at];
  }

  /** Before streaming data chunk by chunk: everything staged so far, in order. */
  beginPassThrough(): Buffer[] {
    this.flushStaging();
    return this.take(true);
  }

  /** Account for a chunk the caller emitted itself after beginPassThrough(). */
  passedThrough(n: number): void {
    this.total += n;
  }

  /** Zeros up to the next block boundary after `size` bytes of data. */
  pad(size: number): void {
    const rem = size % BLOCK;
    if (rem) this.zeros(BLOCK - rem);
  }

  /** Chunks ready to go out (all of them with `force`, else only once enough have gathered). */
  take(force = false): Buffer[] {
    if (!force && this.readyBytes < this.chunkBytes) return [];
    const out = this.ready;
    this.ready = [];
    this.readyBytes = 0;
    return out;
  }

  /** The end-of-archive zeros, then everything left. */
  finish(): Buffer[] {
    const used = this.total % RECORD;
    const tail = RECORD - used;
    this.zeros(tail);
    if (tail < 2 * BLOCK) this.zeros(RECORD);
    this.flushStaging();
    return this.take(true);
  }
}
