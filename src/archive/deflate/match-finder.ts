// Longest-match search along a hash chain, with the same candidate order, early rejections and stop
// rules as GNU gzip and zlib: which of several equally long matches is chosen decides the distance that
// is written, so any difference here changes the output bytes.

import { MAX_DIST, MAX_MATCH, WMASK } from './tables.ts';

/** Result packing: the low 9 bits hold the length, the rest the match start + 1 (0: none found). */
export const MATCH_LENGTH_MASK = 0x1ff;
export const MATCH_START_SHIFT = 9;

/**
 * Search the chain starting at `curMatch` for a match at `strstart` longer than `prevLength`.
 * Returns the best length (prevLength when nothing longer was found) and, packed above it, the start
 * of the match that set it. `nice` ends the search early; the caller clamps the length to the
 * lookahead (bytes past the input take part in the comparisons: that is what GNU gzip does).
 */
export function longestMatch(
  win: Uint8Array,
  prev: Uint16Array,
  strstart: number,
  curMatch: number,
  prevLength: number,
  maxChain: number,
  goodMatch: number,
  nice: number,
): number {
  let chain = maxChain;
  // Already holding a good match: search a quarter as far.
  if (prevLength >= goodMatch) chain >>= 2;
  const limit = strstart > MAX_DIST ? strstart - MAX_DIST : 0;
  let bestLen = prevLength;
  let bestStart = -1;
  let scanEnd1 = win[strstart + bestLen - 1]!;
  let scanEnd = win[strstart + bestLen]!;
  const scan0 = win[strstart]!;
  const scan1 = win[strstart + 1]!;

  do {
    // Cheap rejections first: a candidate must match the byte that would make it longer than the best
    // so far, the one before it, and the first two bytes. The third byte is never compared: equal
    // hashes with equal first two bytes imply it.
    if (
      win[curMatch + bestLen] === scanEnd &&
      win[curMatch + bestLen - 1] === scanEnd1 &&
      win[curMatch] === scan0 &&
      win[curMatch + 1] === scan1
    ) {
      const delta = curMatch - strstart;
      let s = strstart + 3;
      const end = strstart + MAX_MATCH;
      while (s < end && win[s] === win[s + delta]) s++;
      const len = s - strstart;
      if (len > bestLen) {
        bestStart = curMatch;
        bestLen = len;
        if (len >= nice) break;
        scanEnd1 = win[strstart + bestLen - 1]!;
        scanEnd = win[strstart + bestLen]!;
      }
    }
    curMatch = prev[curMatch & WMASK]!;
  } while (curMatch > limit && --chain !== 0);

  return bestStart < 0 ? bestLen : ((bestStart + 1) << MATCH_START_SHIFT) | bestLen;
}
