// Cross-checks of a segmented download: a random fraction of the pieces is taken again from a second,
// independent source (piece-scheduler.ts `crossCheckSource`: upstream first, else the fastest other
// source) while the download goes on, at most CROSS_CHECKS_AT_ONCE at a time; once the file has
// verified, each second opinion is compared with the verified bytes, and a source that disagrees lied.
import type { FileHandle } from 'node:fs/promises';
import type { Distfile } from '../manifest/distfile.ts';
import { sha256Hex } from '../store/digest.ts';
import type { DownloadContext } from './download.ts';
import { chooseCrossChecks, crossCheckSource, type Blame, type Piece, type SourceState } from './piece-scheduler.ts';
import { readRange } from './range.ts';

const CROSS_CHECKS_AT_ONCE = 2;

export class CrossChecks {
  readonly chosen: Set<Piece>;
  private readonly states: SourceState[];
  private readonly ctx: DownloadContext;
  private readonly queue: Piece[] = [];
  private readonly running = new Set<Promise<void>>();
  private readonly abort = new AbortController();
  private readonly opinions: { piece: Piece; other: SourceState; sha: string }[] = [];
  /**
   * Piece memory for the second opinions and, once the file verified, for reading our pieces back: reused,
   * where a fresh piece each (some 20 of 1 MiB read back one after the other at the end of a 1 GiB file)
   * made a segmented fetch's peak RSS (docs/BENCHMARKS.md, bench:mirrors, issue 21).
   */
  private readonly spare: Buffer[] = [];

  constructor(pieces: Piece[], states: SourceState[], ctx: DownloadContext, fraction: number) {
    this.chosen = chooseCrossChecks(pieces, fraction, ctx.random);
    this.states = states;
    this.ctx = ctx;
  }

  /** `piece` is written: ask a second source for it (now, or when one of the running checks ends). */
  written(piece: Piece): void {
    if (!this.chosen.has(piece)) return;
    this.queue.push(piece);
    this.pump();
  }

  private pump(): void {
    while (this.running.size < CROSS_CHECKS_AT_ONCE && this.queue.length) {
      const piece = this.queue.shift()!;
      const run = this.ask(piece);
      this.running.add(run);
      void run.finally(() => {
        this.running.delete(run);
        this.pump();
      });
    }
  }

  private async ask(piece: Piece): Promise<void> {
    const other = crossCheckSource(this.states, piece);
    if (!other) return;
    const memory = this.take(piece);
    try {
      const signal = this.ctx.signal ? AbortSignal.any([this.ctx.signal, this.abort.signal]) : this.abort.signal;
      const got = await readRange(other.source, piece.start, piece.end, this.ctx, signal, piece.end + 1, memory);
      if (got !== 'no-ranges') this.opinions.push({ piece, other, sha: sha256Hex(got.body) });
      this.spare.push(memory); // not after a failure: a transport that reads in place may not have let go
    } catch {
      // a source that cannot answer gives no opinion
    }
  }

  private take(piece: Piece): Buffer {
    const b = this.spare.pop();
    return b && b.length >= piece.end - piece.start + 1 ? b : Buffer.allocUnsafeSlow(piece.end - piece.start + 1);
  }

  /** The file verified: compare every second opinion with the verified bytes. */
  async judge(d: Distfile, fh: FileHandle, blame: Blame[]): Promise<void> {
    this.pump();
    while (this.running.size) await Promise.race(this.running); // each end starts the next queued check
    for (const { piece, other, sha } of this.opinions) {
      if (other.dropped) continue;
      const memory = this.take(piece);
      const ours = sha256Hex(await readBack(fh, piece, memory));
      this.spare.push(memory);
      if (sha === ours) continue;
      // Our bytes verified against the pinned sha256, so the other source is the one that lied.
      const b: Blame = {
        source: other.source.label, code: 'E_CHECKSUM', range: [piece.start, piece.end], served: sha, expected: ours,
        message: `cross-check: ${other.source.label} served bytes ${piece.start}-${piece.end} of ${d.name} with sha256 ${sha}, the verified bytes have ${ours}`,
      };
      other.dropped = b;
      blame.push(b);
    }
  }

  /** Stop whatever still runs (the download failed). */
  async stop(): Promise<void> {
    this.queue.length = 0;
    this.abort.abort();
    await Promise.allSettled(this.running);
  }
}

/** Piece `piece`'s bytes as they are in the file (zeros past its end), in `into` when it is long enough. */
export async function readBack(fh: FileHandle, piece: Piece, into?: Buffer): Promise<Buffer> {
  const length = piece.end - piece.start + 1;
  const buf = into && into.length >= length ? into.subarray(0, length) : Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, piece.start + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  buf.fill(0, got);
  return buf;
}
