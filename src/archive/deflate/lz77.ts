// The deflate engine: sliding window, hash chains, the fast (levels 1-3) and lazy (4-9) parsers, and
// the points where a block ends. Input arrives in chunks of any size, but the engine behaves as if each
// read of the window were satisfied in full, as when GNU gzip reads a regular file or zlib is handed its
// whole input: it waits for more input rather than act on a short read, so the output never depends on
// how the input was chunked. Memory is fixed: a 64 KiB window, 64 KiB of queued input, one block of
// symbols, and the compressed output of one block.

import { SourcemeshError } from '../../errors.ts';
import { BitWriter } from './bit-writer.ts';
import { BlockWriter } from './block-writer.ts';
import type { DeflateParameters } from './levels.ts';
import { MATCH_LENGTH_MASK, MATCH_START_SHIFT, longestMatch } from './match-finder.ts';
import {
  DIST_CODE, HASH_MASK, HASH_SHIFT, HASH_SIZE, LENGTH_CODE, LITERALS, MAX_DIST, MIN_LOOKAHEAD, MIN_MATCH,
  SLIDE_AT, TOO_FAR, WINDOW_PADDING, WINDOW_SIZE, WMASK, WSIZE, D_CODES, EXTRA_DBITS,
} from './tables.ts';

/** Hand compressed output to the sink once this much is pending. */
const OUTPUT_CHUNK = 64 * 1024;
/** Past this position no match is searched (GNU gzip, after input ended and sliding stopped). */
const LAST_MATCH_POS = WINDOW_SIZE - MIN_LOOKAHEAD;
const EMPTY = new Uint8Array(0);

// Why the hot steps stopped: the lookahead ran low (or the one tail step is done); a block is full; a
// symbol is due for GNU gzip's compressing-well check; with either of the last two, the cursor still has
// to move past a literal once the block has been dealt with.
// The combinations are written out: an operator in a branch not yet taken when V8 optimizes the loop
// has no type feedback, and taking it later would throw the optimized code away.
const STOP_FILL = 0;
const STOP_FLUSH = 1;
const STOP_CHECK = 2;
const STOP_LITERAL = 4;
const STOP_FLUSH_LITERAL = 5;
const STOP_CHECK_LITERAL = 6;

export type OutputSink = (bytes: Uint8Array) => void;

/**
 * Slide a table of 16-bit window positions down by WSIZE, two per 32-bit word: a position p >= WSIZE
 * (top bit set) becomes p - WSIZE, i.e. p & 0x7fff; any other becomes 0, "none". The mask is built
 * from each half's top bit without branches, and the words are signed so that every value stays a
 * small integer: this runs 2 x 16,384 times per 32 KiB of input, often before V8's top tier has
 * compiled it, and the tier below calls out for a typed array's length or Math.imul (measured: 11% of
 * a level-6 run with them, docs/BENCHMARKS.md, issue 14's deflate section).
 */
function slidePositions(pairs: Int32Array, words: number): void {
  for (let i = 0; i < words; i++) {
    const w = pairs[i]!;
    pairs[i] = w & (((w >>> 15) & 0x10001) * 0x7fff);
  }
}

export class DeflateEngine {
  private readonly params: DeflateParameters;
  private readonly gnu: boolean;
  private readonly sink: OutputSink;
  private readonly out = new BitWriter();
  private readonly block: BlockWriter;

  private readonly window = new Uint8Array(WINDOW_SIZE + WINDOW_PADDING);
  /** The window's bytes two and four at a time, for the match finder. */
  private readonly view = new DataView(this.window.buffer);
  /** Most recent position of each hash value; 0 means none (position 0 is never matched). */
  private readonly head = new Uint16Array(HASH_SIZE);
  /** Previous position with the same hash, per window position modulo WSIZE. */
  private readonly prev = new Uint16Array(WSIZE);
  /** The same tables seen as pairs of positions, for sliding two at a time. */
  private readonly head32 = new Int32Array(this.head.buffer);
  private readonly prev32 = new Int32Array(this.prev.buffer);

  private strstart = 0;
  private lookahead = 0;
  /** Window position where the current block's input starts; negative once slid out of the window. */
  private blockStart = 0;
  /** Rolling hash: holds the first two bytes of the next string to insert (older bytes shift out). */
  private insH = 0;
  private matchStart = 0;
  private matchLength = MIN_MATCH - 1;
  /** Lazy parser: a byte at strstart - 1 is waiting for its literal-or-match decision. */
  private matchAvailable = false;
  /** Where the symbol due for the compressing-well check was tallied (set when a step stops for it). */
  private checkAt = 0;
  /**
   * False until the hot steps have returned once. Their first call makes one step only (stopping
   * anywhere changes nothing: all state is saved), so that V8 has seen the way out of the loop, and
   * its stores, before it optimizes the loop while it runs.
   */
  private warm = false;
  /** GNU flavour: a read returned nothing; no more reads or slides. */
  private eof = false;
  private primed = false;
  private finished = false;

  // Input not yet in the window: `stash` holds what was left over from earlier chunks, `chunk` is the
  // chunk being consumed.
  private readonly stash = new Uint8Array(WINDOW_SIZE);
  private stashStart = 0;
  private stashLen = 0;
  private chunk: Uint8Array = EMPTY;
  private chunkPos = 0;
  private ended = false;

  constructor(params: DeflateParameters, sink: OutputSink) {
    this.params = params;
    this.gnu = params.gnuEndOfInput;
    this.sink = sink;
    this.block = new BlockWriter(params.symbolsPerBlock + 1, this.out);
  }

  /** Compress `chunk`; output goes to the sink as blocks complete. The chunk is not retained. */
  write(chunk: Uint8Array): void {
    if (this.ended) throw new SourcemeshError('E_INTERNAL', 'deflate: write after end');
    if (chunk.length === 0) return;
    this.chunk = chunk;
    this.chunkPos = 0;
    this.run();
    // The engine stopped for want of a full read; keep the rest for later. It is less than one read
    // (at most WINDOW_SIZE bytes), so it always fits in the stash.
    const rest = chunk.length - this.chunkPos;
    if (rest > 0) {
      if (this.stashStart + this.stashLen + rest > this.stash.length) {
        this.stash.copyWithin(0, this.stashStart, this.stashStart + this.stashLen);
        this.stashStart = 0;
      }
      this.stash.set(chunk.subarray(this.chunkPos), this.stashStart + this.stashLen);
      this.stashLen += rest;
    }
    this.chunk = EMPTY;
    this.chunkPos = 0;
  }

  /** Finish the stream: the last block is written and all output handed to the sink. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.run();
    if (!this.finished) throw new SourcemeshError('E_INTERNAL', 'deflate: input ended but the engine did not finish');
    if (this.out.pos > 0) this.sink(this.out.take());
  }

  /**
   * Copy up to `want` bytes of input to `dst` at `at`, as one read of a regular file: fewer bytes only
   * when the input has ended. Returns -1 when more input must arrive first.
   */
  private read(dst: Uint8Array, at: number, want: number): number {
    const inChunk = this.chunk.length - this.chunkPos;
    const avail = this.stashLen + inChunk;
    if (avail < want && !this.ended) return -1;
    const n = Math.min(want, avail);
    const fromStash = Math.min(n, this.stashLen);
    if (fromStash > 0) {
      dst.set(this.stash.subarray(this.stashStart, this.stashStart + fromStash), at);
      this.stashStart += fromStash;
      this.stashLen -= fromStash;
      if (this.stashLen === 0) this.stashStart = 0;
    }
    const fromChunk = n - fromStash;
    if (fromChunk > 0) {
      dst.set(this.chunk.subarray(this.chunkPos, this.chunkPos + fromChunk), at + fromStash);
      this.chunkPos += fromChunk;
    }
    return n;
  }

  /**
   * Top up the lookahead (called while it is below MIN_LOOKAHEAD). Returns false when it must wait for
   * input. Both compressors slide the window by WSIZE here once the cursor is deep in its upper half.
   */
  private fill(): boolean {
    const win = this.window;
    for (;;) {
      let more = WINDOW_SIZE - this.lookahead - this.strstart;
      if (this.strstart >= SLIDE_AT) {
        this.slide();
        more += WSIZE;
      }
      const end = this.strstart + this.lookahead;
      const n = this.read(win, end, more);
      if (n < 0) return false;
      if (n === 0) {
        if (this.gnu) {
          // GNU gzip: the read that returns nothing marks the end; it zeroes the two bytes after the
          // data (hashing the last strings reads them) and leaves older bytes beyond them in place.
          this.eof = true;
          win[end] = 0;
          win[end + 1] = 0;
        }
        return true;
      }
      this.lookahead += n;
      if (this.lookahead >= MIN_LOOKAHEAD) return true;
    }
  }

  /**
   * Move the upper half of the window down. The whole half is copied, stale bytes past the data
   * included, as GNU gzip does; its matcher can compare against them near the end of input. (zlib
   * copies only the data, but never lets bytes past the data affect a result, so this is right for it
   * too.) Hash positions that fall out of the window become 0, "none".
   */
  private slide(): void {
    this.window.copyWithin(0, WSIZE, WINDOW_SIZE);
    this.matchStart -= WSIZE;
    this.strstart -= WSIZE;
    this.blockStart -= WSIZE;
    slidePositions(this.head32, HASH_SIZE / 2);
    slidePositions(this.prev32, WSIZE / 2);
  }

  private run(): void {
    if (this.finished) return;
    if (!this.primed) {
      if (!this.fill()) return;
      // Seed the rolling hash with the first two bytes (zeros when the input is shorter).
      this.insH = ((this.window[0]! << HASH_SHIFT) ^ this.window[1]!) & HASH_MASK;
      this.primed = true;
    }
    const done = this.runSteps();
    if (!done) return;
    this.flushBlock(true);
    this.finished = true;
  }

  /** End the current block at strstart. */
  private flushBlock(last: boolean): void {
    const start = this.blockStart;
    this.block.flush(this.window, start >= 0 ? start : -1, this.strstart - start, last);
    this.blockStart = this.strstart;
    if (this.out.pos >= OUTPUT_CHUNK) this.sink(this.out.take());
  }

  /**
   * GNU gzip, above level 2, every 4096 symbols: end the block now if fewer than half the symbols are
   * matches and a rough size bound (8 bits per symbol plus 5 bits and the extra bits per distance) is
   * under half the input the block covers.
   */
  private compressingWell(count: number, distCount: number, strstart: number): boolean {
    const distFreq = this.block.dist.freq;
    let outLength = count * 8;
    for (let code = 0; code < D_CODES; code++) outLength += distFreq[code]! * (5 + EXTRA_DBITS[code]!);
    outLength = Math.floor(outLength / 8);
    const inLength = strstart - this.blockStart;
    return distCount < Math.floor(count / 2) && outLength < Math.floor(inLength / 2);
  }

  /**
   * The outer loop of both parsers: top up the lookahead, run the hot steps, and do what they stopped
   * for (a block to end, the compressing-well check). Returns true when the input is exhausted, false
   * when it must wait for input.
   */
  private runSteps(): boolean {
    const lazy = this.params.lazy;
    for (;;) {
      let tail = false;
      if (this.lookahead < MIN_LOOKAHEAD) {
        // GNU gzip stops reading (and sliding) once a read returned nothing; zlib keeps calling its
        // fill step, which slides the window, until the lookahead is used up.
        if ((!this.gnu || !this.eof) && !this.fill()) return false;
        if (this.lookahead === 0) break;
        tail = this.lookahead < MIN_LOOKAHEAD;
      }
      const cold = tail || !this.warm;
      const stop = lazy ? this.lazySteps(cold) : this.fastSteps(cold);
      this.warm = true;
      if (stop !== STOP_FILL) this.blockEnd(stop);
    }
    // The lazy parser's last match candidate, never taken: a literal (the fast parser has none).
    if (this.matchAvailable) {
      const block = this.block;
      const c = this.window[this.strstart - 1]!;
      block.syms[block.count++] = c;
      block.lit.freq[c]!++;
      this.matchAvailable = false;
    }
    return true;
  }

  /** A step stopped after tallying a symbol: end the block if it is full or compressing well. */
  private blockEnd(stop: number): void {
    const block = this.block;
    const flush = (stop & STOP_FLUSH) !== 0 || this.compressingWell(block.count, block.distCount, this.checkAt);
    if (flush) this.flushBlock(false);
    if ((stop & STOP_LITERAL) !== 0) {
      this.strstart++;
      this.lookahead--;
    }
  }

  // lazySteps and fastSteps are the hot loops (most of a snapshot's compression time is spent in them)
  // and stay long on purpose: they follow GNU gzip's deflate() and deflate_fast() step for step, which is
  // what makes the output byte-identical, and they copy the matcher's state into locals on entry and
  // back on exit so that the loop body touches no object fields. They hold none of the rare work (reads,
  // slides, ending a block): they stop and return to runSteps for it, so that V8 optimizes a
  // loop whose every path runs often and does not throw the optimized code away the first time a rare
  // path is taken (docs/BENCHMARKS.md, bench:archive, issue 14's deflate section).

  /**
   * Levels 4 to 9: at each position look for a match; emit the previous position's match only when
   * this one is not longer, else emit the previous byte as a literal and keep the new match pending.
   * Runs while the lookahead is full (one step only when `tail`, the end of the input) and stops early
   * after a symbol that ends the block or is due for the compressing-well check; returns why it stopped.
   */
  private lazySteps(tail: boolean): number {
    const win = this.window;
    const view = this.view;
    const head = this.head;
    const prev = this.prev;
    const block = this.block;
    const syms = block.syms;
    const litFreq = block.lit.freq;
    const distFreq = block.dist.freq;
    const gnu = this.gnu;
    const { maxLazy, goodMatch, niceMatch, maxChain, symbolsPerBlock, truncateBlocks } = this.params;
    const shortChain = maxChain >> 2;

    let strstart = this.strstart;
    let lookahead = this.lookahead;
    let h = this.insH;
    let matchStart = this.matchStart;
    let matchLength = this.matchLength;
    let matchAvailable = this.matchAvailable;
    let count = block.count;
    let distCount = block.distCount;
    let checkAt = this.checkAt;
    let stop = STOP_FILL;

    do {
      // Insert the string at strstart into its hash chain. zlib only hashes strings of 3 real bytes;
      // GNU gzip hashes every position, reading the zeroed bytes after the data.
      let hashHead = 0;
      if (gnu || lookahead >= MIN_MATCH) {
        h = ((h << HASH_SHIFT) ^ win[strstart + 2]!) & HASH_MASK;
        hashHead = head[h]!;
        prev[strstart & WMASK] = hashHead;
        head[h] = strstart;
      }

      const prevLength = matchLength;
      const prevMatch = matchStart;
      matchLength = MIN_MATCH - 1;

      if (hashHead !== 0 && prevLength < maxLazy && strstart - hashHead <= MAX_DIST && strstart <= LAST_MATCH_POS) {
        // zlib stops the search at a match as long as the lookahead; GNU gzip only at nice_match.
        const nice = !gnu && niceMatch > lookahead ? lookahead : niceMatch;
        // Already holding a good match: search a quarter as far.
        const chain = prevLength >= goodMatch ? shortChain : maxChain;
        const found = longestMatch(view, prev, strstart, hashHead, prevLength, chain, nice);
        let len = found & MATCH_LENGTH_MASK;
        if (found > MATCH_LENGTH_MASK) matchStart = (found >>> MATCH_START_SHIFT) - 1;
        if (len > lookahead) len = lookahead;
        // A 3-byte match from far away costs more than three literals.
        if (len === MIN_MATCH && strstart - matchStart > TOO_FAR) len = MIN_MATCH - 1;
        matchLength = len;
      }

      if (prevLength >= MIN_MATCH && matchLength <= prevLength) {
        // The previous position's match stands: emit it and hash the strings it covers.
        const maxInsert = strstart + lookahead - MIN_MATCH;
        const dist = strstart - 1 - prevMatch;
        const lc = prevLength - MIN_MATCH;
        syms[count] = (dist << 8) | lc;
        count++;
        distCount++;
        litFreq[LENGTH_CODE[lc]! + LITERALS + 1]!++;
        const d = dist - 1;
        distFreq[d < 256 ? DIST_CODE[d]! : DIST_CODE[256 + (d >>> 7)]!]!++;
        // GNU gzip's compressing-well check runs at the position of the symbol, the block ends after it.
        if (count === symbolsPerBlock) {
          stop = STOP_FLUSH;
        } else if (truncateBlocks && (count & 0xfff) === 0) {
          stop = STOP_CHECK;
          checkAt = strstart;
        }

        lookahead -= prevLength - 1;
        let n = prevLength - 2;
        if (gnu) {
          do {
            strstart++;
            h = ((h << HASH_SHIFT) ^ win[strstart + 2]!) & HASH_MASK;
            prev[strstart & WMASK] = head[h]!;
            head[h] = strstart;
          } while (--n !== 0);
        } else {
          // zlib does not hash strings that run past the data.
          do {
            if (++strstart <= maxInsert) {
              h = ((h << HASH_SHIFT) ^ win[strstart + 2]!) & HASH_MASK;
              prev[strstart & WMASK] = head[h]!;
              head[h] = strstart;
            }
          } while (--n !== 0);
        }
        matchAvailable = false;
        matchLength = MIN_MATCH - 1;
        strstart++;
      } else if (matchAvailable) {
        // No match at the previous position, or this one is longer: the previous byte is a literal.
        const c = win[strstart - 1]!;
        syms[count] = c;
        count++;
        litFreq[c]!++;
        // A block that ends here ends before the cursor moves on (blockEnd moves it).
        if (count === symbolsPerBlock) {
          stop = STOP_FLUSH_LITERAL;
        } else if (truncateBlocks && (count & 0xfff) === 0) {
          stop = STOP_CHECK_LITERAL;
          checkAt = strstart;
        } else {
          strstart++;
          lookahead--;
        }
      } else {
        matchAvailable = true;
        strstart++;
        lookahead--;
      }
    } while (stop === STOP_FILL && !tail && lookahead >= MIN_LOOKAHEAD);

    this.strstart = strstart;
    this.lookahead = lookahead;
    this.insH = h;
    this.matchStart = matchStart;
    this.matchLength = matchLength;
    this.matchAvailable = matchAvailable;
    this.checkAt = checkAt;
    block.count = count;
    block.distCount = distCount;
    return stop;
  }

  /**
   * Levels 1 to 3: take the longest match at each position at once. Strings inside a match are hashed
   * only when the match is at most maxLazy long. Runs and stops as lazySteps does.
   */
  private fastSteps(tail: boolean): number {
    const win = this.window;
    const view = this.view;
    const head = this.head;
    const prev = this.prev;
    const block = this.block;
    const syms = block.syms;
    const litFreq = block.lit.freq;
    const distFreq = block.dist.freq;
    const gnu = this.gnu;
    const { maxLazy, niceMatch, maxChain, symbolsPerBlock, truncateBlocks } = this.params;
    // The previous length is always below MIN_MATCH here, hence below every level's goodMatch.

    let strstart = this.strstart;
    let lookahead = this.lookahead;
    let h = this.insH;
    let matchStart = this.matchStart;
    let matchLength = this.matchLength;
    let count = block.count;
    let distCount = block.distCount;
    let checkAt = this.checkAt;
    let stop = STOP_FILL;

    do {
      let hashHead = 0;
      if (gnu || lookahead >= MIN_MATCH) {
        h = ((h << HASH_SHIFT) ^ win[strstart + 2]!) & HASH_MASK;
        hashHead = head[h]!;
        prev[strstart & WMASK] = hashHead;
        head[h] = strstart;
      }

      // matchLength keeps its last value (below MIN_MATCH) when no search is made.
      if (hashHead !== 0 && strstart - hashHead <= MAX_DIST && strstart <= LAST_MATCH_POS) {
        const nice = !gnu && niceMatch > lookahead ? lookahead : niceMatch;
        const found = longestMatch(view, prev, strstart, hashHead, MIN_MATCH - 1, maxChain, nice);
        let len = found & MATCH_LENGTH_MASK;
        if (found > MATCH_LENGTH_MASK) matchStart = (found >>> MATCH_START_SHIFT) - 1;
        if (len > lookahead) len = lookahead;
        matchLength = len;
      }

      // The compressing-well check runs at the position of the symbol; the block ends after it.
      let tallied: number;
      if (matchLength >= MIN_MATCH) {
        const dist = strstart - matchStart;
        const lc = matchLength - MIN_MATCH;
        syms[count] = (dist << 8) | lc;
        count++;
        distCount++;
        litFreq[LENGTH_CODE[lc]! + LITERALS + 1]!++;
        const d = dist - 1;
        distFreq[d < 256 ? DIST_CODE[d]! : DIST_CODE[256 + (d >>> 7)]!]!++;
        tallied = strstart;

        lookahead -= matchLength;
        // zlib also skips hashing when the match leaves fewer than 3 bytes of data.
        if (matchLength <= maxLazy && (gnu || lookahead >= MIN_MATCH)) {
          let n = matchLength - 1;
          do {
            strstart++;
            h = ((h << HASH_SHIFT) ^ win[strstart + 2]!) & HASH_MASK;
            prev[strstart & WMASK] = head[h]!;
            head[h] = strstart;
          } while (--n !== 0);
          strstart++;
        } else {
          strstart += matchLength;
          h = ((win[strstart]! << HASH_SHIFT) ^ win[strstart + 1]!) & HASH_MASK;
        }
        matchLength = 0;
      } else {
        const c = win[strstart]!;
        syms[count] = c;
        count++;
        litFreq[c]!++;
        tallied = strstart;
        lookahead--;
        strstart++;
      }
      if (count === symbolsPerBlock) {
        stop = STOP_FLUSH;
      } else if (truncateBlocks && (count & 0xfff) === 0) {
        stop = STOP_CHECK;
        checkAt = tallied;
      }
    } while (stop === STOP_FILL && !tail && lookahead >= MIN_LOOKAHEAD);

    this.strstart = strstart;
    this.lookahead = lookahead;
    this.insH = h;
    this.matchStart = matchStart;
    this.matchLength = matchLength;
    this.checkAt = checkAt;
    block.count = count;
    block.distCount = distCount;
    return stop;
  }
}
