// Fixed numbers and code tables of the deflate format (RFC 1951), plus the window geometry shared by
// GNU gzip and zlib at their defaults (a 32 KiB window held in a 64 KiB buffer, 15-bit hash).

/** RFC 1951 3.2.5: matches are 3 to 258 bytes long. */
export const MIN_MATCH = 3;
export const MAX_MATCH = 258;

/** History size; distances reach back at most this far (RFC 1951 3.2.5: 32,768). */
export const WSIZE = 0x8000;
export const WMASK = WSIZE - 1;
/** The sliding buffer holds two windows: the history and the lookahead being matched. */
export const WINDOW_SIZE = 2 * WSIZE;
/**
 * Both compressors keep this much input ahead of the cursor while input lasts: a longest match plus the
 * bytes needed to hash the string that follows it.
 */
export const MIN_LOOKAHEAD = MAX_MATCH + MIN_MATCH + 1;
/** Matches further back than this are refused, so the lookahead never overruns the buffer. */
export const MAX_DIST = WSIZE - MIN_LOOKAHEAD;
/** The buffer is slid down by WSIZE once the cursor reaches this position. */
export const SLIDE_AT = WSIZE + MAX_DIST;
/**
 * Margin after the buffer. The matcher never reads past WINDOW_SIZE (it searches at positions up to
 * WINDOW_SIZE - MIN_LOOKAHEAD and compares at most MAX_MATCH + 1 bytes ahead), but a read past the end of
 * a typed array yields undefined rather than a byte, so keep a zeroed margin as a guard.
 */
export const WINDOW_PADDING = 512;

/** 15-bit rolling hash over 3 bytes, shifted 5 bits per byte, so it depends on the last 3 bytes only. */
export const HASH_BITS = 15;
export const HASH_SIZE = 1 << HASH_BITS;
export const HASH_MASK = HASH_SIZE - 1;
export const HASH_SHIFT = 5;

/** Both compressors drop a 3-byte match found further back than this at the lazy levels. */
export const TOO_FAR = 4096;

// RFC 1951 3.2.5 and 3.2.7: alphabet sizes.
export const LITERALS = 256;
export const END_BLOCK = 256;
export const LENGTH_CODES = 29;
export const L_CODES = LITERALS + 1 + LENGTH_CODES;
export const D_CODES = 30;
export const BL_CODES = 19;
export const HEAP_SIZE = 2 * L_CODES + 1;
export const MAX_BITS = 15;
export const MAX_BL_BITS = 7;

/** RFC 1951 3.2.7: code-length codes 16 (repeat previous 3-6), 17 (zeros 3-10), 18 (zeros 11-138). */
export const REP_3_6 = 16;
export const REPZ_3_10 = 17;
export const REPZ_11_138 = 18;

/** RFC 1951 3.2.7: the order in which code-length code lengths are transmitted. */
export const BL_ORDER = Uint8Array.of(16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15);

/** RFC 1951 3.2.5: extra bits of length codes 257..285. */
export const EXTRA_LBITS = Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0);
/** RFC 1951 3.2.5: extra bits of distance codes 0..29. */
export const EXTRA_DBITS = Uint8Array.of(0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13);
/** Extra bits of code-length codes 0..18. */
export const EXTRA_BLBITS = Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 7);

/** First match length minus MIN_MATCH of each length code (RFC 1951 3.2.5). */
export const BASE_LENGTH = new Uint8Array(LENGTH_CODES);
/** Length code (0..28, i.e. symbol minus 257) of each match length minus MIN_MATCH (0..255). */
export const LENGTH_CODE = new Uint8Array(256);
/** First distance minus one of each distance code. */
export const BASE_DIST = new Uint16Array(D_CODES);
/**
 * Distance code of distance-1: entries 0..255 for distances 1..256, entries 256..511 for
 * (distance-1) >> 7 when the distance is larger.
 */
export const DIST_CODE = new Uint8Array(512);

{
  let length = 0;
  for (let code = 0; code < LENGTH_CODES - 1; code++) {
    BASE_LENGTH[code] = length;
    for (let n = 0; n < 1 << EXTRA_LBITS[code]!; n++) LENGTH_CODE[length++] = code;
  }
  // Length 258 could also be written as code 284 with 31 in its extra bits; RFC 1951 gives it the
  // dedicated code 285, which both compressors use.
  BASE_LENGTH[LENGTH_CODES - 1] = MAX_MATCH - MIN_MATCH;
  LENGTH_CODE[MAX_MATCH - MIN_MATCH] = LENGTH_CODES - 1;

  let dist = 0;
  for (let code = 0; code < 16; code++) {
    BASE_DIST[code] = dist;
    for (let n = 0; n < 1 << EXTRA_DBITS[code]!; n++) DIST_CODE[dist++] = code;
  }
  dist >>= 7;
  for (let code = 16; code < D_CODES; code++) {
    BASE_DIST[code] = dist << 7;
    for (let n = 0; n < 1 << (EXTRA_DBITS[code]! - 7); n++) DIST_CODE[256 + dist++] = code;
  }
}

/** Distance code of a match distance minus one (0..32767). */
export function distCode(dist1: number): number {
  return dist1 < 256 ? DIST_CODE[dist1]! : DIST_CODE[256 + (dist1 >>> 7)]!;
}

/** Reverse the low `len` bits of `code`: Huffman codes are sent most significant bit first. */
export function reverseBits(code: number, len: number): number {
  let res = 0;
  for (let i = 0; i < len; i++) {
    res = (res << 1) | (code & 1);
    code >>>= 1;
  }
  return res;
}

/** Canonical Huffman codes from code lengths (RFC 1951 3.2.2), bit-reversed ready to send. */
export function canonicalCodes(lens: ArrayLike<number>, count: number, blCount: ArrayLike<number>, out: Uint16Array): void {
  const next = new Uint16Array(MAX_BITS + 1);
  let code = 0;
  for (let bits = 1; bits <= MAX_BITS; bits++) {
    code = (code + blCount[bits - 1]!) << 1;
    next[bits] = code;
  }
  for (let n = 0; n < count; n++) {
    const len = lens[n]!;
    if (len !== 0) out[n] = reverseBits(next[len]!++, len);
  }
}

/** RFC 1951 3.2.6: the fixed literal/length code (288 symbols) and fixed 5-bit distance code. */
export const STATIC_LTREE_LEN = new Uint8Array(L_CODES + 2);
export const STATIC_LTREE_CODE = new Uint16Array(L_CODES + 2);
export const STATIC_DTREE_LEN = new Uint8Array(D_CODES).fill(5);
export const STATIC_DTREE_CODE = new Uint16Array(D_CODES);

{
  const count = new Uint16Array(MAX_BITS + 1);
  for (let n = 0; n < L_CODES + 2; n++) {
    const len = n < 144 ? 8 : n < 256 ? 9 : n < 280 ? 7 : 8;
    STATIC_LTREE_LEN[n] = len;
    count[len]!++;
  }
  canonicalCodes(STATIC_LTREE_LEN, L_CODES + 2, count, STATIC_LTREE_CODE);
  for (let n = 0; n < D_CODES; n++) STATIC_DTREE_CODE[n] = reverseBits(n, 5);
}
