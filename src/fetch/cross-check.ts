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
    try {
      const signal = this.ctx.signal ? AbortSignal.any([this.ctx.signal, this.abort.signal]) : this.abort.signal;
      const got = await readRange(other.source, piece.start, piece.end, this.ctx, signal, piece.end + 1);
      if (got !== 'no-ranges') this.opinions.push({ piece, other, sha: sha256Hex(got.body) });
    } catch {
      // a source that cannot answer gives no opinion
    }
  }

  /** The file verified: compare every second opinion with the verified bytes. */
  async judge(d: Distfile, fh: FileHandle, blame: Blame[]): Promise<void> {
    this.pump();
    while (this.running.size) await Promise.race(this.running); // each end starts the next queued check
    for (const { piece, other, sha } of this.opinions) {
      if (other.dropped) continue;
      const ours = sha256Hex(await readBack(fh, piece));
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

/** Piece `piece`'s bytes as they are in the file. */
export async function readBack(fh: FileHandle, piece: Piece): Promise<Buffer> {
  const buf = Buffer.alloc(piece.end - piece.start + 1);
  await fh.read(buf, 0, buf.length, piece.start);
  return buf;
}
