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
  /** In a swarm: since when this peer has said nothing of the pieces it has (see `assignSwarm`). */
  silentSince?: number;
  /** In a swarm: what it said of each piece (CLAIM, LACK, UNKNOWN by piece index), as of its `hasVersion`. */
  told?: { version: number; bits: Uint8Array };
}

/** How a swarm's sources are given pieces (`PieceScheduler.assignSwarm`). */
export interface SwarmOptions {
  /** Pieces in flight at once from one source. */
  perSource: number;
  /** How long a peer that has said nothing of its pieces is left alone before it is asked anyway. */
  unknownGraceMs: number;
  /**
   * ... and from a source that has every free piece (the seeder, a web seed). Fewer means fewer pieces
   * in flight that other leechers cannot see and may ask the same source for (one: every leecher asking
   * at random, 10% of the pieces came twice in a simulation, against 17% with three; piece-scheduler-swarm.test.ts).
   */
  perWholeSource: number;
  /** Uniform in [0, 1): breaks ties between pieces equally rare. */
  random: () => number;
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

/** What a source said of a piece (PieceScheduler.toldBy). */
const LACK = 0, CLAIM = 1, UNKNOWN = 2;
/** How long `assignSwarm` trusts an earlier "nothing to give" while nothing changed (the grace period and the end game go by the clock). */
const SWARM_MEMO_MS = 50;

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

  /** Bumped whenever an attempt begins or ends or a source is dropped (what `assignSwarm` decides by). */
  private epoch = 0;
  /** The last `assignSwarm` found nothing to give: when, and as of which epoch and peers' versions. */
  private nothingToGive?: { epoch: number; versions: number; at: number };
  private allClaimed?: Uint8Array;
  /** Pieces not done as of `undoneDone` pieces done (assignSwarmScan). */
  private undone?: Piece[];
  private undoneDone = -1;
  /**
   * assignSwarmScan's free pieces and their availability, kept from call to call and filled afresh: it
   * runs whenever a connection is free, and new arrays each time (with for-of iterators over every piece)
   * were some 60% of a leecher's JavaScript allocation, hence of its young-generation collections
   * (docs/BENCHMARKS.md, bench:swarm).
   */
  private freeScratch: Piece[] = [];
  private availScratch = new Uint16Array(0);
  private doneCount = 0;
  /** Set when the sources are a swarm's (some peer says which pieces it has): see `assignSwarm`. */
  private readonly swarm?: SwarmOptions;

  constructor(size: number, pieceLength: number, states: SourceState[], firstFree = 0, swarm?: SwarmOptions) {
    this.states = states;
    this.swarm = swarm;
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
    if (this.swarm) return this.assignSwarm(now, this.swarm);
    return this.assignInOrder(now, this.usable());
  }

  private assignInOrder(now: number, live: SourceState[]): Attempt | undefined {
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

  /**
   * `assign` in a swarm (BEP 3 leaves the piece order to the client; rarest first is what clients do, so
   * that leechers hold different pieces and have something to trade). Each source has at most
   * `perSource` pieces in flight (a pipeline of block requests each). First, peers that have some of the
   * free pieces but not all of them (other leechers) are given the rarest piece they have, by how many
   * such peers have it, ties broken at random. Then sources that have every free piece (the seeder, a
   * mirror or web seed, a leecher that is further along) are given a random free piece that no such peer
   * has: what they send is new to the swarm, and leechers drawing at random rarely ask them for the same
   * piece. One with nothing in flight may take a piece peers have when none of those peers has room for
   * it (a peer that is slow or holds it back does not hold the file). A peer that has said nothing yet
   * (connecting) is asked only after `unknownGraceMs` and one piece at a time (it may be dead: the read
   * then fails and drops it). Once every piece is done or in flight, the end game of `assign`.
   */
  private assignSwarm(now: number, opts: SwarmOptions): Attempt | undefined {
    const live = this.usable();
    // Nothing changed since the last call found nothing to give (no attempt began or ended, no peer said
    // anything new) and it was just now: the same answer, without the scan (idle connections ask often).
    let versions = 0;
    for (const st of live) {
      const loc = st.source.location;
      versions += loc.type === 'opener' && loc.has ? (loc.hasVersion?.() ?? NaN) : 0;
    }
    const memo = this.nothingToGive;
    // A peer's new `have` alone waits for the next change or SWARM_MEMO_MS: idle connections asked on every `have` otherwise.
    if (memo && memo.epoch === this.epoch && (memo.versions === versions || now - memo.at < SWARM_MEMO_MS) && now - memo.at < 2 * SWARM_MEMO_MS) return undefined;
    const a = this.assignSwarmScan(now, opts, live);
    this.nothingToGive = a ? undefined : { epoch: this.epoch, versions, at: now };
    return a;
  }

  private assignSwarmScan(now: number, opts: SwarmOptions, live: SourceState[]): Attempt | undefined {
    // Pieces not done, in the order of `freePieces`, pruned as they get done (a scan over every piece of
    // a large file for each assignment showed in profiles).
    if (!this.undone || this.undoneDone !== this.doneCount) {
      if (!this.undone) this.undone = this.pieces.map((_, k) => this.pieces[(this.firstFree + k) % this.pieces.length]!).filter((p) => !p.done);
      else {
        // Pruned in place, in order.
        let kept = 0;
        for (let k = 0; k < this.undone.length; k++) if (!this.undone[k]!.done) this.undone[kept++] = this.undone[k]!;
        this.undone.length = kept;
      }
      this.undoneDone = this.doneCount;
    }
    // The first `nFree` entries of the scratch array are this call's free pieces (indexed loops: no iterator objects).
    const free = this.freeScratch;
    let nFree = 0;
    for (let k = 0; k < this.undone.length; k++) {
      const p = this.undone[k]!;
      if (!p.done && p.inflight.size === 0) free[nFree++] = p;
    }
    if (nFree === 0) {
      // End game: a duplicate only from a source that does not say it lacks the piece.
      for (const cand of [...live].filter((st) => st.active < opts.perSource).sort((a, b) => a.active - b.active)) {
        const p = endGamePiece(this.pieces, cand, this.states, now, (piece) => claims(cand, piece));
        if (p) return this.start(p, cand, true, now);
      }
      return undefined;
    }
    // What each source says of each free piece: CLAIM has it, LACK lacks it, UNKNOWN has nothing to say.
    const told = new Map<SourceState, Uint8Array>();
    const partial: SourceState[] = [];
    const whole: SourceState[] = [];
    for (const st of live) {
      const c = this.toldBy(st);
      let lacks = 0, said = 0;
      for (let i = 0; i < nFree; i++) {
        const v = c[free[i]!.index]!;
        if (v === LACK) lacks++;
        if (v !== UNKNOWN) said++;
      }
      told.set(st, c);
      if (said === 0) {
        // Nothing heard from it yet: asked only after a grace period, and one piece at a time.
        st.silentSince ??= now;
        if (now - st.silentSince >= opts.unknownGraceMs && st.active === 0) whole.push(st);
        continue;
      }
      st.silentSince = undefined;
      (lacks > 0 && said > lacks ? partial : lacks === 0 ? whole : []).push(st);
    }
    // How many peers with some of the free pieces have each one: the rarer, the sooner it is asked for.
    if (this.availScratch.length < nFree) this.availScratch = new Uint16Array(this.pieces.length);
    const avail = this.availScratch.fill(0, 0, nFree);
    for (const st of partial) {
      const c = told.get(st)!;
      for (let i = 0; i < nFree; i++) if (c[free[i]!.index] === CLAIM && !free[i]!.askedOf.has(st)) avail[i]!++;
    }
    const byLoad = (a: SourceState, b: SourceState) => a.active - b.active || rateOf(b) - rateOf(a);
    const room = (st: SourceState) => st.active < opts.perSource;
    // Random among the candidates of the lowest rank (reservoir sampling: one pass, no array).
    const pick = (st: SourceState, eligible: (i: number) => boolean, rank: (i: number) => number): Piece | undefined => {
      let best = -1, bestRank = Infinity, seen = 0;
      for (let i = 0; i < nFree; i++) {
        if (free[i]!.askedOf.has(st) || !eligible(i)) continue;
        const r = rank(i);
        if (r < bestRank) {
          bestRank = r;
          best = i;
          seen = 1;
        } else if (r === bestRank && opts.random() * ++seen < 1) best = i;
      }
      return best < 0 ? undefined : free[best];
    };
    for (const st of partial.filter(room).sort(byLoad)) {
      const c = told.get(st)!;
      const p = pick(st, (i) => c[free[i]!.index] === CLAIM, (i) => avail[i]!);
      if (p) return this.start(p, st, false, now);
    }
    const wholeWithRoom = whole.filter((st) => st.active < opts.perWholeSource).sort(byLoad);
    for (const st of wholeWithRoom) {
      const c = told.get(st)!;
      const p = pick(st, (i) => c[free[i]!.index] !== LACK && avail[i] === 0, () => 0);
      if (p) return this.start(p, st, false, now);
    }
    // Every free piece is had by some peer, and those peers are busy: an idle source helps, one piece at a time.
    for (const st of wholeWithRoom) {
      if (st.active > 0) continue;
      const c = told.get(st)!;
      const p = pick(st, (i) => c[free[i]!.index] !== LACK && !partial.some((o) => room(o) && told.get(o)![free[i]!.index] === CLAIM && !free[i]!.askedOf.has(o)), (i) => avail[i]!);
      if (p) return this.start(p, st, false, now);
    }
    // Nothing in flight anywhere and nothing to give by the rules above (say two leechers that both lack
    // a piece and no one else): ask in order as outside a swarm, where a peer lacking the piece is waited
    // for a little and then counts as asked, so a download that cannot end says so (`stuck`).
    if (live.every((st) => st.active === 0)) return this.assignInOrder(now, live);
    return undefined;
  }

  /** What `st` says of every piece not done, kept until its `hasVersion` changes (asked afresh without one). */
  private toldBy(st: SourceState): Uint8Array {
    const loc = st.source.location;
    const has = loc.type === 'opener' ? loc.has : undefined;
    if (!has) return (this.allClaimed ??= new Uint8Array(this.pieces.length).fill(CLAIM));
    const version = loc.type === 'opener' ? (loc.hasVersion?.() ?? NaN) : NaN;
    if (st.told?.version === version && st.told.bits.length === this.pieces.length) return st.told.bits;
    const bits = st.told?.bits.length === this.pieces.length ? st.told.bits : new Uint8Array(this.pieces.length);
    for (let k = 0; k < this.pieces.length; k++) {
      const p = this.pieces[k]!;
      if (p.done) continue;
      const v = has(p.start, p.end);
      bits[p.index] = v === undefined ? UNKNOWN : v ? CLAIM : LACK;
    }
    st.told = { version, bits };
    return bits;
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
    this.epoch++;
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
    this.epoch++;
    if (piece.done) return false;
    piece.done = true;
    this.doneCount++;
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
    this.epoch++;
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
    this.epoch++;
    const p = this.pieces[index]!;
    if (!p.done) this.doneCount++;
    p.done = true;
    p.written = true;
    p.adopted = true;
  }

  /** Drop a source for the rest of the run. True when it was not dropped already (record the blame then). */
  drop(state: SourceState, blame: Blame): boolean {
    this.epoch++;
    if (state.dropped) return false;
    state.dropped = blame;
    return true;
  }

  private readEnded(a: Attempt): void {
    this.epoch++;
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
export function endGamePiece(pieces: readonly Piece[], st: SourceState, states: readonly SourceState[], now: number, may: (p: Piece) => boolean = () => true): Piece | undefined {
  let oldest: Piece | undefined;
  for (const p of pieces) {
    if (!p.done && p.checking === 0 && p.inflight.size === 1 && !p.askedOf.has(st) && (!oldest || p.startedAt! < oldest.startedAt!) && may(p)) oldest = p;
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
