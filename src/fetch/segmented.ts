// Segmented download: one file in pieces from several sources at once, with Range requests (the idea
// of BEP 19 web seeds and aria2's multi-source download). Faster sources get more pieces, because
// a worker always asks the source that would finish a piece soonest; a piece that is still in flight
// when nothing else is left is requested again elsewhere (end game) and the first answer wins; a source
// that fails or lies is dropped for the rest of the run. Pieces are buffered in memory until complete
// (at most `segments` x piece length), so a slow or lying duplicate can never overwrite good bytes.
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { SourcemeshError, fromSystemError, type ErrorCode } from '../errors.ts';
import type { Distfile } from '../manifest/distfile.ts';
import { hashFile } from '../store/digest.ts';
import type { Partial } from '../store/store.ts';
import type { DownloadContext } from './download.ts';
import { networkError } from './http.ts';
import { BLOCK, pieceHash, verifyPieceLayer } from './piece-map.ts';
import { readRange } from './range.ts';
import path from 'node:path';
import type { Source } from './plan.ts';

export interface SegmentOptions {
  /** Pieces in flight at once. */
  segments: number;
  pieceLength: number;
  /** Fraction of pieces also taken from a second, independent source and compared. */
  crossCheck: number;
}

export interface Blame {
  source: string;
  code: ErrorCode;
  message: string;
  /** Evidence: which bytes, and what each side served. */
  range?: [number, number];
  served?: string;
  expected?: string;
}

export interface SegmentedResult {
  digest: string;
  bytes: number;
  /** Sources that served bytes, most first. */
  used: { source: Source; bytes: number }[];
  blame: Blame[];
}

interface SourceState {
  source: Source;
  active: number;
  bytes: number;
  ms: number;
  dropped?: Blame;
  noRanges?: boolean;
}

interface Piece {
  index: number;
  start: number;
  end: number; // inclusive
  done: boolean;
  from?: SourceState;
  sha256?: string;
  attempts: Set<AbortController>;
  /** Sources asked for this piece so far (an end-game duplicate goes to another). */
  askedOf: Set<SourceState>;
  startedAt?: number;
}

/** Worth trying: pieces allowed, two sources that may serve ranges, and not known to be small. */
export function canSegment(d: Distfile, sources: Source[], opts: SegmentOptions): boolean {
  return opts.segments > 1 && (d.size === undefined || d.size >= 2 * opts.pieceLength) && sources.filter((s) => s.location.type !== 'git').length >= 2;
}

/**
 * `notSplit` when the file turned out not to be worth splitting (or the first source ignores Range or
 * failed): the caller then downloads it whole, skipping sources blamed here. A file of unknown size costs no extra round trip: the first
 * piece is asked for first, and its Content-Range tells the size.
 */
export async function segmentedDownload(d: Distfile, sources: Source[], partial: Partial, ctx: DownloadContext, opts: SegmentOptions): Promise<SegmentedResult | { notSplit: true; blame: Blame[] }> {
  const states: SourceState[] = sources.filter((s) => s.location.type !== 'git').map((source) => ({ source, active: 0, bytes: 0, ms: 0 }));
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
  const map = d.merkleRoot && size > opts.pieceLength ? await fetchPieceLayer(d, size, states, ctx) : undefined;
  const pieceLength = map?.pieceLength ?? opts.pieceLength;
  const pieces: Piece[] = [];
  for (let start = 0, i = 0; start < size; start += pieceLength, i++) {
    pieces.push({ index: i, start, end: Math.min(size, start + pieceLength) - 1, done: false, attempts: new Set(), askedOf: new Set() });
  }
  const fitsMap = (body: Buffer, index: number) => !map || pieceHash(body, map.pieceLength).equals(map.layer[index]!);
  if (first.body && first.from && first.body.length === pieces[0]!.end + 1 && fitsMap(first.body, 0)) {
    pieces[0]!.done = true;
    pieces[0]!.from = first.from;
    pieces[0]!.sha256 = createHash('sha256').update(first.body).digest('hex');
    await fh.write(first.body, 0, first.body.length, 0);
    first.from.bytes += first.body.length;
    first.from.ms += first.ms;
    ctx.onBytes?.(first.body.length);
  }
  let wake: () => void = () => {};
  let changed = new Promise<void>((r) => (wake = r));
  const notify = () => {
    const w = wake;
    changed = new Promise<void>((r) => (wake = r));
    w();
  };
  const drop = (st: SourceState, b: Blame) => {
    if (st.dropped) return;
    st.dropped = b;
    blame.push(b);
  };
  const live = () => states.filter((s) => !s.dropped && !s.noRanges);

  try {
    await fh.truncate(size);
    if (pieces.length === 1 && pieces[0]!.done && (await hashFile(partial.path)).digest('hex') === d.sha256) {
      return { digest: d.sha256, bytes: size, used: contributions(pieces), blame };
    }
    const worker = async () => {
      for (;;) {
        ctx.signal?.throwIfAborted();
        if (pieces.every((p) => p.done)) return;
        const piece = pieces.find((p) => !p.done && p.attempts.size === 0) ?? endGamePiece(pieces);
        const st = piece && pickSource(live(), piece, opts.pieceLength);
        if (!piece || !st) {
          if (live().length === 0) throw noSourceLeft(d, blame, states);
          await Promise.race([changed, new Promise((r) => setTimeout(r, 250))]);
          continue;
        }
        await fetchPiece(piece, st);
        notify();
      }
    };

    const fetchPiece = async (piece: Piece, st: SourceState) => {
      const abort = new AbortController();
      const onOuterAbort = () => abort.abort();
      ctx.signal?.addEventListener('abort', onOuterAbort, { once: true });
      piece.attempts.add(abort);
      piece.startedAt ??= Date.now();
      piece.askedOf.add(st);
      st.active++;
      const t0 = Date.now();
      try {
        const got = await readRange(st.source, piece.start, piece.end, ctx, abort.signal, size);
        if (got === 'no-ranges') {
          st.noRanges = true;
          return;
        }
        if (piece.done) return; // lost the end-game race: keep the winner's bytes
        const body = got.body;
        if (!fitsMap(body, piece.index)) {
          drop(st, {
            source: st.source.label, code: 'E_CHECKSUM', range: [piece.start, piece.end], expected: map!.layer[piece.index]!.toString('hex'),
            message: `${st.source.label} served bytes ${piece.start}-${piece.end} of ${d.name} (piece ${piece.index}) that do not match the piece map pinned by its merkle root`,
          });
          return;
        }
        piece.done = true;
        piece.from = st;
        piece.sha256 = createHash('sha256').update(body).digest('hex');
        await fh.write(body, 0, body.length, piece.start);
        ctx.onBytes?.(body.length);
        st.bytes += body.length;
        st.ms += Date.now() - t0;
        for (const other of piece.attempts) if (other !== abort) other.abort();
      } catch (err) {
        if (ctx.signal?.aborted) throw err;
        if (abort.signal.aborted) return; // cancelled because another source won
        const e = err instanceof SourcemeshError ? err : (networkError(err, st.source.label) as SourcemeshError);
        if (e.code === 'E_DISK_FULL' || e.code === 'E_PERMISSION') throw e;
        drop(st, { source: st.source.label, code: e.code, message: e.message, range: [piece.start, piece.end] });
      } finally {
        st.active--;
        piece.attempts.delete(abort);
        ctx.signal?.removeEventListener('abort', onOuterAbort);
      }
    };

    await Promise.all(Array.from({ length: Math.min(opts.segments, pieces.length) }, worker));

    let digest = (await hashFile(partial.path)).digest('hex');
    if (digest !== d.sha256) digest = await findLiars(d, pieces, states, fh, partial, ctx, blame);
    if (digest === d.sha256 && opts.crossCheck > 0) await crossCheck(d, pieces, states, ctx, opts, blame);
    return { digest, bytes: size, used: contributions(pieces), blame };
  } finally {
    await fh.close();
  }
}

/**
 * The first piece, from the first source that answers with a range (a source that ignores Range is
 * marked and the next one asked). Its Content-Range says the file's size; a small file is then
 * complete in this one request. A source silent for HEDGE_MS is not waited for: the next one is asked
 * as well and the first answer wins. Undefined: no source would serve a range.
 */
const HEDGE_MS = 1500;

async function firstPiece(d: Distfile, states: SourceState[], ctx: DownloadContext, opts: SegmentOptions, blame: Blame[]): Promise<{ size: number; body?: Buffer; from?: SourceState; ms: number } | undefined> {
  if (d.size !== undefined && d.size >= 2 * opts.pieceLength) return { size: d.size, ms: 0 };
  const t0 = Date.now();
  const aborts: AbortController[] = [];
  type Outcome = { st: SourceState; got?: { body: Buffer; total?: number }; failed?: boolean };
  const inflight = new Set<Promise<Outcome>>();
  const ask = (st: SourceState): Promise<Outcome> => {
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
    p.finally(() => inflight.delete(p));
    return p;
  };
  try {
    let next = 0;
    ask(states[next++]!);
    while (inflight.size) {
      const hedge = new Promise<'hedge'>((r) => setTimeout(() => r('hedge'), HEDGE_MS).unref());
      const first = await Promise.race([...inflight, hedge]);
      if (first === 'hedge' || first.failed) {
        if (next < states.length) ask(states[next++]!);
        continue;
      }
      const { st, got } = first;
      if (got!.total === undefined) return undefined;
      if (d.size !== undefined && got!.total !== d.size) {
        st.dropped = { source: st.source.label, code: 'E_SIZE', message: `${st.source.label} announces ${got!.total} bytes, the manifest pins ${d.size}` };
        blame.push(st.dropped);
        if (next < states.length) ask(states[next++]!);
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
async function fetchPieceLayer(d: Distfile, size: number, states: SourceState[], ctx: DownloadContext): Promise<{ pieceLength: number; layer: Buffer[] } | undefined> {
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

/** Who served the bytes that ended up in the file, most first. */
function contributions(pieces: Piece[]): { source: Source; bytes: number }[] {
  const by = new Map<SourceState, number>();
  for (const p of pieces) if (p.from) by.set(p.from, (by.get(p.from) ?? 0) + p.end - p.start + 1);
  return [...by].sort((a, b) => b[1] - a[1]).map(([st, bytes]) => ({ source: st.source, bytes }));
}

/** The source that would finish one more piece soonest, by its measured rate and current load. */
function pickSource(candidates: SourceState[], piece: Piece, pieceLength: number): SourceState | undefined {
  let best: SourceState | undefined;
  let bestTime = Infinity;
  for (const s of candidates) {
    if (piece.attempts.size > 0 && piece.askedOf.has(s)) continue; // an end-game duplicate goes elsewhere
    // Measured rate; an untried idle source is tried at once, but one that has not finished its
    // first piece yet is not given a second (it may be stalled).
    const rate = s.ms > 0 ? s.bytes / s.ms : s.active === 0 ? Infinity : 1e-3;
    const eta = ((s.active + 1) * pieceLength) / rate;
    if (eta < bestTime || (eta === bestTime && best && s.active < best.active)) {
      best = s;
      bestTime = eta;
    }
  }
  return best;
}

/** End game: nothing unassigned is left; duplicate the piece that has been in flight longest. */
function endGamePiece(pieces: Piece[]): Piece | undefined {
  let oldest: Piece | undefined;
  for (const p of pieces) if (!p.done && p.attempts.size === 1 && (!oldest || p.startedAt! < oldest.startedAt!)) oldest = p;
  return oldest && Date.now() - oldest.startedAt! > 500 ? oldest : undefined;
}

/**
 * The whole file does not verify and there is no piece map: find who lied. Every piece is taken again
 * from the other sources (up to two); where opinions differ, each source that took part in a dispute
 * is in turn assumed to be the liar and its bytes replaced by another's. The assumption under which
 * the file verifies names the liar, with the disputed ranges and both hashes as evidence.
 */
async function findLiars(d: Distfile, pieces: Piece[], states: SourceState[], fh: FileHandle, partial: Partial, ctx: DownloadContext, blame: Blame[]): Promise<string> {
  type Opinion = { st: SourceState; sha: string; body?: Buffer };
  const disputes: { piece: Piece; opinions: Opinion[] }[] = [];
  for (const piece of pieces) {
    const opinions: Opinion[] = [{ st: piece.from!, sha: piece.sha256! }];
    const others = states.filter((s) => s !== piece.from && !s.dropped && !s.noRanges).slice(0, 2);
    for (const other of others) {
      try {
        const got = await readRange(other.source, piece.start, piece.end, ctx, ctx.signal ?? new AbortController().signal, piece.end + 1);
        if (got !== 'no-ranges') opinions.push({ st: other, sha: createHash('sha256').update(got.body).digest('hex'), body: got.body });
      } catch {
        // a source that cannot answer gives no opinion
      }
    }
    if (new Set(opinions.map((o) => o.sha)).size > 1) disputes.push({ piece, opinions });
  }
  for (const { piece, opinions } of disputes) opinions[0]!.body = await readBack(fh, piece); // to undo a wrong assumption
  const candidates = [...new Set(disputes.flatMap((x) => x.opinions.map((o) => o.st)))];
  for (const suspect of candidates) {
    // Assume `suspect` lied: every disputed piece takes the bytes of someone else.
    const chosen = disputes.map(({ piece, opinions }) => ({ piece, pick: opinions.find((o) => o.st !== suspect && o.sha !== opinions.find((x) => x.st === suspect)?.sha) ?? opinions.find((o) => o.st !== suspect)! }));
    for (const { piece, pick } of chosen) if (pick.body) await fh.write(pick.body, 0, pick.body.length, piece.start);
    const digest = (await hashFile(partial.path)).digest('hex');
    if (digest === d.sha256) {
      const lies = disputes.map(({ piece, opinions }) => ({ piece, mine: opinions.find((o) => o.st === suspect), right: chosen.find((c) => c.piece === piece)!.pick })).filter((x) => x.mine && x.mine.sha !== x.right.sha);
      const first = lies[0]!;
      const b: Blame = {
        source: suspect.source.label, code: 'E_CHECKSUM', range: [first.piece.start, first.piece.end], served: first.mine!.sha, expected: first.right.sha,
        message: `${suspect.source.label} served bytes ${first.piece.start}-${first.piece.end} of ${d.name} with sha256 ${first.mine!.sha}; ${first.right.st.source.label} served ${first.right.sha}, and only that makes the file verify${lies.length > 1 ? ` (${lies.length} pieces in all)` : ''}`,
      };
      suspect.dropped = b;
      blame.push(b);
      for (const { piece, pick } of chosen) {
        piece.from = pick.st;
        piece.sha256 = pick.sha;
      }
      return digest;
    }
    // Put back the original bytes before trying the next assumption.
    for (const { piece, opinions } of disputes) await fh.write(opinions[0]!.body!, 0, opinions[0]!.body!.length, piece.start);
  }
  return (await hashFile(partial.path)).digest('hex');
}

async function readBack(fh: FileHandle, piece: Piece): Promise<Buffer> {
  const buf = Buffer.alloc(piece.end - piece.start + 1);
  await fh.read(buf, 0, buf.length, piece.start);
  return buf;
}

/** Take a random fraction of pieces again from another source and compare with the verified bytes. */
async function crossCheck(d: Distfile, pieces: Piece[], states: SourceState[], ctx: DownloadContext, opts: SegmentOptions, blame: Blame[]): Promise<void> {
  const chosen = pieces.filter(() => ctx.random() < opts.crossCheck);
  for (const piece of chosen) {
    const other = states.filter((s) => s !== piece.from && !s.dropped && !s.noRanges).sort((a, b) => (a.source.role === 'upstream' ? -1 : 1) - (b.source.role === 'upstream' ? -1 : 1))[0];
    if (!other) return;
    let got: Awaited<ReturnType<typeof readRange>>;
    try {
      got = await readRange(other.source, piece.start, piece.end, ctx, ctx.signal ?? new AbortController().signal, piece.end + 1);
    } catch {
      continue;
    }
    if (got === 'no-ranges') continue;
    const sha = createHash('sha256').update(got.body).digest('hex');
    if (sha !== piece.sha256) {
      // Our bytes verified against the pinned sha256, so the other source is the one that lied.
      const b: Blame = {
        source: other.source.label, code: 'E_CHECKSUM', range: [piece.start, piece.end], served: sha, expected: piece.sha256,
        message: `cross-check: ${other.source.label} served bytes ${piece.start}-${piece.end} of ${d.name} with sha256 ${sha}, the verified bytes have ${piece.sha256}`,
      };
      other.dropped = b;
      blame.push(b);
    }
  }
}

function noSourceLeft(d: Distfile, blame: Blame[], states: SourceState[]): SourcemeshError {
  const why = states.map((s) => s.dropped?.message ?? (s.noRanges ? `${s.source.label}: does not serve ranges` : `${s.source.label}: unused`)).join('; ');
  return new SourcemeshError('E_NO_SOURCE', `${d.name}: no source left for its pieces (${why})`, { blame });
}
