// One deflate block at a time: the symbols the matcher tallied, then the choice of block type and its
// emission (RFC 1951 3.2.3 to 3.2.7). GNU gzip and zlib choose and emit blocks the same way; they differ
// only in when the matcher ends a block, which lives in lz77.ts.

import { SourcemeshError } from '../../errors.ts';
import type { BitWriter } from './bit-writer.ts';
import { HuffmanBuilder, HuffmanTree } from './huffman.ts';
import {
  BASE_DIST, BASE_LENGTH, BL_CODES, BL_ORDER, DIST_CODE, D_CODES, END_BLOCK, EXTRA_BLBITS, EXTRA_DBITS,
  EXTRA_LBITS, LENGTH_CODE, LITERALS, L_CODES, MAX_BITS, MAX_BL_BITS, REPZ_11_138, REPZ_3_10, REP_3_6,
  STATIC_DTREE_CODE, STATIC_DTREE_LEN, STATIC_LTREE_CODE, STATIC_LTREE_LEN,
} from './tables.ts';

// RFC 1951 3.2.3: BTYPE values.
const STORED_BLOCK = 0;
const STATIC_TREES = 1;
const DYN_TREES = 2;

/** Largest LEN of a stored block (RFC 1951 3.2.4: a 16-bit field). */
const MAX_STORED = 0xffff;

export class BlockWriter {
  /**
   * Per symbol, packed in one integer so the matcher stores one value: the literal byte, or the match
   * distance shifted left by 8 plus the match length minus 3.
   */
  readonly syms: Int32Array;
  /** Symbols tallied in the current block, and how many of them are matches. */
  count = 0;
  distCount = 0;
  readonly lit = new HuffmanTree(L_CODES, MAX_BITS, EXTRA_LBITS, LITERALS + 1, STATIC_LTREE_LEN);
  readonly dist = new HuffmanTree(D_CODES, MAX_BITS, EXTRA_DBITS, 0, STATIC_DTREE_LEN);
  private readonly bl = new HuffmanTree(BL_CODES, MAX_BL_BITS, EXTRA_BLBITS, 0, null);
  private readonly builder = new HuffmanBuilder();
  private readonly out: BitWriter;
  /** The dynamic codes, packed for `compress`. */
  private readonly litCodes = new Int32Array(L_CODES);
  private readonly distCodes = new Int32Array(D_CODES);

  constructor(capacity: number, out: BitWriter) {
    this.syms = new Int32Array(capacity);
    this.out = out;
    this.reset();
  }

  private reset(): void {
    this.lit.freq.fill(0, 0, L_CODES);
    this.dist.freq.fill(0, 0, D_CODES);
    this.bl.freq.fill(0, 0, BL_CODES);
    this.lit.freq[END_BLOCK] = 1; // every block ends with one end-of-block code
    this.count = 0;
    this.distCount = 0;
    this.builder.resetEstimates();
  }

  /**
   * End the block: `stored` is the offset in `window` of the block's input, or -1 when the window has
   * slid past its start (then a stored block is impossible), and `storedLen` its length in bytes.
   */
  flush(window: Uint8Array, stored: number, storedLen: number, last: boolean): void {
    const builder = this.builder;
    builder.build(this.lit);
    builder.build(this.dist);
    const maxBlIndex = this.buildBitLengthTree();

    // Sizes in bytes, counting the 3 header bits and rounding up, as both compressors do.
    let optLenb = Math.floor((builder.optLen + 3 + 7) / 8);
    const staticLenb = Math.floor((builder.staticLen + 3 + 7) / 8);
    if (staticLenb <= optLenb) optLenb = staticLenb;

    const out = this.out;
    const lastBit = last ? 1 : 0;
    // The 4 bytes are LEN and NLEN; a stored block wins only when strictly no larger.
    if (storedLen + 4 <= optLenb && stored >= 0) {
      if (storedLen > MAX_STORED) {
        throw new SourcemeshError('E_INTERNAL', `deflate: stored block of ${storedLen} bytes exceeds 65535`);
      }
      out.sendBits((STORED_BLOCK << 1) + lastBit, 3);
      out.alignToByte();
      out.writeUint16LE(storedLen);
      out.writeUint16LE(~storedLen & 0xffff);
      out.writeBytes(window, stored, storedLen);
    } else if (staticLenb === optLenb) {
      out.sendBits((STATIC_TREES << 1) + lastBit, 3);
      this.compress(STATIC_LCODES, STATIC_DCODES);
    } else {
      out.sendBits((DYN_TREES << 1) + lastBit, 3);
      this.sendAllTrees(maxBlIndex + 1);
      packCodes(this.lit, this.litCodes);
      packCodes(this.dist, this.distCodes);
      this.compress(this.litCodes, this.distCodes);
    }
    this.reset();
    if (last) out.alignToByte();
  }

  /** Build the code-length code; returns the index in BL_ORDER of the last length to transmit. */
  private buildBitLengthTree(): number {
    this.scanTree(this.lit);
    this.scanTree(this.dist);
    this.builder.build(this.bl);
    // RFC 1951 3.2.7: HCLEN counts at least 4 code-length code lengths.
    let maxBlIndex = BL_CODES - 1;
    for (; maxBlIndex >= 3; maxBlIndex--) {
      if (this.bl.len[BL_ORDER[maxBlIndex]!] !== 0) break;
    }
    // The code-length code lengths (3 bits each) and HLIT, HDIST, HCLEN.
    this.builder.optLen += 3 * (maxBlIndex + 1) + 5 + 5 + 4;
    return maxBlIndex;
  }

  /**
   * Count the code-length symbols that describe `tree`'s lengths: runs of a repeated length become
   * code 16 (after one plain copy when it changes), runs of zeros codes 17 and 18, with the same run
   * limits as both compressors (lengths and distances are run-coded separately, never across).
   */
  private scanTree(tree: HuffmanTree): void {
    const len = tree.len;
    const maxCode = tree.maxCode;
    const blFreq = this.bl.freq;
    let prevLen = -1;
    let nextLen = len[0]!;
    let count = 0;
    let maxCount = nextLen === 0 ? 138 : 7;
    let minCount = nextLen === 0 ? 3 : 4;
    for (let n = 0; n <= maxCode; n++) {
      const curLen = nextLen;
      nextLen = n < maxCode ? len[n + 1]! : -1; // -1: the run ends with the alphabet
      if (++count < maxCount && curLen === nextLen) continue;
      if (count < minCount) {
        blFreq[curLen]! += count;
      } else if (curLen !== 0) {
        if (curLen !== prevLen) blFreq[curLen]!++;
        blFreq[REP_3_6]!++;
      } else if (count <= 10) {
        blFreq[REPZ_3_10]!++;
      } else {
        blFreq[REPZ_11_138]!++;
      }
      count = 0;
      prevLen = curLen;
      if (nextLen === 0) {
        maxCount = 138;
        minCount = 3;
      } else if (curLen === nextLen) {
        maxCount = 6;
        minCount = 3;
      } else {
        maxCount = 7;
        minCount = 4;
      }
    }
  }

  /** Emit `tree`'s lengths with the code-length code, in the runs `scanTree` counted. */
  private sendTree(tree: HuffmanTree): void {
    const len = tree.len;
    const maxCode = tree.maxCode;
    const blCode = this.bl.code;
    const blLen = this.bl.len;
    const out = this.out;
    let prevLen = -1;
    let nextLen = len[0]!;
    let count = 0;
    let maxCount = nextLen === 0 ? 138 : 7;
    let minCount = nextLen === 0 ? 3 : 4;
    for (let n = 0; n <= maxCode; n++) {
      const curLen = nextLen;
      nextLen = n < maxCode ? len[n + 1]! : -1;
      if (++count < maxCount && curLen === nextLen) continue;
      if (count < minCount) {
        do out.sendBits(blCode[curLen]!, blLen[curLen]!);
        while (--count !== 0);
      } else if (curLen !== 0) {
        if (curLen !== prevLen) {
          out.sendBits(blCode[curLen]!, blLen[curLen]!);
          count--;
        }
        out.sendBits(blCode[REP_3_6]!, blLen[REP_3_6]!);
        out.sendBits(count - 3, 2);
      } else if (count <= 10) {
        out.sendBits(blCode[REPZ_3_10]!, blLen[REPZ_3_10]!);
        out.sendBits(count - 3, 3);
      } else {
        out.sendBits(blCode[REPZ_11_138]!, blLen[REPZ_11_138]!);
        out.sendBits(count - 11, 7);
      }
      count = 0;
      prevLen = curLen;
      if (nextLen === 0) {
        maxCount = 138;
        minCount = 3;
      } else if (curLen === nextLen) {
        maxCount = 6;
        minCount = 3;
      } else {
        maxCount = 7;
        minCount = 4;
      }
    }
  }

  /** RFC 1951 3.2.7: HLIT, HDIST, HCLEN, the code-length code, then both trees' lengths. */
  private sendAllTrees(blCodes: number): void {
    const out = this.out;
    const lcodes = this.lit.maxCode + 1;
    const dcodes = this.dist.maxCode + 1;
    out.sendBits(lcodes - 257, 5);
    out.sendBits(dcodes - 1, 5);
    out.sendBits(blCodes - 4, 4);
    for (let rank = 0; rank < blCodes; rank++) out.sendBits(this.bl.len[BL_ORDER[rank]!]!, 3);
    this.sendTree(this.lit);
    this.sendTree(this.dist);
  }

  /**
   * Emit the block's symbols and its end code. Runs per symbol: codes come packed (code | length << 16)
   * and the bit state lives in locals, flushed 16 bits at a time.
   */
  private compress(lcodes: Int32Array, dcodes: Int32Array): void {
    const out = this.out;
    const count = this.count;
    // At most 15 + 5 + 15 + 13 bits per symbol, plus the end code.
    out.reserve(count * 6 + 8);
    const buf = out.buf;
    let pos = out.pos;
    let bitBuf = out.bitBuf;
    let bitCount = out.bitCount;
    const syms = this.syms;

    for (let i = 0; i < count; i++) {
      const sym = syms[i]!;
      if (sym < 256) {
        const c = lcodes[sym]!;
        bitBuf |= (c & 0xffff) << bitCount;
        bitCount += c >>> 16;
        if (bitCount >= 16) {
          buf[pos++] = bitBuf;
          buf[pos++] = bitBuf >>> 8;
          bitBuf >>>= 16;
          bitCount -= 16;
        }
        continue;
      }
      const lc = sym & 0xff;
      const code = LENGTH_CODE[lc]!;
      const c = lcodes[code + LITERALS + 1]!;
      bitBuf |= (c & 0xffff) << bitCount;
      bitCount += c >>> 16;
      if (bitCount >= 16) {
        buf[pos++] = bitBuf;
        buf[pos++] = bitBuf >>> 8;
        bitBuf >>>= 16;
        bitCount -= 16;
      }
      const lextra = EXTRA_LBITS[code]!;
      if (lextra !== 0) {
        bitBuf |= (lc - BASE_LENGTH[code]!) << bitCount;
        bitCount += lextra;
        if (bitCount >= 16) {
          buf[pos++] = bitBuf;
          buf[pos++] = bitBuf >>> 8;
          bitBuf >>>= 16;
          bitCount -= 16;
        }
      }
      const d = (sym >>> 8) - 1;
      const dc = d < 256 ? DIST_CODE[d]! : DIST_CODE[256 + (d >>> 7)]!;
      const e = dcodes[dc]!;
      bitBuf |= (e & 0xffff) << bitCount;
      bitCount += e >>> 16;
      if (bitCount >= 16) {
        buf[pos++] = bitBuf;
        buf[pos++] = bitBuf >>> 8;
        bitBuf >>>= 16;
        bitCount -= 16;
      }
      const dextra = EXTRA_DBITS[dc]!;
      if (dextra !== 0) {
        bitBuf |= (d - BASE_DIST[dc]!) << bitCount;
        bitCount += dextra;
        if (bitCount >= 16) {
          buf[pos++] = bitBuf;
          buf[pos++] = bitBuf >>> 8;
          bitBuf >>>= 16;
          bitCount -= 16;
        }
      }
    }
    out.pos = pos;
    out.bitBuf = bitBuf;
    out.bitCount = bitCount;
    const end = lcodes[END_BLOCK]!;
    out.sendBits(end & 0xffff, end >>> 16);
  }
}

/** Pack each symbol's code and length into one integer: code | length << 16. */
function packCodes(tree: HuffmanTree, into: Int32Array): void {
  for (let n = 0; n < into.length; n++) into[n] = n <= tree.maxCode ? tree.code[n]! | (tree.len[n]! << 16) : 0;
}

const STATIC_LCODES = Int32Array.from(STATIC_LTREE_LEN, (len, n) => STATIC_LTREE_CODE[n]! | (len << 16));
const STATIC_DCODES = Int32Array.from(STATIC_DTREE_LEN, (len, n) => STATIC_DTREE_CODE[n]! | (len << 16));
