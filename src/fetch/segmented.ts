// Segmented download: one file in pieces from several sources at once, with Range requests (the idea
// of BEP 19 web seeds and aria2's multi-source download). This module is the I/O around the decisions
// of piece-scheduler.ts: `segments` connections, each asking the scheduler for its next piece as soon as
// its last one has arrived (so faster sources get more), and reporting what became of it. Pieces are
// buffered in memory until checked and written (at most twice `segments` pieces), so a slow or lying
// duplicate can never overwrite good bytes. Hashing (the piece map and the whole file's SHA-256) is done
// as the pieces arrive and are written (piece-hasher.ts). Which pieces are in place is recorded
// beside the partial (piece-record.ts), so that a run killed mid-way resumes with the missing pieces
// only. A file that does not verify is handed to liars.ts for blame; cross-check.ts compares a fraction
// of the pieces with a second source.
import { createHash } from 'node:crypto';
import { open, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { SourcemeshError, fromSystemError } from '../errors.ts';
import { writeFully } from '../fs/write-fully.ts';
import type { Distfile } from '../manifest/distfile.ts';
import { digestsEqual, hashFile } from '../store/digest.ts';
import type { Partial } from '../store/store.ts';
import { CrossChecks, readBack } from './cross-check.ts';
import type { DownloadContext } from './download.ts';
import { networkError } from './http.ts';
import { findLiars } from './liars.ts';
import { BLOCK, verifyPieceLayer } from './piece-map.ts';
import { PieceHasher } from './piece-hasher.ts';
import { PieceCheckpoints, coveredPieces, readPieceRecord } from './piece-record.ts';
import { PieceScheduler, hedgeTarget, type Attempt, type Blame, type Piece, type SourceState } from './piece-scheduler.ts';
import type { Source } from './plan.ts';
import { readRange } from './range.ts';

export type { Blame } from './piece-scheduler.ts';

export interface SegmentOptions {
  /** Pieces in flight at once. */
  segments: number;
  pieceLength: number;
  /** Fraction of pieces also taken from a second, independent source and compared. */
  crossCheck: number;
}

export interface SegmentedResult {
  digest: string;
  bytes: number;
  /** Sources that served bytes in this run, most first (none when every piece came from an earlier run's partial). */
  used: { source: Source; bytes: number }[];
  /** Bytes kept from the partial of an earlier, interrupted run. */
  resumed: number;
  blame: Blame[];
}

/**
 * Hashes each piece must have. `hash` 'sha256' (the default): BEP 52 piece hashes, under the manifest's
 * merkleRoot, so every source's pieces are checked. 'sha1': a v1 torrent's `pieces` (BEP 3, SHA-1 of the
 * piece's bytes), which only the torrent vouches for, not the manifest: they check pieces from peers of
 * that torrent only (`role: 'peer'`), so a torrent that lies can cost its own peers, never a mirror.
 */
export type PieceMap = { pieceLength: number; layer: Buffer[]; hash?: 'sha256' | 'sha1' };

/** Worth trying: pieces allowed, two sources that may serve ranges, and not known to be small. */
export function canSegment(d: Distfile, sources: Source[], opts: SegmentOptions): boolean {
  return opts.segments > 1 && (d.size === undefined || d.size >= 2 * opts.pieceLength) && sources.filter((s) => s.location.type !== 'git').length >= 2;
}

/** Where the piece record of `partial` lives (the store moves it along when it adopts the partial). */
export const pieceRecordPath = (partial: Partial): string => `${partial.path}.pieces`;

/**
 * `notSplit` when the file turned out not to be worth splitting (or the first source ignores Range or
 * failed): the caller then downloads it whole, skipping sources blamed here. A file of unknown size
 * costs no extra round trip: the first piece is asked for first, and its Content-Range tells the size.
 */
export async function segmentedDownload(d: Distfile & { sha256: string }, sources: Source[], partial: Partial, ctx: DownloadContext, opts: SegmentOptions): Promise<SegmentedResult | { notSplit: true; blame: Blame[] }> {
  const states = PieceScheduler.states(sources);
  const blame: Blame[] = [];
  const fh = await open(partial.path, 'r+').catch((err) => { throw fromSystemError(err, partial.path); });
  const first = await firstPiece(d, states, ctx, opts, blame);
  if (!first) {
    await fh.close();
    return { notSplit: true, blame };
  }
  const size = first.size;
  // With a trusted piece map (BEP 52 root in the manifest, piece layer from a mirror), every piece is
  // checked on arrival and a bad one names its source at once.
  // A v1 torrent's SHA-1 pieces are taken only when nothing under the manifest's root is at hand.
  const given: PieceMap | undefined = ctx.pieceLayerFor?.(d, size);
  const map = (d.merkleRoot && given?.hash !== 'sha1' ? given : undefined) ?? (d.merkleRoot && size > opts.pieceLength ? await fetchPieceLayer(d, size, states, ctx) : undefined) ?? (given?.hash === 'sha1' ? given : undefined);
  // In a swarm, each leecher starts at a piece of its own (and wraps around), so leechers hold different
  // pieces early and have something to trade (BEP 3 leaves the order to the client; rarest first is the usual).
  const pieceLength = map?.pieceLength ?? opts.pieceLength;
  const swarm = states.some((s) => s.source.role === 'peer');
  const firstFree = swarm ? Math.floor(ctx.random() * Math.ceil(size / pieceLength)) : 0;
  const L = ctx.limits;
  const sched = new PieceScheduler(size, pieceLength, states, firstFree, swarm ? { perSource: L.swarmPiecesPerPeer, perWholeSource: L.swarmPiecesPerWholeSource, unknownGraceMs: L.swarmSilentPeerGraceMs, random: ctx.random } : undefined);
  // A swarm keeps pieces in flight from every peer at once (piece-scheduler.ts `assignSwarm`), not `segments` in all.
  const inFlight = swarm ? Math.max(opts.segments, Math.min(L.swarmPiecesInFlight, states.length * L.swarmPiecesPerPeer)) : opts.segments;
  const run = new PieceRun(d, sched, partial, fh, ctx, { ...opts, segments: inFlight }, map, blame);
  try {
    return await run.download(first);
  } finally {
    await run.close();
  }
}

/** One segmented download once the size is known: the state its connections share, and the I/O. */
class PieceRun {
  private readonly pieces: Piece[];
  private readonly states: SourceState[];
  private readonly hasher: PieceHasher;
  private readonly checkpoints: PieceCheckpoints;
  /** Chosen once adoption is known (adopted pieces are not cross-checked). */
  private crossChecks?: CrossChecks;
  /** Attempts whose bytes are being read, with what cancels each. */
  private readonly reading = new Map<Attempt, AbortController>();
  /** Checks and writes of pieces that arrived; at most `segments` at once. */
  private readonly settling = new Set<Promise<void>>();
  /** Piece buffers, reused: a fresh 1 MiB buffer per piece would make V8 collect garbage over and over (external memory), for nothing. */
  private readonly pool: Buffer[] = [];
  private fatal: unknown;
  private stopped = false;
  private wake: () => void = () => {};
  private changed = new Promise<void>((r) => (this.wake = r));
  private resumedBytes = 0;
  private readonly pieceLength: number;

  private readonly d: Distfile & { sha256: string };
  private readonly sched: PieceScheduler;
  private readonly partial: Partial;
  private readonly fh: FileHandle;
  private readonly ctx: DownloadContext;
  private readonly opts: SegmentOptions;
  private readonly map: PieceMap | undefined;
  private readonly blame: Blame[];

  constructor(d: Distfile & { sha256: string }, sched: PieceScheduler, partial: Partial, fh: FileHandle, ctx: DownloadContext, opts: SegmentOptions, map: PieceMap | undefined, blame: Blame[]) {
    this.d = d;
    this.sched = sched;
    this.partial = partial;
    this.fh = fh;
    this.ctx = ctx;
    this.opts = opts;
    this.map = map;
    this.blame = blame;
    this.pieces = sched.pieces;
    this.states = sched.states;
    this.pieceLength = map?.pieceLength ?? opts.pieceLength;
    this.hasher = new PieceHasher(partial.path);
    this.checkpoints = new PieceCheckpoints(fh, pieceRecordPath(partial), this.size, this.pieceLength);
  }

  private get size(): number {
    return this.pieces.at(-1)!.end + 1;
  }

  async download(first: FirstPiece): Promise<SegmentedResult> {
    const { d, sched, pieces, partial } = this;
    await this.adopt();
    await this.fh.truncate(this.size);
    const crossChecks = (this.crossChecks = new CrossChecks(pieces, this.states, this.ctx, this.opts.crossCheck));
    if (first.body && first.from) await this.takeFirst(first.body, first.from, first.ms);
    if (!sched.complete()) await this.runConnections();
    if (this.fatal) throw this.fatal;

    let digest = (await this.hasher.digest(this.size)) ?? (await hashFile(partial.path)).digest('hex');
    if (!digestsEqual(digest, d.sha256)) digest = await findLiars(d, pieces, this.states, this.fh, partial, this.ctx, this.blame, earlierRun(partial));
    if (digestsEqual(digest, d.sha256)) await crossChecks.judge(d, this.fh, this.blame);
    return { digest, bytes: this.size, used: contributions(pieces), resumed: this.resumedBytes, blame: this.blame };
  }

  /**
   * Keep the pieces an earlier run left in place (its partial and piece record, adopted by the store):
   * those its record covers, if the record is for a file of this size; with a piece map, only those
   * whose bytes still match it. Without one, the whole file's sha256 judges them at the end (and
   * liars.ts repairs a bad one). The record is then rewritten to say exactly what was kept.
   */
  private async adopt(): Promise<void> {
    const recordPath = pieceRecordPath(this.partial);
    const record = await readPieceRecord(recordPath);
    const fileSize = (await this.fh.stat()).size;
    const covered = record && fileSize === this.size ? coveredPieces(record, this.size, this.pieceLength) : [];
    if (!covered.length) {
      await rm(recordPath, { force: true }).catch((err) => { throw fromSystemError(err, recordPath); });
      return;
    }
    let kept = 0;
    const memory = this.takeBuffer(); // one piece's memory for every piece read back
    for (const i of covered) {
      const piece = this.pieces[i]!;
      if (this.map && !this.check(await readBack(this.fh, piece, memory), piece, earlierRun(this.partial)).ok) continue;
      this.sched.adopt(i);
      this.checkpoints.adopted(i);
      if (this.map) this.ctx.onPieceVerified?.(this.d, i, this.partial.path, this.pieceLength);
      this.resumedBytes += piece.end - piece.start + 1;
      kept++;
    }
    this.giveBack(memory);
    this.hasher.prefixWritten(this.sched.prefix());
    if (kept !== covered.length || record!.pieceLength !== this.pieceLength) this.checkpoints.checkpoint();
  }

  /** The connections: each asks the scheduler for an attempt, makes it, and asks again. */
  private async runConnections(): Promise<void> {
    const connections = Array.from({ length: Math.min(Math.max(this.opts.segments, 1), this.pieces.length) }, () => this.connection());
    try {
      await Promise.all(connections);
    } catch (err) {
      // One connection gave up (no source left, a local error, an abort): stop the others before the
      // file is closed, and wait for them.
      this.stopped = true;
      for (const abort of this.reading.values()) abort.abort();
      await Promise.allSettled(connections);
      throw err;
    } finally {
      await Promise.all(this.settling);
    }
  }

  private async connection(): Promise<void> {
    for (;;) {
      this.ctx.signal?.throwIfAborted();
      if (this.fatal) throw this.fatal;
      if (this.stopped || this.sched.complete()) return;
      const a = this.sched.assign(Date.now());
      if (!a) {
        if (this.sched.stuck(this.settling.size > 0)) throw noSourceLeft(this.d, this.blame, this.states);
        await Promise.race([this.changed, new Promise((r) => setTimeout(r, 50))]);
        continue;
      }
      await this.attempt(a);
      while (this.settling.size >= this.opts.segments) await Promise.race(this.settling);
      this.notify();
    }
  }

  /** Read one piece from one source; its check and write go on in the background (`settling`). */
  private async attempt(a: Attempt): Promise<void> {
    const { piece, state: st } = a;
    const abort = new AbortController();
    const onOuterAbort = () => abort.abort();
    this.ctx.signal?.addEventListener('abort', onOuterAbort, { once: true });
    this.reading.set(a, abort);
    const t0 = Date.now();
    let body: Buffer;
    let memory: Buffer | undefined = this.takeBuffer();
    try {
      // Errors while reading are the source's; errors while checking or writing are ours.
      const got = await readRange(st.source, piece.start, piece.end, this.ctx, abort.signal, this.size, memory);
      if (got === 'no-ranges') {
        this.giveBack(memory);
        this.sched.noRanges(a);
        return;
      }
      body = got.body;
      if (body.buffer !== memory.buffer) memory = undefined;
    } catch (err) {
      this.giveBack(memory);
      const cancelled = Boolean(this.ctx.signal?.aborted || abort.signal.aborted); // the run ended, or another source won
      const e = err instanceof SourcemeshError ? err : (networkError(err, st.source.label) as SourcemeshError);
      // `notYet`: a peer that does not have the piece yet (src/torrent/peer-source.ts) is no fault of its own.
      const blame: Blame | undefined = cancelled || e.details.notYet === true ? undefined : { source: st.source.label, code: e.code, message: e.message, range: [piece.start, piece.end] };
      if (this.sched.failed(a, blame)) this.blamed(blame!);
      if (this.ctx.signal?.aborted) throw err;
      return;
    } finally {
      this.reading.delete(a);
      this.ctx.signal?.removeEventListener('abort', onOuterAbort);
    }
    if (!this.sched.arrived(a)) {
      this.giveBack(memory); // a lost end-game race keeps the winner's bytes
      return;
    }
    const ms = Date.now() - t0;
    const settle = (async () => {
      try {
        const checked = this.check(body, piece, st);
        if (!checked.ok) {
          const b = this.checksumBlame(st, piece);
          if (this.sched.rejected(a, b)) this.blamed(b);
          return;
        }
        const losers = this.sched.accepted(a, body.length, ms);
        if (!losers) return; // another source's copy won while this one was being checked
        for (const [other, cancel] of this.reading) if (other.piece === piece && losers.includes(other.state)) cancel.abort();
        await this.write(piece, body, checked.leaves);
      } catch (err) {
        this.fatal ??= fromSystemError(err, this.partial.path);
        memory = undefined; // a write may still hold it
      } finally {
        this.giveBack(memory);
        this.sched.release(a);
        this.notify();
      }
    })();
    this.settling.add(settle);
    void settle.finally(() => this.settling.delete(settle));
  }

  /**
   * The first answer, asked for before the size and the piece map were known: every piece it covers
   * whole is checked like any other, kept, or blamed on its source (which is dropped), so no byte read
   * goes unchecked or a lie unnamed. A piece map's pieces may be smaller than the probe (a torrent's
   * 16 KiB) or larger: then the rest of the first piece is asked of the same source and the piece checked
   * whole (if that read fails, the piece is asked for again as any other). Without a map, or with a v1
   * map and a source that is not a peer, a piece is kept unchecked and the whole file's sha256 judges
   * it, as for any other piece.
   */
  private async takeFirst(body: Buffer, from: SourceState, ms: number): Promise<void> {
    const head = this.pieces[0]!;
    if (this.map && body.length <= head.end && !head.done && (this.map.hash !== 'sha1' || from.source.role === 'peer')) {
      const t0 = Date.now();
      const rest = await readRange(from.source, body.length, head.end, this.ctx, this.ctx.signal ?? new AbortController().signal, this.size).catch(() => undefined);
      if (rest === undefined || rest === 'no-ranges') return;
      body = Buffer.concat([body, rest.body]);
      ms += Date.now() - t0;
    }
    const covered = this.pieces.filter((p) => p.end < body.length);
    for (const piece of covered) {
      if (piece.done) continue;
      const bytes = body.subarray(piece.start, piece.end + 1);
      const checked = this.check(bytes, piece, from);
      if (!checked.ok) {
        const b = this.checksumBlame(from, piece);
        if (this.sched.drop(from, b)) this.blamed(b);
        return;
      }
      if (this.sched.took(piece, from, bytes.length, piece === covered[0] ? ms : 0)) await this.write(piece, bytes);
    }
  }

  private checksumBlame(from: SourceState, piece: Piece): Blame {
    return {
      source: from.source.label, code: 'E_CHECKSUM', range: [piece.start, piece.end], expected: this.map!.layer[piece.index]!.toString('hex'),
      message: `${from.source.label} served bytes ${piece.start}-${piece.end} of ${this.d.name} (piece ${piece.index}) that do not match ${this.map!.hash === 'sha1' ? "the torrent's v1 piece hash (SHA-1)" : 'the piece map pinned by its merkle root'}`,
    };
  }

  /** Does `body` from `from` fit the piece map (no map: nothing to check)? With BEP 52, also the blocks' hashes. */
  private check(body: Buffer, piece: Piece, from: SourceState): { ok: boolean; leaves?: Buffer } {
    if (!this.map) return { ok: true };
    if (this.map.hash === 'sha1') {
      // The torrent's word only: binding on its peers; bytes from anywhere else wait for the sha256.
      if (from.source.role !== 'peer') return { ok: true };
      return { ok: createHash('sha1').update(body).digest().equals(this.map.layer[piece.index]!) };
    }
    const r = this.hasher.pieceHash(body, this.map.pieceLength);
    return { ok: r.hash.equals(this.map.layer[piece.index]!), leaves: r.leaves };
  }

  /** Put an accepted piece in the file; its bytes then count for the hash, the record and cross-checks. */
  private async write(piece: Piece, body: Buffer, leaves?: Buffer): Promise<void> {
    await writeFully(this.fh, [body], piece.start);
    // The file's SHA-256 is taken in file order as its prefix is written (from `body` when it extends it).
    this.hasher.wrote(piece.start, body, this.sched.written(piece));
    this.checkpoints.wrote(piece.index, body.length);
    this.crossChecks?.written(piece);
    this.ctx.onBytes?.(body.length);
    if (this.map) this.ctx.onPieceVerified?.(this.d, piece.index, this.partial.path, this.pieceLength, leaves);
  }

  private blamed(b: Blame): void {
    this.blame.push(b);
    this.notify();
  }

  private notify(): void {
    const w = this.wake;
    this.changed = new Promise<void>((r) => (this.wake = r));
    w();
  }

  private takeBuffer(): Buffer {
    return this.pool.pop() ?? Buffer.allocUnsafeSlow(this.pieceLength);
  }

  private giveBack(b: Buffer | undefined): void {
    if (b && b.length === this.pieceLength && this.pool.length < 2 * this.opts.segments + 2) this.pool.push(b);
  }

  async close(): Promise<void> {
    await this.crossChecks?.stop();
    await this.checkpoints.close();
    await this.hasher.close();
    await this.fh.close();
  }
}

/** Stands for the bytes of adopted pieces when blame is looked for (it can be repaired, never blamed). */
function earlierRun(partial: Partial): SourceState {
  return { source: { role: 'upstream', label: 'the partial download of an earlier run', location: { type: 'file', path: partial.path } }, active: 0, bytes: 0, ms: 0, pieces: 0 };
}

interface FirstPiece {
  size: number;
  body?: Buffer;
  from?: SourceState;
  ms: number;
}

/**
 * The first piece, from the first source that answers with a range (a source that ignores Range is
 * marked and the next one asked). Its Content-Range says the file's size; a small file is then
 * complete in this one request. A source silent for HEDGE_MS is not waited for: the next one is asked
 * as well (piece-scheduler.ts `hedgeTarget`) and the first answer wins. Undefined: no source would
 * serve a range.
 */
const HEDGE_MS = 1500;

async function firstPiece(d: Distfile, states: SourceState[], ctx: DownloadContext, opts: SegmentOptions, blame: Blame[]): Promise<FirstPiece | undefined> {
  if (d.size !== undefined && d.size >= 2 * opts.pieceLength) return { size: d.size, ms: 0 };
  const t0 = Date.now();
  const aborts: AbortController[] = [];
  type Outcome = { st: SourceState; got?: { body: Buffer; total?: number }; failed?: boolean };
  const inflight = new Set<Promise<Outcome>>();
  const asking = new Set<SourceState>();
  let next = 0;
  const askNext = () => {
    const to = hedgeTarget(states, next, [...asking]);
    if (to === undefined) return;
    next = to + 1;
    const st = states[to]!;
    asking.add(st);
    const abort = new AbortController();
    aborts.push(abort);
    const p: Promise<Outcome> = readRange(st.source, 0, opts.pieceLength - 1, ctx, abort.signal, d.size).then(
      (got) => {
        if (got === 'no-ranges') {
          st.noRanges = true;
          return { st, failed: true };
        }
        return { st, got };
      },
      (err) => {
        // A final answer (404, bad redirect, too many bytes) blames the source now; anything that may
        // pass is left to the whole-file path, with its retries and resume.
        if (err instanceof SourcemeshError && !err.details.retryable && !abort.signal.aborted && !ctx.signal?.aborted) {
          blame.push({ source: st.source.label, code: err.code, message: err.message });
        }
        return { st, failed: true };
      },
    );
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
  };
  try {
    askNext();
    while (inflight.size) {
      const hedge = new Promise<'hedge'>((r) => setTimeout(() => r('hedge'), HEDGE_MS).unref());
      const first = await Promise.race([...inflight, hedge]);
      if (first === 'hedge') {
        askNext();
        continue;
      }
      asking.delete(first.st);
      if (first.failed) {
        askNext();
        continue;
      }
      const { st, got } = first;
      if (got!.total === undefined) return undefined;
      if (d.size !== undefined && got!.total !== d.size) {
        st.dropped = { source: st.source.label, code: 'E_SIZE', message: `${st.source.label} announces ${got!.total} bytes, the manifest pins ${d.size}` };
        blame.push(st.dropped);
        askNext();
        continue;
      }
      return { size: got!.total, body: got!.body, from: st, ms: Date.now() - t0 };
    }
    return undefined;
  } finally {
    for (const a of aborts) a.abort();
  }
}

/**
 * The piece layer from the first mirror that publishes one at BASE/sha256/HEX.pieces and whose layer
 * hashes to the manifest's merkle root. Layers with pieces too large to hold in memory are not used.
 */
async function fetchPieceLayer(d: Distfile, size: number, states: SourceState[], ctx: DownloadContext): Promise<PieceMap | undefined> {
  const root = Buffer.from(d.merkleRoot!, 'hex');
  const maxBytes = 32 * Math.ceil(size / BLOCK);
  for (const st of states) {
    if (st.source.role !== 'mirror') continue;
    const loc = st.source.location;
    const where: Source = loc.type === 'http'
      ? { ...st.source, location: { type: 'http', url: `${st.source.label}/sha256/${d.sha256}.pieces` } }
      : { ...st.source, location: { type: 'file', path: path.join(st.source.label, 'sha256', `${d.sha256}.pieces`) } };
    try {
      const got = await readRange(where, 0, maxBytes - 1, ctx, ctx.signal ?? new AbortController().signal);
      const bytes = got === 'no-ranges' ? undefined : got.body;
      if (!bytes) continue;
      const v = verifyPieceLayer(bytes, size, root);
      if (v.pieceLength <= 64 << 20) return v;
    } catch {
      // no layer here, or a bad one: try the next mirror; without a map, the sha256 still decides
    }
  }
  return undefined;
}

/** Who served the bytes that ended up in the file in this run, most first. */
function contributions(pieces: Piece[]): { source: Source; bytes: number }[] {
  const by = new Map<SourceState, number>();
  for (const p of pieces) if (p.from) by.set(p.from, (by.get(p.from) ?? 0) + p.end - p.start + 1);
  return [...by].sort((a, b) => b[1] - a[1]).map(([st, bytes]) => ({ source: st.source, bytes }));
}

function noSourceLeft(d: Distfile, blame: Blame[], states: SourceState[]): SourcemeshError {
  const why = states.map((s) => s.dropped?.message ?? (s.noRanges ? `${s.source.label}: does not serve ranges` : `${s.source.label}: unused`)).join('; ');
  return new SourcemeshError('E_NO_SOURCE', `${d.name}: no source left for its pieces (${why})`, { blame });
}
