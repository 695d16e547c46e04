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

export type OutputSink = (bytes: Uint8Array) => void;

/**
 * Slide a table of 16-bit window positions down by WSIZE, two per 32-bit word: a position p >= WSIZE
 * (top bit set) becomes p - WSIZE, i.e. p & 0x7fff; any other becomes 0, "none". The mask is built
 * from each half's top bit without branches.
 */
function slidePositions(pairs: Uint32Array): void {
  for (let i = 0; i < pairs.length; i++) {
    const w = pairs[i]!;
    pairs[i] = w & Math.imul((w & 0x80008000) >>> 15, 0x7fff);
  }
}

export class DeflateEngine {
  private readonly params: DeflateParameters;
  private readonly gnu: boolean;
  private readonly sink: OutputSink;
  private readonly out = new BitWriter();
  private readonly block: BlockWriter;

  private readonly window = new Uint8Array(WINDOW_SIZE + WINDOW_PADDING);
  /** Most recent position of each hash value; 0 means none (position 0 is never matched). */
  private readonly head = new Uint16Array(HASH_SIZE);
  /** Previous position with the same hash, per window position modulo WSIZE. */
  private readonly prev = new Uint16Array(WSIZE);
  /** The same tables seen as pairs of positions, for sliding two at a time. */
  private readonly head32 = new Uint32Array(this.head.buffer);
  private readonly prev32 = new Uint32Array(this.prev.buffer);

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
    slidePositions(this.head32);
    slidePositions(this.prev32);
  }

  private run(): void {
    if (this.finished) return;
    if (!this.primed) {
      if (!this.fill()) return;
      // Seed the rolling hash with the first two bytes (zeros when the input is shorter).
      this.insH = ((this.window[0]! << HASH_SHIFT) ^ this.window[1]!) & HASH_MASK;
      this.primed = true;
    }
    const done = this.params.lazy ? this.runLazy() : this.runFast();
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

  // runLazy and runFast are the hot loops (most of a snapshot's compression time is spent in them) and
  // stay long on purpose: they follow GNU gzip's deflate() and deflate_fast() step for step, which is
  // what makes the output byte-identical, and they copy the matcher's state into locals on entry and
  // back on exit so that the loop body touches no object fields. Their shared prologue and epilogue
  // look alike but move different state; folding them into helpers would put field accesses back in.

  /**
   * Levels 4 to 9: at each position look for a match; emit the previous position's match only when
   * this one is not longer, else emit the previous byte as a literal and keep the new match pending.
   * Returns true when the input is exhausted, false when it must wait for input.
   */
  private runLazy(): boolean {
    const win = this.window;
    const head = this.head;
    const prev = this.prev;
    const block = this.block;
    const syms = block.syms;
    const litFreq = block.lit.freq;
    const distFreq = block.dist.freq;
    const gnu = this.gnu;
    const { maxLazy, goodMatch, niceMatch, maxChain, symbolsPerBlock, truncateBlocks } = this.params;

    let strstart = this.strstart;
    let lookahead = this.lookahead;
    let h = this.insH;
    let matchStart = this.matchStart;
    let matchLength = this.matchLength;
    let matchAvailable = this.matchAvailable;
    let count = block.count;
    let distCount = block.distCount;

    for (;;) {
      if (lookahead < MIN_LOOKAHEAD) {
        // GNU gzip stops reading (and sliding) once a read returned nothing; zlib keeps calling its
        // fill step, which slides the window, until the lookahead is used up.
        if (!gnu || !this.eof) {
          this.strstart = strstart;
          this.lookahead = lookahead;
          this.matchStart = matchStart;
          const ready = this.fill();
          strstart = this.strstart;
          lookahead = this.lookahead;
          matchStart = this.matchStart;
          if (!ready) {
            this.insH = h;
            this.matchLength = matchLength;
            this.matchAvailable = matchAvailable;
            block.count = count;
            block.distCount = distCount;
            return false;
          }
        }
        if (lookahead === 0) break;
      }

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
        const found = longestMatch(win, prev, strstart, hashHead, prevLength, maxChain, goodMatch, nice);
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
        let flush = count === symbolsPerBlock;
        if (truncateBlocks && (count & 0xfff) === 0 && !flush) flush = this.compressingWell(count, distCount, strstart);

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
        if (flush) {
          block.count = count;
          block.distCount = distCount;
          this.strstart = strstart;
          this.flushBlock(false);
          count = 0;
          distCount = 0;
        }
      } else if (matchAvailable) {
        // No match at the previous position, or this one is longer: the previous byte is a literal.
        const c = win[strstart - 1]!;
        syms[count] = c;
        count++;
        litFreq[c]!++;
        let flush = count === symbolsPerBlock;
        if (truncateBlocks && (count & 0xfff) === 0 && !flush) flush = this.compressingWell(count, distCount, strstart);
        if (flush) {
          block.count = count;
          block.distCount = distCount;
          this.strstart = strstart;
          this.flushBlock(false);
          count = 0;
          distCount = 0;
        }
        strstart++;
        lookahead--;
      } else {
        matchAvailable = true;
        strstart++;
        lookahead--;
      }
    }

    if (matchAvailable) {
      const c = win[strstart - 1]!;
      syms[count] = c;
      count++;
      litFreq[c]!++;
      matchAvailable = false;
    }
    this.strstart = strstart;
    this.lookahead = lookahead;
    this.insH = h;
    this.matchStart = matchStart;
    this.matchLength = matchLength;
    this.matchAvailable = matchAvailable;
    block.count = count;
    block.distCount = distCount;
    return true;
  }

  /**
   * Levels 1 to 3: take the longest match at each position at once. Strings inside a match are hashed
   * only when the match is at most maxLazy long. Returns as runLazy does.
   */
  private runFast(): boolean {
    const win = this.window;
    const head = this.head;
    const prev = this.prev;
    const block = this.block;
    const syms = block.syms;
    const litFreq = block.lit.freq;
    const distFreq = block.dist.freq;
    const gnu = this.gnu;
    const { maxLazy, goodMatch, niceMatch, maxChain, symbolsPerBlock, truncateBlocks } = this.params;

    let strstart = this.strstart;
    let lookahead = this.lookahead;
    let h = this.insH;
    let matchStart = this.matchStart;
    let matchLength = this.matchLength;
    let count = block.count;
    let distCount = block.distCount;

    for (;;) {
      if (lookahead < MIN_LOOKAHEAD) {
        if (!gnu || !this.eof) {
          this.strstart = strstart;
          this.lookahead = lookahead;
          this.matchStart = matchStart;
          const ready = this.fill();
          strstart = this.strstart;
          lookahead = this.lookahead;
          matchStart = this.matchStart;
          if (!ready) {
            this.insH = h;
            this.matchLength = matchLength;
            block.count = count;
            block.distCount = distCount;
            return false;
          }
        }
        if (lookahead === 0) break;
      }

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
        const found = longestMatch(win, prev, strstart, hashHead, MIN_MATCH - 1, maxChain, goodMatch, nice);
        let len = found & MATCH_LENGTH_MASK;
        if (found > MATCH_LENGTH_MASK) matchStart = (found >>> MATCH_START_SHIFT) - 1;
        if (len > lookahead) len = lookahead;
        matchLength = len;
      }

      let flush: boolean;
      if (matchLength >= MIN_MATCH) {
        const dist = strstart - matchStart;
        const lc = matchLength - MIN_MATCH;
        syms[count] = (dist << 8) | lc;
        count++;
        distCount++;
        litFreq[LENGTH_CODE[lc]! + LITERALS + 1]!++;
        const d = dist - 1;
        distFreq[d < 256 ? DIST_CODE[d]! : DIST_CODE[256 + (d >>> 7)]!]!++;
        flush = count === symbolsPerBlock;
        if (truncateBlocks && (count & 0xfff) === 0 && !flush) flush = this.compressingWell(count, distCount, strstart);

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
        flush = count === symbolsPerBlock;
        if (truncateBlocks && (count & 0xfff) === 0 && !flush) flush = this.compressingWell(count, distCount, strstart);
        lookahead--;
        strstart++;
      }
      if (flush) {
        block.count = count;
        block.distCount = distCount;
        this.strstart = strstart;
        this.flushBlock(false);
        count = 0;
        distCount = 0;
      }
    }

    this.strstart = strstart;
    this.lookahead = lookahead;
    this.insH = h;
    this.matchStart = matchStart;
    this.matchLength = matchLength;
    block.count = count;
    block.distCount = distCount;
    return true;
  }
}
