// C2SP tlog-tiles: the Merkle tree served as static "tiles" of 256 hashes, and the entries as bundles.
//
// A tile at level L, number N holds the hashes of tree level 8·L, nodes N·256 .. N·256+255 (RFC 9162
// subtree hashes of 256^L leaves each). The tree levels in between are not stored: a node at level
// 8·L + r (0 < r < 8) is the Merkle hash of 2^r consecutive hashes of one level-L tile. Partial tiles
// (the right edge of a tree) hold fewer than 256 hashes and carry their width in the path.

import { SourcemeshError } from '../errors.ts';
import { LIMITS, type Limits } from '../limits.ts';
import { HASH_SIZE, type Hash, type HashReader, nodeHash, splitStoredHashIndex, storedHashIndex } from './merkle.ts';

/** C2SP tlog-tiles: tiles are 256 hashes wide, i.e. subtrees of height 8. */
export const TILE_HEIGHT = 8;
export const TILE_WIDTH = 256;
/** C2SP tlog-tiles: the level is "between 0 and 63". */
export const MAX_TILE_LEVEL = 63;

/** A Merkle tree tile: `width` is 256 for a full tile, 1..255 for a partial one. */
export interface Tile {
  readonly level: number;
  readonly index: number;
  readonly width: number;
}

/** An entry bundle: the entries of the level-0 tile with the same index and width. */
export interface EntryBundle {
  readonly index: number;
  readonly width: number;
}

export type TilePath = ({ readonly kind: 'tile' } & Tile) | ({ readonly kind: 'entries' } & EntryBundle);

// ---------------------------------------------------------------------------------------------------
// Paths

/** C2SP tlog-tiles: the index as zero-padded 3-digit path elements, all but the last prefixed `x`. */
function formatTileIndex(index: number): string {
  const groups: string[] = [];
  let n = index;
  do {
    groups.unshift(String(n % 1000).padStart(3, '0'));
    n = Math.floor(n / 1000);
  } while (n > 0);
  return groups.map((g, i) => (i < groups.length - 1 ? `x${g}` : g)).join('/');
}

function checkTile(level: number, index: number, width: number): void {
  if (!Number.isInteger(level) || level < 0 || level > MAX_TILE_LEVEL) throw new SourcemeshError('E_FORMAT', `tile level ${level} is not 0 to ${MAX_TILE_LEVEL}`);
  if (!Number.isSafeInteger(index) || index < 0) throw new SourcemeshError('E_FORMAT', `tile index ${index} is not a non-negative integer`);
  if (!Number.isInteger(width) || width < 1 || width > TILE_WIDTH) throw new SourcemeshError('E_FORMAT', `tile width ${width} is not 1 to ${TILE_WIDTH}`);
}

/** `tile/<L>/<N>[.p/<W>]`. */
export function tilePath(tile: Tile): string {
  checkTile(tile.level, tile.index, tile.width);
  return `tile/${tile.level}/${formatTileIndex(tile.index)}${tile.width < TILE_WIDTH ? `.p/${tile.width}` : ''}`;
}

/** `tile/entries/<N>[.p/<W>]`. */
export function entryBundlePath(bundle: EntryBundle): string {
  checkTile(0, bundle.index, bundle.width);
  return `tile/entries/${formatTileIndex(bundle.index)}${bundle.width < TILE_WIDTH ? `.p/${bundle.width}` : ''}`;
}

const DECIMAL = /^(?:0|[1-9][0-9]*)$/;

/**
 * Parse a tile or entry bundle path (relative to the log prefix), strictly: every tile has one path, so
 * leading zeros, `x000` groups and a `.p/256` suffix are refused. Attacker-controlled (a request URL).
 */
export function parseTilePath(path: string, limits: Pick<Limits, 'tilePathBytes'> = LIMITS): TilePath {
  const bad = (why: string): never => {
    throw new SourcemeshError('E_FORMAT', `malformed tile path: ${why}`, { path: path.slice(0, 200) });
  };
  if (typeof path !== 'string') bad('not a string');
  if (path.length > limits.tilePathBytes) bad(`longer than ${limits.tilePathBytes} characters`);
  const parts = path.split('/');
  if (parts.length < 3 || parts[0] !== 'tile') bad('not tile/<L>/<N>');
  const levelPart = parts[1]!;
  let level = 0;
  const entries = levelPart === 'entries';
  if (!entries) {
    if (!DECIMAL.test(levelPart) || levelPart.length > 2) bad('the level is not a decimal 0 to 63');
    level = Number(levelPart);
    if (level > MAX_TILE_LEVEL) bad('the level is above 63');
  }
  let rest = parts.slice(2);
  let width = TILE_WIDTH;
  const last = rest[rest.length - 1]!;
  if (rest.length >= 2 && rest[rest.length - 2]!.endsWith('.p')) {
    // `<last group>.p/<W>`
    if (!DECIMAL.test(last) || last.length > 3) bad('the partial width is not a decimal');
    width = Number(last);
    if (width < 1 || width >= TILE_WIDTH) bad('a partial tile is 1 to 255 wide');
    rest = rest.slice(0, -1);
    rest[rest.length - 1] = rest[rest.length - 1]!.slice(0, -2);
  }
  // 2^53 has 16 decimal digits: six groups at most.
  if (rest.length > 6) bad('the index has too many elements');
  let index = 0;
  rest.forEach((group, i) => {
    const digits = i < rest.length - 1 ? (group.startsWith('x') ? group.slice(1) : bad('all but the last index element start with x')) : group;
    if (!/^[0-9]{3}$/.test(digits)) bad('index elements are three digits');
    index = index * 1000 + Number(digits);
  });
  if (!Number.isSafeInteger(index)) bad('the index is too large');
  const parsed: TilePath = entries ? { kind: 'entries', index, width } : { kind: 'tile', level, index, width };
  // One spelling per tile: `x000/001` and `001` name the same index, and only the short one is canonical.
  const canonical = entries ? entryBundlePath(parsed) : tilePath(parsed as Tile);
  if (canonical !== path) bad('not in canonical form');
  return parsed;
}

// ---------------------------------------------------------------------------------------------------
// Which tiles a tree has

/** Hashes at tile level `level` in a tree of `size` leaves: floor(size / 256^level). */
function hashesAtLevel(size: number, level: number): number {
  return Math.floor(size / TILE_WIDTH ** level);
}

/** C2SP tlog-tiles: the width of tile (level, index) in a tree of `size` leaves, or 0 if it has none. */
export function tileWidth(level: number, index: number, size: number): number {
  const available = hashesAtLevel(size, level) - index * TILE_WIDTH;
  return available <= 0 ? 0 : Math.min(TILE_WIDTH, available);
}

/** Every tile of a tree of `size` leaves: full tiles, and a partial one per level where one exists. */
export function treeTiles(size: number): Tile[] {
  return newTiles(0, size);
}

/**
 * The tiles a log publishes when it grows from `oldSize` to `newSize` leaves: full tiles that became
 * complete and each partial tile of the new size (C2SP tlog-tiles: partial tiles are served for every
 * tree size a checkpoint was signed for). Tiles already published for `oldSize` are left out.
 */
export function newTiles(oldSize: number, newSize: number): Tile[] {
  if (!Number.isSafeInteger(oldSize) || !Number.isSafeInteger(newSize) || oldSize < 0 || oldSize > newSize) {
    throw new SourcemeshError('E_FORMAT', `no tiles from ${oldSize} to ${newSize} leaves`);
  }
  const tiles: Tile[] = [];
  for (let level = 0; hashesAtLevel(newSize, level) > 0; level++) {
    const oldCount = hashesAtLevel(oldSize, level);
    const newCount = hashesAtLevel(newSize, level);
    for (let index = Math.floor(oldCount / TILE_WIDTH); index < Math.floor(newCount / TILE_WIDTH); index++) {
      tiles.push({ level, index, width: TILE_WIDTH });
    }
    const partial = newCount % TILE_WIDTH;
    if (partial > 0 && newCount > oldCount) tiles.push({ level, index: Math.floor(newCount / TILE_WIDTH), width: partial });
  }
  return tiles;
}

/**
 * Where the hash of the complete subtree at tree `level`, number `n`, lives: tile level floor(level/8),
 * `count` = 2^(level mod 8) consecutive hashes from `offset` in tile `index`, which hash together to it.
 */
export function tileSpanForNode(level: number, n: number): { level: number; index: number; offset: number; count: number } {
  const tileLevel = Math.floor(level / TILE_HEIGHT);
  const count = 2 ** (level % TILE_HEIGHT);
  const first = n * count;
  return { level: tileLevel, index: Math.floor(first / TILE_WIDTH), offset: first % TILE_WIDTH, count };
}

// ---------------------------------------------------------------------------------------------------
// Tile contents

/** Check tile bytes (attacker-controlled: fetched from a log or a mirror) and split them into hashes. */
export function parseTile(data: Uint8Array, width: number): Hash[] {
  checkTile(0, 0, width);
  if (!(data instanceof Uint8Array) || data.length !== width * HASH_SIZE) {
    throw new SourcemeshError('E_FORMAT', `a tile of width ${width} is ${width * HASH_SIZE} bytes, not ${data?.length}`, { width, length: data?.length });
  }
  const hashes: Hash[] = [];
  for (let i = 0; i < width; i++) hashes.push(data.subarray(i * HASH_SIZE, (i + 1) * HASH_SIZE));
  return hashes;
}

export function formatTile(hashes: readonly Hash[]): Uint8Array {
  checkTile(0, 0, hashes.length);
  const out = new Uint8Array(hashes.length * HASH_SIZE);
  hashes.forEach((h, i) => {
    if (h.length !== HASH_SIZE) throw new SourcemeshError('E_FORMAT', 'a tile holds 32-byte hashes');
    out.set(h, i * HASH_SIZE);
  });
  return out;
}

/** The Merkle hash of `count` (a power of two) consecutive hashes of a tile, from `offset`. */
export function hashTileSpan(data: Uint8Array, offset: number, count: number): Hash {
  if (count === 1) return Buffer.from(data.subarray(offset * HASH_SIZE, (offset + 1) * HASH_SIZE));
  const half = count / 2;
  return nodeHash(hashTileSpan(data, offset, half), hashTileSpan(data, offset + half, half));
}

/** The stored hash indexes that make up tile `tile`, in order (for a log writing tiles from its hash store). */
export function tileHashIndexes(tile: Tile): number[] {
  checkTile(tile.level, tile.index, tile.width);
  const indexes: number[] = [];
  for (let i = 0; i < tile.width; i++) indexes.push(storedHashIndex(tile.level * TILE_HEIGHT, tile.index * TILE_WIDTH + i));
  return indexes;
}

/** Build a tile's bytes from stored hashes. */
export async function readTileData(tile: Tile, reader: HashReader): Promise<Uint8Array> {
  const indexes = tileHashIndexes(tile);
  const hashes = await reader.readHashes(indexes);
  if (hashes.length !== indexes.length) throw new SourcemeshError('E_FORMAT', `hash source returned ${hashes.length} hashes for ${indexes.length} requested`);
  return formatTile(hashes);
}

/** Fetches one tile's bytes (from disk, HTTP, a cache). Its answer is checked, never trusted. */
export type TileFetcher = (tile: Tile) => Uint8Array | Promise<Uint8Array>;

/**
 * A HashReader over the tiles of a tree of `size` leaves, for computing roots and proofs from a tiled log.
 * The hashes are not authenticated here: verify what is computed from them (a proof, a root) against a
 * signed checkpoint, as verifyInclusion and verifyConsistency do.
 */
export class TileHashReader implements HashReader {
  readonly size: number;
  readonly #fetch: TileFetcher;

  constructor(size: number, fetch: TileFetcher) {
    if (!Number.isSafeInteger(size) || size < 0) throw new SourcemeshError('E_FORMAT', `tree size ${size} is not a safe integer`);
    this.size = size;
    this.#fetch = fetch;
  }

  async readHashes(indexes: readonly number[]): Promise<Hash[]> {
    const spans = indexes.map((index) => {
      const { level, n } = splitStoredHashIndex(index);
      const span = tileSpanForNode(level, n);
      const width = tileWidth(span.level, span.index, this.size);
      if (span.offset + span.count > width) {
        throw new SourcemeshError('E_FORMAT', `node ${n} at level ${level} is not complete in a tree of ${this.size} leaves`, { level, n, size: this.size });
      }
      return { ...span, width };
    });
    const wanted = new Map<string, Tile>();
    for (const s of spans) {
      const tile: Tile = { level: s.level, index: s.index, width: s.width };
      wanted.set(tilePath(tile), tile);
    }
    // Promise.all: every fetch is awaited together, so one failure can't leave another unhandled.
    const fetched = await Promise.all([...wanted.values()].map(async (tile) => {
      const data = await this.#fetch(tile);
      parseTile(data, tile.width);
      return data;
    }));
    const byPath = new Map<string, Uint8Array>();
    [...wanted.keys()].forEach((key, i) => byPath.set(key, fetched[i]!));
    const out: Hash[] = [];
    for (const s of spans) {
      const data = byPath.get(tilePath({ level: s.level, index: s.index, width: s.width }))!;
      out.push(hashTileSpan(data, s.offset, s.count));
    }
    return out;
  }
}

// ---------------------------------------------------------------------------------------------------
// Entry bundles

/** C2SP tlog-tiles: entries, each prefixed by its length as a big-endian uint16. */
export function formatEntryBundle(entries: readonly Uint8Array[], limits: Pick<Limits, 'logEntryBytes'> = LIMITS): Uint8Array {
  checkTile(0, 0, entries.length);
  const max = Math.min(limits.logEntryBytes, 0xffff);
  let total = 0;
  for (const e of entries) {
    if (e.length > max) throw new SourcemeshError('E_FORMAT', `a log entry of ${e.length} bytes is over the limit of ${max}`);
    total += 2 + e.length;
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const e of entries) {
    out[at] = e.length >>> 8;
    out[at + 1] = e.length & 0xff;
    out.set(e, at + 2);
    at += 2 + e.length;
  }
  return out;
}

/** Parse an entry bundle of `width` entries. Attacker-controlled: fetched from a log or a mirror. */
export function parseEntryBundle(data: Uint8Array, width: number, limits: Pick<Limits, 'logEntryBytes'> = LIMITS): Uint8Array[] {
  checkTile(0, 0, width);
  const max = Math.min(limits.logEntryBytes, 0xffff);
  if (!(data instanceof Uint8Array) || data.length > width * (2 + max)) {
    throw new SourcemeshError('E_FORMAT', `an entry bundle of ${width} entries is at most ${width * (2 + max)} bytes`, { width, length: data?.length });
  }
  const entries: Uint8Array[] = [];
  let at = 0;
  while (at < data.length) {
    if (entries.length === width) throw new SourcemeshError('E_FORMAT', `an entry bundle has bytes after its ${width} entries`, { width });
    if (at + 2 > data.length) throw new SourcemeshError('E_FORMAT', 'an entry bundle ends inside a length prefix');
    const length = (data[at]! << 8) | data[at + 1]!;
    if (length > max) throw new SourcemeshError('E_FORMAT', `a log entry of ${length} bytes is over the limit of ${max}`);
    if (at + 2 + length > data.length) throw new SourcemeshError('E_FORMAT', 'an entry bundle ends inside an entry');
    entries.push(data.subarray(at + 2, at + 2 + length));
    at += 2 + length;
  }
  if (entries.length !== width) {
    throw new SourcemeshError('E_FORMAT', `an entry bundle of width ${width} holds ${entries.length} entries`, { width, count: entries.length });
  }
  return entries;
}
