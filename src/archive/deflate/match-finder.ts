// Longest-match search along a hash chain, with the same candidate order, early rejections and stop
// rules as GNU gzip and zlib: which of several equally long matches is chosen decides the distance that
// is written, so any difference here changes the output bytes.
//
// The window is read through a DataView as well as byte by byte: two bytes at once for the rejections
// and four at once for the comparison (little-endian, so the first differing byte is the lowest set
// byte of the XOR). Both read the same bytes, in the same order of candidates, as the byte-wise search
// they replace, and the length is the same common prefix capped at MAX_MATCH.

import { MAX_DIST, MAX_MATCH, WMASK } from './tables.ts';

/** Result packing: the low 9 bits hold the length, the rest the match start + 1 (0: none found). */
export const MATCH_LENGTH_MASK = 0x1ff;
export const MATCH_START_SHIFT = 9;

/**
 * Search the chain starting at `curMatch` for a match at `strstart` longer than `prevLength`, following
 * at most `chain` links. Returns the best length (prevLength when nothing longer was found) and, packed
 * above it, the start of the match that set it. `nice` ends the search early; the caller clamps the
 * length to the lookahead (bytes past the input take part in the comparisons: that is what GNU gzip
 * does). `view` is a DataView of the window; it reads at most MAX_MATCH bytes past `strstart`, inside
 * the window's margin (tables.ts, WINDOW_PADDING).
 */
export function longestMatch(
  view: DataView,
  prev: Uint16Array,
  strstart: number,
  curMatch: number,
  prevLength: number,
  chain: number,
  nice: number,
): number {
  // Written so that every operation runs on every call (see lz77.ts on type feedback).
  let limit = strstart - MAX_DIST;
  if (limit < 0) limit = 0;
  const end = strstart + MAX_MATCH;
  let bestLen = prevLength;
  let bestStart = -1;
  // The byte that would make a candidate longer than the best so far, and the one before it.
  let scanEnd = view.getUint16(strstart + bestLen - 1, true);
  const scanStart = view.getUint16(strstart, true);

  do {
    // Cheap rejections first: the two bytes ending at the best length, then the first two bytes. The
    // third byte is never compared: equal hashes with equal first two bytes imply it.
    if (view.getUint16(curMatch + bestLen - 1, true) === scanEnd && view.getUint16(curMatch, true) === scanStart) {
      const delta = curMatch - strstart;
      let s = strstart + 3;
      for (;;) {
        const x = view.getInt32(s, true) ^ view.getInt32(s + delta, true);
        if (x !== 0) {
          s += (31 - Math.clz32(x & -x)) >>> 3;
          break;
        }
        s += 4;
        if (s >= end) break;
      }
      const len = s < end ? s - strstart : MAX_MATCH;
      if (len > bestLen) {
        bestStart = curMatch;
        bestLen = len;
        if (len >= nice) break;
        scanEnd = view.getUint16(strstart + bestLen - 1, true);
      }
    }
    curMatch = prev[curMatch & WMASK]!;
  } while (curMatch > limit && --chain !== 0);

  return bestStart < 0 ? bestLen : ((bestStart + 1) << MATCH_START_SHIFT) | bestLen;
}
