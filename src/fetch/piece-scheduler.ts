// The decisions of a segmented download (segmented.ts), with no I/O: which piece goes to which source,
// when a silent first source is hedged, when a piece in flight is asked for again elsewhere (end game),
// when a source is dropped, and which source gives a cross-check its second opinion. The clock and the
// randomness come in as arguments, so tests and simulations drive the very code a download runs
// (docs/ARCHITECTURE.md: pure decision modules, like plan.ts and backoff.ts).
//
// segmented.ts calls `assign` whenever a connection is free and reports what became of each attempt
// (`noRanges`, `failed`, `arrived`, `rejected`, `accepted`, `written`, `release`); the scheduler keeps
// the counts it decides by.
import type { ErrorCode } from '../errors.ts';
import type { Source } from './plan.ts';

export interface Blame {
  source: string;
  code: ErrorCode;
  message: string;
  /** Evidence: which bytes, and what each side served. */
  range?: [number, number];
  served?: string;
  expected?: string;
}

export interface SourceState {
  source: Source;
  /** Its attempts whose bytes are still being read. */
  active: number;
  bytes: number;
  ms: number;
  /** Pieces this source completed (its share of `bytes` and `ms`). */
  pieces: number;
  dropped?: Blame;
  noRanges?: boolean;
}

export interface Piece {
  index: number;
  start: number;
  end: number; // inclusive
  done: boolean;
  /** Its bytes are in the file. */
  written: boolean;
  /** Its bytes came from the partial of an earlier run (adopted, not served by any source of this one). */
  adopted?: boolean;
  /** Attempts whose bytes arrived and are being checked: no end-game duplicate meanwhile. */
  checking: number;
  from?: SourceState;
  /** Sources with an attempt at this piece not yet released. */
  inflight: Set<SourceState>;
  /** Sources asked for this piece so far (an end-game duplicate goes to another). */
  askedOf: Set<SourceState>;
  startedAt?: number;
}

/** One request of one piece from one source. */
export interface Attempt {
  piece: Piece;
  state: SourceState;
  /** A duplicate of a piece in flight elsewhere (end game). */
  endGame: boolean;
  /** Its bytes arrived and are being checked or written. */
  checking: boolean;
  released: boolean;
}

/** A piece in flight this long is duplicated when the source has no time per piece of its own to go by. */
const END_GAME_DEFAULT_MS = 250;
/** ... and never sooner than this. */
const END_GAME_MIN_MS = 5;

export class PieceScheduler {
  readonly pieces: Piece[];
  readonly states: SourceState[];
  /** Pieces before this one are all done. */
  private doneBefore = 0;
  /** Pieces before this one are all written: the file's prefix that may be hashed. */
  private writtenBefore = 0;

  /** Where the search for a free piece starts (and wraps around): a swarm's leechers start apart, so they have pieces to trade. */
  private readonly firstFree: number;

  constructor(size: number, pieceLength: number, states: SourceState[], firstFree = 0) {
    this.states = states;
    this.pieces = [];
    for (let start = 0, i = 0; start < size; start += pieceLength, i++) {
      this.pieces.push({ index: i, start, end: Math.min(size, start + pieceLength) - 1, done: false, written: false, checking: 0, inflight: new Set(), askedOf: new Set() });
    }
    this.firstFree = this.pieces.length ? Math.min(Math.max(0, Math.floor(firstFree)), this.pieces.length - 1) : 0;
  }

  static states(sources: readonly Source[]): SourceState[] {
    return sources.filter((s) => s.location.type !== 'git').map((source) => ({ source, active: 0, bytes: 0, ms: 0, pieces: 0 }));
  }

  /** Every piece is done (its bytes accepted; written or being written). */
  complete(): boolean {
    while (this.doneBefore < this.pieces.length && this.pieces[this.doneBefore]!.done) this.doneBefore++;
    return this.doneBefore === this.pieces.length;
  }

  /** Sources that may be given pieces now (see `usable`). */
  usable(): SourceState[] {
    return usable(this.states);
  }

  /**
   * No source is left to give pieces to and no attempt can still end well: the download has failed.
   * `settling`: bytes are still being checked or written by the caller.
   */
  stuck(settling: boolean): boolean {
    if (this.complete() || settling || this.pieces.some((p) => p.inflight.size > 0)) return false;
    // Also when every piece left was asked of every usable source (peers that never got it, `notYet`).
    const live = this.usable();
    return live.length === 0 || this.pieces.every((p) => p.done || live.every((s) => p.askedOf.has(s)));
  }

  /**
   * The next attempt for a free connection, at time `now`: the first piece nobody is working on (from
   * `firstFree` on, wrapping around), from the source with the fewest attempts in flight (see
   * `pickSource`). A source that says which pieces it has (a peer's bitfield) and lacks that one gets the
   * next free piece it has instead, and the piece goes to a source that has it; only when none says so is
   * it asked anyway (a peer a little behind may get it soon). Once every piece is done or in flight, an
   * end-game duplicate (see `endGamePiece`). Undefined: nothing worth asking for now (wait for an attempt
   * to end).
   */
  assign(now: number): Attempt | undefined {
    if (this.complete()) return undefined;
    const live = this.usable();
    let free = false;
    for (const piece of this.freePieces()) {
      free = true;
      const st = pickSource(live, piece);
      if (!st) continue; // asked of every usable source already (a peer that did not have it yet)
      if (claims(st, piece)) return this.start(piece, st, false, now);
      for (const p of this.freePieces()) if (!p.askedOf.has(st) && claims(st, p)) return this.start(p, st, false, now);
      const other = pickSource(live.filter((s) => s !== st && claims(s, piece)), piece);
      return this.start(piece, other ?? st, false, now);
    }
    if (free) return undefined;
    // End game: nothing is left to assign; a source with a free connection takes a piece still in
    // flight elsewhere when it would likely finish it sooner.
    for (const cand of [...live].sort((a, b) => a.active - b.active)) {
      const p = endGamePiece(this.pieces, cand, this.states, now);
      if (p) return this.start(p, cand, true, now);
    }
    return undefined;
  }

  /** Pieces nobody is working on and not done, from `firstFree` on, wrapping around. */
  private *freePieces(): Generator<Piece> {
    const n = this.pieces.length;
    // Pieces before doneBefore are done: with the search starting at 0, they are skipped at once.
    const from = this.firstFree === 0 ? this.doneBefore : this.firstFree;
    for (let k = 0; k < n; k++) {
      const p = this.pieces[(from + k) % n]!;
      if (!p.done && p.inflight.size === 0) yield p;
    }
  }

  private start(piece: Piece, state: SourceState, endGame: boolean, now: number): Attempt {
    piece.inflight.add(state);
    piece.askedOf.add(state);
    piece.startedAt ??= now;
    state.active++;
    return { piece, state, endGame, checking: false, released: false };
  }

  /** The source answered with the whole file instead of the range: never asked for pieces again. */
  noRanges(a: Attempt): void {
    a.state.noRanges = true;
    this.readEnded(a);
    this.release(a);
  }

  /**
   * The read failed. With `blame` (the source's fault) the source is dropped for the run; without (the
   * attempt was cancelled because another copy won) nothing is held against it.
   */
  failed(a: Attempt, blame?: Blame): boolean {
    this.readEnded(a);
    this.release(a);
    return blame ? this.drop(a.state, blame) : false;
  }

  /**
   * The bytes arrived. False: the piece was done meanwhile by another source (a lost end-game race:
   * the winner's bytes are kept; the attempt is over). True: check them, then `accepted` or `rejected`.
   */
  arrived(a: Attempt): boolean {
    this.readEnded(a);
    if (a.piece.done) {
      this.release(a);
      return false;
    }
    a.piece.checking++;
    a.checking = true;
    return true;
  }

  /** The bytes do not fit the piece map: the source lied and is dropped (true: just now). Call `release` after. */
  rejected(a: Attempt, blame: Blame): boolean {
    return this.drop(a.state, blame);
  }

  /**
   * The bytes checked out. Returns the other sources still working on this piece (their attempts are
   * to be cancelled), or undefined when another copy was accepted first (keep that one; nothing to
   * write). Call `written` once the bytes are in the file, and `release` in any case.
   */
  accepted(a: Attempt, bytes: number, ms: number): SourceState[] | undefined {
    if (!this.took(a.piece, a.state, bytes, ms)) return undefined;
    return [...a.piece.inflight].filter((s) => s !== a.state);
  }

  /**
   * `state` served `piece` (`bytes` in `ms`) outside any attempt: the first piece, asked for before the
   * size was known. False when the piece is done already.
   */
  took(piece: Piece, state: SourceState, bytes: number, ms: number): boolean {
    if (piece.done) return false;
    piece.done = true;
    piece.from = state;
    state.bytes += bytes;
    state.ms += ms;
    state.pieces++;
    return true;
  }

  /** The piece's bytes are in the file. Returns the end of the written prefix (see `prefix`). */
  written(piece: Piece): number {
    piece.written = true;
    return this.prefix();
  }

  /** Bytes [0, prefix) of the file are written and final: they may be hashed. */
  prefix(): number {
    while (this.writtenBefore < this.pieces.length && this.pieces[this.writtenBefore]!.written) this.writtenBefore++;
    return this.writtenBefore < this.pieces.length ? this.pieces[this.writtenBefore]!.start : this.pieces.at(-1)!.end + 1;
  }

  /** The attempt is over (checked, written or refused). */
  release(a: Attempt): void {
    if (a.released) return;
    a.released = true;
    if (a.checking) a.piece.checking--;
    a.checking = false;
    a.piece.inflight.delete(a.state);
  }

  /**
   * Piece `index` was found in the partial of an earlier run and is kept: done and written, served by
   * no source of this run.
   */
  adopt(index: number): void {
    const p = this.pieces[index]!;
    p.done = true;
    p.written = true;
    p.adopted = true;
  }

  /** Drop a source for the rest of the run. True when it was not dropped already (record the blame then). */
  drop(state: SourceState, blame: Blame): boolean {
    if (state.dropped) return false;
    state.dropped = blame;
    return true;
  }

  private readEnded(a: Attempt): void {
    a.state.active--;
  }
}

/**
 * Sources that may be given pieces: not dropped, serving ranges, and no last resort (a mirror with a
 * recorded lie, see plan.ts) while any other is left.
 */
export function usable(states: readonly SourceState[]): SourceState[] {
  const live = states.filter((s) => !s.dropped && !s.noRanges);
  const preferred = live.filter((s) => !s.source.lastResort);
  return preferred.length ? preferred : live;
}

/**
 * The source for the next piece: the one with the fewest pieces in flight, so that every source keeps
 * its share of connections busy and each pulls pieces as fast as it serves them (faster sources get
 * more pieces without any estimate of their rate). Ties go to the faster one; an untried source is
 * tried first. Sources already asked for this piece are skipped.
 */
export function pickSource(candidates: readonly SourceState[], piece: Piece): SourceState | undefined {
  let best: SourceState | undefined;
  for (const s of candidates) {
    if (piece.askedOf.has(s)) continue;
    if (!best || s.active < best.active || (s.active === best.active && rateOf(s) > rateOf(best))) best = s;
  }
  return best;
}

/** May `s` be asked for `piece`: false only for a source that says it lacks it (a peer's bitfield). */
function claims(s: SourceState, piece: Piece): boolean {
  const loc = s.source.location;
  return loc.type !== 'opener' || !loc.has || loc.has(piece.start, piece.end) !== false;
}

/** Bytes per ms over the pieces a source completed; untried: tried first. */
export const rateOf = (s: SourceState): number => (s.ms > 0 ? s.bytes / s.ms : s.pieces > 0 ? Infinity : s.active === 0 ? Infinity : 0);

/**
 * End game: nothing is left to assign. `st` duplicates the piece in flight longest among those it was
 * not asked for, once that piece has been in flight for more than twice the time `st` takes for a piece
 * (END_GAME_DEFAULT_MS while nobody has one to go by): a stalled or slow source then no longer holds
 * the file. A piece being checked, or already asked of two sources, is left alone.
 */
export function endGamePiece(pieces: readonly Piece[], st: SourceState, states: readonly SourceState[], now: number): Piece | undefined {
  let oldest: Piece | undefined;
  for (const p of pieces) {
    if (!p.done && p.checking === 0 && p.inflight.size === 1 && !p.askedOf.has(st) && (!oldest || p.startedAt! < oldest.startedAt!)) oldest = p;
  }
  if (!oldest) return undefined;
  const own = st.pieces > 0 ? st.ms / st.pieces : undefined;
  const typical = own ?? Math.min(...states.filter((s) => s.pieces > 0).map((s) => s.ms / s.pieces), END_GAME_DEFAULT_MS);
  return now - oldest.startedAt! > Math.max(2 * typical, END_GAME_MIN_MS) ? oldest : undefined;
}

/**
 * Hedging the first piece: the index of the next source to ask (`states[next]`), or undefined. A
 * silent source is hedged to the next one, but a last resort (a recorded liar) is asked only once no
 * source without that mark is still being asked, i.e. after every one before it has failed.
 */
export function hedgeTarget(states: readonly { source: Source }[], next: number, asking: readonly { source: Source }[]): number | undefined {
  if (next >= states.length) return undefined;
  if (states[next]!.source.lastResort && asking.some((s) => !s.source.lastResort)) return undefined;
  return next;
}

/** The pieces to cross-check: each one with probability `fraction`, by `random` (uniform in [0, 1)). */
export function chooseCrossChecks(pieces: readonly Piece[], fraction: number, random: () => number): Set<Piece> {
  return new Set(fraction > 0 ? pieces.filter((p) => !p.adopted && random() < fraction) : []);
}

/**
 * The source for a cross-check of `piece`: upstream first, else the fastest other usable source; never
 * the one that served it, never a last resort while another is left. Undefined: nobody to ask.
 */
export function crossCheckSource(states: readonly SourceState[], piece: Piece): SourceState | undefined {
  const others = usable(states).filter((s) => s !== piece.from);
  return others.find((s) => s.source.role === 'upstream') ?? others.sort((a, b) => rateOf(b) - rateOf(a))[0];
}
