// Segmented download: one file in pieces from several sources at once, with Range requests (the idea
// of BEP 19 web seeds and aria2's multi-source download). The `segments` connections are spread evenly
// over the sources and each pulls the next piece as soon as its last one has arrived, so a source
// serves pieces as fast as it can deliver them and faster sources get more; once nothing is left to
// assign, a source with a free connection asks again for a piece that has been in flight elsewhere for
// longer than it would take itself (end game), and the first answer wins. A source that fails or lies
// is dropped for the rest of the run. Pieces are buffered in memory until checked and written (at most
// twice `segments` pieces), so a slow or lying duplicate can never overwrite good bytes. Hashing (the
// piece map and the whole file's SHA-256) runs on a worker thread while the next pieces arrive.
import { createHash } from 'node:crypto';
import { open, rm, type FileHandle } from 'node:fs/promises';
import { SourcemeshError, fromSystemError, type ErrorCode } from '../errors.ts';
import type { Distfile } from '../manifest/distfile.ts';
import { hashFile } from '../store/digest.ts';
import type { Partial } from '../store/store.ts';
import type { DownloadContext } from './download.ts';
import { networkError } from './http.ts';
import { BLOCK, verifyPieceLayer } from './piece-map.ts';
import { PieceHasher } from './piece-hasher.ts';
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
  /** Pieces this source completed (its share of `bytes` and `ms`). */
  pieces: number;
  dropped?: Blame;
  noRanges?: boolean;
}

interface Piece {
  index: number;
  start: number;
  end: number; // inclusive
  done: boolean;
  /** Its bytes are in the file. */
  written: boolean;
  /** Its bytes arrived and are being checked: not a candidate for an end-game duplicate. */
  checking?: boolean;
  from?: SourceState;
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
export async function segmentedDownload(d: Distfile & { sha256: string }, sources: Source[], partial: Partial, ctx: DownloadContext, opts: SegmentOptions): Promise<SegmentedResult | { notSplit: true; blame: Blame[] }> {
  const states: SourceState[] = sources.filter((s) => s.location.type !== 'git').map((source) => ({ source, active: 0, bytes: 0, ms: 0, pieces: 0 }));
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
    pieces.push({ index: i, start, end: Math.min(size, start + pieceLength) - 1, done: false, written: false, attempts: new Set(), askedOf: new Set() });
  }
  let hasher: PieceHasher | undefined;
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
    notify();
  };
  const live = () => usable(states);
  // Piece buffers are reused: a fresh 1 MiB buffer per piece would make V8 collect garbage over and
  // over (external memory), for nothing.
  const pool: Buffer[] = [];
  const takeBuffer = () => pool.pop() ?? Buffer.allocUnsafeSlow(pieceLength);
  const giveBack = (b: Buffer | undefined) => {
    if (b && b.length === pieceLength && pool.length < 2 * opts.segments + 2) pool.push(b);
  };
  /** Does `body` fit the piece map (no map: nothing to check)? Returns the bytes to keep and, to give back, the memory they sit in. */
  const checkPiece = async (body: Buffer, piece: Piece, memory?: Buffer): Promise<{ ok: boolean; body: Buffer; memory?: Buffer }> => {
    if (!map) return { ok: true, body, memory };
    const r = await hasher!.pieceHash(body, map.pieceLength);
    return { ok: r.hash.equals(map.layer[piece.index]!), body: r.body, memory: memory && r.memory };
  };
  // The file's SHA-256 is taken in file order as its prefix is written, by the hashing thread.
  let prefixPiece = 0;
  // The store fsyncs the file before it takes it: flush as we go (every SYNC_BYTES, in the background)
  // so that little is left to write then, and the disk works while the network does.
  let unsynced = 0;
  let syncing: Promise<void> = Promise.resolve();
  const written = async (piece: Piece, body: Buffer) => {
    await fh.write(body, 0, body.length, piece.start);
    piece.written = true;
    while (prefixPiece < pieces.length && pieces[prefixPiece]!.written) prefixPiece++;
    hasher!.prefixWritten(prefixPiece < pieces.length ? pieces[prefixPiece]!.start : size);
    unsynced += body.length;
    if (unsynced >= SYNC_BYTES) {
      unsynced = 0;
      syncing = syncing.then(() => fh.datasync()).catch(() => {}); // early flushing only: the commit fsyncs and reports
    }
    if (crossChecks.chosen.has(piece)) crossChecks.start(piece);
  };
  const crossChecks = new CrossChecks(pieces, states, ctx, opts);

  try {
    await fh.truncate(size);
    hasher = new PieceHasher(partial.path);
    if (first.body && first.from && first.body.length === pieces[0]!.end + 1) {
      const checked = await checkPiece(first.body, pieces[0]!);
      if (checked.ok) {
        pieces[0]!.done = true;
        pieces[0]!.from = first.from;
        await written(pieces[0]!, checked.body);
        first.from.bytes += checked.body.length;
        first.from.ms += first.ms;
        first.from.pieces++;
        ctx.onBytes?.(checked.body.length);
      }
    }
    if (pieces.length === 1 && pieces[0]!.done && (await hasher.digest(size)) === d.sha256) {
      return { digest: d.sha256, bytes: size, used: contributions(pieces), blame };
    }
    let next = 0; // pieces before this one are all done
    // A piece's bytes are checked and written while its connection already asks for the next one; at
    // most `segments` pieces wait for that at once (memory: their buffers).
    const settling = new Set<Promise<void>>();
    let fatal: unknown;
    let stopped = false;
    const worker = async () => {
      for (;;) {
        ctx.signal?.throwIfAborted();
        if (fatal) throw fatal;
        if (stopped) return;
        while (next < pieces.length && pieces[next]!.done) next++;
        if (next === pieces.length) return;
        let piece: Piece | undefined;
        for (let i = next; i < pieces.length && !piece; i++) if (!pieces[i]!.done && pieces[i]!.attempts.size === 0) piece = pieces[i];
        let st = piece && pickSource(live(), piece);
        if (!piece) {
          // End game: nothing is left to assign; a source with a free connection takes a piece still
          // in flight elsewhere when it would likely finish it sooner.
          for (const cand of live().sort((a, b) => a.active - b.active)) {
            piece = endGamePiece(pieces, cand, states);
            if (piece) {
              st = cand;
              break;
            }
          }
        }
        if (!piece || !st) {
          if (live().length === 0 && settling.size === 0) throw noSourceLeft(d, blame, states);
          await Promise.race([changed, new Promise((r) => setTimeout(r, 50))]);
          continue;
        }
        await fetchPiece(piece, st);
        while (settling.size >= opts.segments) await Promise.race(settling);
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
      const release = () => {
        piece.attempts.delete(abort);
        ctx.signal?.removeEventListener('abort', onOuterAbort);
      };
      let body: Buffer;
      let memory: Buffer | undefined = takeBuffer();
      try {
        // Errors while reading are the source's; errors while checking or writing are ours.
        const got = await readRange(st.source, piece.start, piece.end, ctx, abort.signal, size, memory);
        if (got === 'no-ranges') st.noRanges = true;
        if (got === 'no-ranges' || piece.done) {
          giveBack(memory);
          return release(); // a lost end-game race keeps the winner's bytes
        }
        body = got.body;
        if (body.buffer !== memory.buffer) memory = undefined;
      } catch (err) {
        giveBack(memory);
        release();
        if (ctx.signal?.aborted) throw err;
        if (abort.signal.aborted) return; // cancelled because another source won
        const e = err instanceof SourcemeshError ? err : (networkError(err, st.source.label) as SourcemeshError);
        drop(st, { source: st.source.label, code: e.code, message: e.message, range: [piece.start, piece.end] });
        return;
      } finally {
        st.active--;
      }
      const ms = Date.now() - t0;
      piece.checking = true;
      const settle = (async () => {
        try {
          const checked = await checkPiece(body, piece, memory);
          memory = checked.memory;
          if (!checked.ok) {
            drop(st, {
              source: st.source.label, code: 'E_CHECKSUM', range: [piece.start, piece.end], expected: map!.layer[piece.index]!.toString('hex'),
              message: `${st.source.label} served bytes ${piece.start}-${piece.end} of ${d.name} (piece ${piece.index}) that do not match the piece map pinned by its merkle root`,
            });
            return;
          }
          if (piece.done) return; // another source's copy won while this one was being checked
          piece.done = true;
          piece.from = st;
          for (const other of piece.attempts) if (other !== abort) other.abort();
          await written(piece, checked.body);
          ctx.onBytes?.(checked.body.length);
          st.bytes += checked.body.length;
          st.ms += ms;
          st.pieces++;
        } catch (err) {
          fatal ??= fromSystemError(err, partial.path);
          memory = undefined; // a write may still hold it
        } finally {
          giveBack(memory);
          piece.checking = false;
          release();
          notify();
        }
      })();
      settling.add(settle);
      void settle.finally(() => settling.delete(settle));
    };

    const workers = Array.from({ length: Math.min(Math.max(opts.segments, 1), pieces.length) }, worker);
    try {
      await Promise.all(workers);
    } catch (err) {
      // One worker gave up (no source left, a local error, an abort): stop the others before the file
      // is closed, and wait for them.
      stopped = true;
      for (const p of pieces) for (const a of p.attempts) a.abort();
      await Promise.allSettled(workers);
      throw err;
    } finally {
      await Promise.all(settling);
    }
    if (fatal) throw fatal;

    let digest = (await hasher.digest(size)) ?? (await hashFile(partial.path)).digest('hex');
    if (digest !== d.sha256) digest = await findLiars(d, pieces, states, fh, partial, ctx, blame);
    if (digest === d.sha256) await crossChecks.judge(d, fh, blame);
    return { digest, bytes: size, used: contributions(pieces), blame };
  } finally {
    await crossChecks.stop();
    await syncing;
    await hasher?.close();
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
  const asking = new Set<SourceState>();
  try {
    let next = 1;
    asking.add(states[0]!);
    ask(states[0]!);
    while (inflight.size) {
      const hedge = new Promise<'hedge'>((r) => setTimeout(() => r('hedge'), HEDGE_MS).unref());
      const first = await Promise.race([...inflight, hedge]);
      if (first === 'hedge' || first.failed) {
        if (first !== 'hedge') asking.delete(first.st);
        const to = hedgeTarget(states, next, [...asking]);
        if (to !== undefined) {
          next = to + 1;
          asking.add(states[to]!);
          ask(states[to]!);
        }
        continue;
      }
      const { st, got } = first;
      if (got!.total === undefined) return undefined;
      if (d.size !== undefined && got!.total !== d.size) {
        st.dropped = { source: st.source.label, code: 'E_SIZE', message: `${st.source.label} announces ${got!.total} bytes, the manifest pins ${d.size}` };
        blame.push(st.dropped);
        asking.delete(st);
        const to = hedgeTarget(states, next, [...asking]);
        if (to !== undefined) {
          next = to + 1;
          asking.add(states[to]!);
          ask(states[to]!);
        }
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
 * The next source to ask for the first piece, if any: `states[next]`, unless it is a last resort (a
 * recorded liar) while a source without that mark is still being asked; a last resort is only asked
 * once every source before it has failed.
 */
export function hedgeTarget(states: readonly { source: Source }[], next: number, asking: readonly { source: Source }[]): number | undefined {
  if (next >= states.length) return undefined;
  if (states[next]!.source.lastResort && asking.some((s) => !s.source.lastResort)) return undefined;
  return next;
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

/**
 * Sources that may be given pieces: not dropped, serving ranges, and no last resort (a recorded liar)
 * while any other is left.
 */
function usable(states: SourceState[]): SourceState[] {
  const live = states.filter((s) => !s.dropped && !s.noRanges);
  const preferred = live.filter((s) => !s.source.lastResort);
  return preferred.length ? preferred : live;
}

/** Who served the bytes that ended up in the file, most first. */
function contributions(pieces: Piece[]): { source: Source; bytes: number }[] {
  const by = new Map<SourceState, number>();
  for (const p of pieces) if (p.from) by.set(p.from, (by.get(p.from) ?? 0) + p.end - p.start + 1);
  return [...by].sort((a, b) => b[1] - a[1]).map(([st, bytes]) => ({ source: st.source, bytes }));
}

/**
 * The source for the next piece: the one with the fewest pieces in flight, so that every source keeps
 * its share of connections busy and each pulls pieces as fast as it serves them (faster sources get
 * more pieces without any estimate of their rate). Ties go to the faster one; an untried source is
 * tried first.
 */
function pickSource(candidates: SourceState[], piece: Piece): SourceState | undefined {
  let best: SourceState | undefined;
  for (const s of candidates) {
    if (piece.askedOf.has(s)) continue;
    if (!best || s.active < best.active || (s.active === best.active && rateOf(s) > rateOf(best))) best = s;
  }
  return best;
}

/** Bytes per ms over the pieces a source completed; untried: tried first. */
const rateOf = (s: SourceState) => (s.ms > 0 ? s.bytes / s.ms : s.pieces > 0 ? Infinity : s.active === 0 ? Infinity : 0);

/**
 * End game: nothing is left to assign. `st` duplicates the piece in flight longest among those it was
 * not asked for, once that piece has been in flight for more than twice the time `st` takes for a piece
 * (500 ms while `st` has none to go by): a stalled or slow source then no longer holds the file.
 */
function endGamePiece(pieces: Piece[], st: SourceState, states: SourceState[]): Piece | undefined {
  let oldest: Piece | undefined;
  for (const p of pieces) if (!p.done && !p.checking && p.attempts.size === 1 && !p.askedOf.has(st) && (!oldest || p.startedAt! < oldest.startedAt!)) oldest = p;
  if (!oldest) return undefined;
  const own = st.pieces > 0 ? st.ms / st.pieces : undefined;
  const typical = own ?? Math.min(...states.filter((s) => s.pieces > 0).map((s) => s.ms / s.pieces), 250);
  return Date.now() - oldest.startedAt! > Math.max(2 * typical, 5) ? oldest : undefined;
}

/**
 * The whole file does not verify and there is no piece map: find who lied. Every piece is taken again
 * from the other sources (up to two); where opinions differ, each source that took part in a dispute
 * is in turn assumed to be the liar and its bytes replaced by another's. The assumption under which
 * the file verifies names the liar, with the disputed ranges and both hashes as evidence. Disputed
 * bytes wait in a scratch file beside the partial, not in memory: a liar may dispute every piece.
 */
async function findLiars(d: Distfile, pieces: Piece[], states: SourceState[], fh: FileHandle, partial: Partial, ctx: DownloadContext, blame: Blame[]): Promise<string> {
  type Opinion = { st: SourceState; sha: string; at?: number };
  const disputes: { piece: Piece; opinions: Opinion[] }[] = [];
  const scratchPath = `${partial.path}.disputed`;
  const scratch = await open(scratchPath, 'w+').catch((err) => { throw fromSystemError(err, scratchPath); });
  let scratchSize = 0;
  const keep = async (body: Buffer) => {
    const at = scratchSize;
    await scratch.write(body, 0, body.length, at);
    scratchSize += body.length;
    return at;
  };
  const kept = async (piece: Piece, o: Opinion) => {
    const buf = Buffer.allocUnsafe(piece.end - piece.start + 1);
    await scratch.read(buf, 0, buf.length, o.at!);
    return buf;
  };
  try {
    for (const piece of pieces) {
      const mine = await readBack(fh, piece);
      const opinions: Opinion[] = [{ st: piece.from!, sha: sha256Hex(mine) }];
      const others = states.filter((s) => s !== piece.from && !s.dropped && !s.noRanges).slice(0, 2);
      const bodies: Buffer[] = [mine];
      for (const other of others) {
        try {
          const got = await readRange(other.source, piece.start, piece.end, ctx, ctx.signal ?? new AbortController().signal, piece.end + 1);
          if (got !== 'no-ranges') {
            opinions.push({ st: other, sha: sha256Hex(got.body) });
            bodies.push(got.body);
          }
        } catch {
          // a source that cannot answer gives no opinion
        }
      }
      if (new Set(opinions.map((o) => o.sha)).size > 1) {
        for (const [i, o] of opinions.entries()) o.at = await keep(bodies[i]!); // the first: to undo a wrong assumption
        disputes.push({ piece, opinions });
      }
    }
    const candidates = [...new Set(disputes.flatMap((x) => x.opinions.map((o) => o.st)))];
    for (const suspect of candidates) {
      // Assume `suspect` lied: every disputed piece takes the bytes of someone else.
      const chosen = disputes.map(({ piece, opinions }) => ({ piece, pick: opinions.find((o) => o.st !== suspect && o.sha !== opinions.find((x) => x.st === suspect)?.sha) ?? opinions.find((o) => o.st !== suspect)! }));
      for (const { piece, pick } of chosen) {
        const body = await kept(piece, pick);
        await fh.write(body, 0, body.length, piece.start);
      }
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
        for (const { piece, pick } of chosen) piece.from = pick.st;
        return digest;
      }
      // Put back the original bytes before trying the next assumption.
      for (const { piece, opinions } of disputes) {
        const body = await kept(piece, opinions[0]!);
        await fh.write(body, 0, body.length, piece.start);
      }
    }
    return (await hashFile(partial.path)).digest('hex');
  } finally {
    await scratch.close();
    await rm(scratchPath, { force: true });
  }
}

const sha256Hex = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function readBack(fh: FileHandle, piece: Piece): Promise<Buffer> {
  const buf = Buffer.alloc(piece.end - piece.start + 1);
  await fh.read(buf, 0, buf.length, piece.start);
  return buf;
}

const SYNC_BYTES = 32 << 20;

/**
 * Cross-checks: a random fraction of the pieces is taken again from a second, independent source
 * (upstream first, else the fastest other mirror) while the download goes on, at most
 * CROSS_CHECKS_AT_ONCE at a time; once the file has verified, each second opinion is compared with the
 * verified bytes, and a source that disagrees lied.
 */
const CROSS_CHECKS_AT_ONCE = 2;

class CrossChecks {
  readonly chosen: Set<Piece>;
  private readonly states: SourceState[];
  private readonly ctx: DownloadContext;
  private readonly queue: Piece[] = [];
  private readonly running = new Set<Promise<void>>();
  private readonly abort = new AbortController();
  private readonly opinions: { piece: Piece; other: SourceState; sha: string }[] = [];

  constructor(pieces: Piece[], states: SourceState[], ctx: DownloadContext, opts: SegmentOptions) {
    this.chosen = new Set(opts.crossCheck > 0 ? pieces.filter(() => ctx.random() < opts.crossCheck) : []);
    this.states = states;
    this.ctx = ctx;
  }

  /** `piece` is written: ask a second source for it (now, or when one of the running checks ends). */
  start(piece: Piece): void {
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
    const others = usable(this.states).filter((s) => s !== piece.from);
    const other = others.find((s) => s.source.role === 'upstream') ?? others.sort((a, b) => rateOf(b) - rateOf(a))[0];
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

function noSourceLeft(d: Distfile, blame: Blame[], states: SourceState[]): SourcemeshError {
  const why = states.map((s) => s.dropped?.message ?? (s.noRanges ? `${s.source.label}: does not serve ranges` : `${s.source.label}: unused`)).join('; ');
  return new SourcemeshError('E_NO_SOURCE', `${d.name}: no source left for its pieces (${why})`, { blame });
}
