// The log's tree as it grows: which tlog-tiles files a batch of new entries produces.
//
// The log keeps the right edge of its tree in memory: the CompactRange (the peaks, for the root), the
// hashes of the rightmost unfinished tile at each tile level, and the entries of the rightmost unfinished
// entry bundle. Appending a batch is pure: it returns the next edge and the files to write, which are the
// tiles and bundles that C2SP tlog-tiles says a tree of the new size has and the old one did not (the
// same set as tiles.ts's newTiles). Nothing here touches the disk; storage.ts writes what it returns.

import { SourcemeshError } from '../../errors.ts';
import { LIMITS, type Limits } from '../../limits.ts';
import { CompactRange, type Hash, hashesEqual, leafHash } from '../merkle.ts';
import { entryBundlePath, formatEntryBundle, formatTile, TILE_HEIGHT, TILE_WIDTH, tilePath, type Tile } from '../tiles.ts';

/** The right edge of a tree of `size` leaves: enough to append and to write the next tiles. */
export interface TreeEdge {
  readonly size: number;
  readonly range: CompactRange;
  /** Per tile level L: the hashes of tile floor(floor(size / 256^L) / 256), which is unfinished (0 to 255 of them). */
  readonly tiles: readonly (readonly Hash[])[];
  /** The entries of the unfinished entry bundle number floor(size / 256). */
  readonly bundle: readonly Uint8Array[];
}

/** One file of the tlog-tiles layout: its path under the log root and its bytes. */
export interface TreeFile {
  readonly path: string;
  readonly data: Uint8Array;
  /** A full tile or bundle (immutable once its tree head is stored); otherwise partial. */
  readonly full: boolean;
}

export interface Integration {
  readonly next: TreeEdge;
  /** Tiles and bundles to write before the tree head may move to next.size: full ones first, by level. */
  readonly files: readonly TreeFile[];
  /** Paths of tiles and bundles that became full: their `.p/` partial versions may now be deleted. */
  readonly filled: readonly string[];
}

export function emptyEdge(): TreeEdge {
  return { size: 0, range: new CompactRange(), tiles: [], bundle: [] };
}

/** Hashes at tile level `level` in a tree of `size` leaves: floor(size / 256^level). */
export function hashesAtTileLevel(size: number, level: number): number {
  return Math.floor(size / TILE_WIDTH ** level);
}

/**
 * Append `entries` to the tree whose edge is `edge`. Each entry is one log entry's bytes (checked against
 * logEntryBytes: an entry bundle stores its length in 16 bits).
 */
export function integrate(edge: TreeEdge, entries: readonly Uint8Array[], limits: Pick<Limits, 'logEntryBytes'> = LIMITS): Integration {
  const max = Math.min(limits.logEntryBytes, 0xffff);
  for (const e of entries) {
    if (!(e instanceof Uint8Array) || e.length > max) throw new SourcemeshError('E_INPUT', `a log entry is at most ${max} bytes`);
  }
  const range = new CompactRange(edge.size, edge.range.peaks);
  const tiles = edge.tiles.map((t) => [...t]);
  let bundle = [...edge.bundle];
  const fullTiles: TreeFile[][] = [];
  const fullBundles: TreeFile[] = [];
  const filled: string[] = [];
  const dirtyLevels = new Set<number>();
  let bundleDirty = false;

  for (const entry of entries) {
    const m = range.size;
    // CompactRange.append returns the hashes leaf m completes, tree level 0 upwards: stored[k] is the
    // tree-level-k node that ends at leaf m. A tile at level L holds tree-level 8·L nodes.
    const stored = range.append(leafHash(entry));
    bundle.push(entry);
    bundleDirty = true;
    if (bundle.length === TILE_WIDTH) {
      const path = entryBundlePath({ index: Math.floor(m / TILE_WIDTH), width: TILE_WIDTH });
      fullBundles.push({ path, data: formatEntryBundle(bundle, limits), full: true });
      filled.push(path);
      bundle = [];
    }
    for (let level = 0; level * TILE_HEIGHT < stored.length; level++) {
      const row = (tiles[level] ??= []);
      row.push(stored[level * TILE_HEIGHT]!);
      dirtyLevels.add(level);
      if (row.length === TILE_WIDTH) {
        // This row's node number is floor((m + 1) / 256^level) - 1: the tile holding it is full now.
        const tile: Tile = { level, index: Math.floor(((m + 1) / TILE_WIDTH ** level - 1) / TILE_WIDTH), width: TILE_WIDTH };
        const path = tilePath(tile);
        (fullTiles[level] ??= []).push({ path, data: formatTile(row), full: true });
        filled.push(path);
        tiles[level] = [];
      }
    }
  }

  const size = range.size;
  const files: TreeFile[] = [...fullBundles];
  if (bundleDirty && bundle.length > 0) {
    files.push({ path: entryBundlePath({ index: Math.floor(size / TILE_WIDTH), width: bundle.length }), data: formatEntryBundle(bundle, limits), full: false });
  }
  for (let level = 0; level < tiles.length; level++) {
    files.push(...(fullTiles[level] ?? []));
    const row = tiles[level]!;
    if (dirtyLevels.has(level) && row.length > 0) {
      const index = Math.floor(hashesAtTileLevel(size, level) / TILE_WIDTH);
      files.push({ path: tilePath({ level, index, width: row.length }), data: formatTile(row), full: false });
    }
  }
  return { next: { size, range, tiles, bundle }, files, filled };
}

/**
 * Check an edge loaded from disk against itself: each unfinished tile's width follows from the size, and
 * each bundle entry hashes to its level-0 leaf. Throws E_VERIFY naming what disagrees.
 */
export function checkEdge(edge: TreeEdge, root: Hash): void {
  const bad = (why: string): never => {
    throw new SourcemeshError('E_VERIFY', `the log's stored tree of ${edge.size} entries is inconsistent: ${why}`, { size: edge.size });
  };
  if (edge.range.size !== edge.size) bad('the compact range has another size');
  if (!hashesEqual(edge.range.root(), root)) bad('its tiles do not hash to the stored tree head');
  for (let level = 0; hashesAtTileLevel(edge.size, level) > 0 || level < edge.tiles.length; level++) {
    const want = hashesAtTileLevel(edge.size, level) % TILE_WIDTH;
    if ((edge.tiles[level]?.length ?? 0) !== want) bad(`the unfinished tile at level ${level} holds ${edge.tiles[level]?.length ?? 0} hashes, not ${want}`);
  }
  if (edge.bundle.length !== edge.size % TILE_WIDTH) bad('the unfinished entry bundle has the wrong width');
  edge.bundle.forEach((entry, i) => {
    if (!hashesEqual(leafHash(entry), edge.tiles[0]![i]!)) bad(`entry ${edge.size - edge.bundle.length + i} does not hash to its level-0 tile`);
  });
}
