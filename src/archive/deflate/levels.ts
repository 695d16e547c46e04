// Per-level matcher parameters and per-flavour block and end-of-input choices.

import { SourcemeshError } from '../../errors.ts';

export type DeflateFlavour = 'gzip-n' | 'zlib';
export const DEFLATE_FLAVOURS: readonly DeflateFlavour[] = ['gzip-n', 'zlib'];
export const DEFAULT_LEVEL = 6;

export interface LevelParameters {
  /** Quarter the chain search once the previous match is at least this long. */
  readonly goodMatch: number;
  /**
   * Lazy levels: do not look for a better match after one at least this long. Fast levels: only hash
   * the strings inside a match up to this length (longer matches are skipped over unhashed).
   */
  readonly maxLazy: number;
  /** Stop searching once a match is at least this long. */
  readonly niceMatch: number;
  /** Follow at most this many hash chain links. */
  readonly maxChain: number;
  /** Lazy evaluation (defer a match by one byte to look for a longer one), levels 4 and up. */
  readonly lazy: boolean;
}

// The classic parameter table, identical in GNU gzip 1.12 and zlib 1.2.13; index = level.
const LEVELS: readonly LevelParameters[] = [
  { goodMatch: 0, maxLazy: 0, niceMatch: 0, maxChain: 0, lazy: false }, // level 0 (store) is not offered
  { goodMatch: 4, maxLazy: 4, niceMatch: 8, maxChain: 4, lazy: false },
  { goodMatch: 4, maxLazy: 5, niceMatch: 16, maxChain: 8, lazy: false },
  { goodMatch: 4, maxLazy: 6, niceMatch: 32, maxChain: 32, lazy: false },
  { goodMatch: 4, maxLazy: 4, niceMatch: 16, maxChain: 16, lazy: true },
  { goodMatch: 8, maxLazy: 16, niceMatch: 32, maxChain: 32, lazy: true },
  { goodMatch: 8, maxLazy: 16, niceMatch: 128, maxChain: 128, lazy: true },
  { goodMatch: 8, maxLazy: 32, niceMatch: 128, maxChain: 256, lazy: true },
  { goodMatch: 32, maxLazy: 128, niceMatch: 258, maxChain: 1024, lazy: true },
  { goodMatch: 32, maxLazy: 258, niceMatch: 258, maxChain: 4096, lazy: true },
];

export interface DeflateParameters extends LevelParameters {
  readonly level: number;
  /**
   * GNU gzip's end-of-input behaviour: input ends at the first read that returns nothing, after which
   * the window never slides again; two zero bytes follow the data; every string is hashed; the match
   * search does not stop at the lookahead (the length is clamped afterwards); no match is searched
   * past the last position that has a full lookahead in the buffer. zlib instead hashes and matches
   * only within the data and keeps sliding. Only the last bytes of a stream can tell them apart.
   */
  readonly gnuEndOfInput: boolean;
  /** A block ends when it holds this many symbols: 32767 in GNU gzip, 16383 in zlib at memLevel 8. */
  readonly symbolsPerBlock: number;
  /** GNU gzip above level 2: every 4096 symbols, end the block early if it is compressing well. */
  readonly truncateBlocks: boolean;
}

export function deflateParameters(flavour: DeflateFlavour, level: number): DeflateParameters {
  if (!DEFLATE_FLAVOURS.includes(flavour)) {
    throw new SourcemeshError('E_USAGE', `deflate: unknown flavour ${JSON.stringify(flavour)} (expected gzip-n or zlib)`);
  }
  if (!Number.isInteger(level) || level < 1 || level > 9) {
    throw new SourcemeshError('E_USAGE', `deflate: level ${String(level)} is not an integer from 1 to 9`);
  }
  const gnu = flavour === 'gzip-n';
  return {
    ...LEVELS[level]!,
    level,
    gnuEndOfInput: gnu,
    symbolsPerBlock: gnu ? 0x8000 - 1 : (1 << (8 + 6)) - 1,
    truncateBlocks: gnu && level > 2,
  };
}
