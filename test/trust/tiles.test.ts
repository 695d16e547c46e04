import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { limitsWith } from '../../src/limits.ts';
import { leafHash, proveConsistency, proveInclusion, storedHashIndex, treeHash } from '../../src/trust/merkle.ts';
import {
  entryBundlePath, formatEntryBundle, formatTile, hashTileSpan, newTiles, parseEntryBundle, parseTile, parseTilePath, readTileData,
  type Tile, TileHashReader, tilePath, tileSpanForNode, tileWidth, treeTiles,
} from '../../src/trust/tiles.ts';
import { MemoryHashStore } from './reference-tree.ts';

const vectors = JSON.parse(readFileSync(new URL('./vectors/trust-formats.json', import.meta.url), 'utf8'));
const hex = (h: Uint8Array) => Buffer.from(h).toString('hex');
const entry = (i: number) => Buffer.from(`entry ${i}${'#'.repeat(i % 50)}`);

test('tile paths: the C2SP example index, partial widths, entry bundles', () => {
  const v = vectors.tiles.specPathExample;
  assert.equal(tilePath({ level: 0, index: v.index, width: 256 }), `tile/0/${v.element}`);
  assert.equal(tilePath({ level: 3, index: v.index, width: 1 }), `tile/3/${v.element}.p/1`);
  assert.equal(tilePath({ level: 0, index: 0, width: 256 }), 'tile/0/000');
  assert.equal(tilePath({ level: 63, index: 999, width: 255 }), 'tile/63/999.p/255');
  assert.equal(tilePath({ level: 1, index: 1000, width: 256 }), 'tile/1/x001/000');
  assert.equal(entryBundlePath({ index: 5, width: 7 }), 'tile/entries/005.p/7');
  assert.equal(entryBundlePath({ index: 2 ** 53 - 1, width: 256 }), 'tile/entries/x009/x007/x199/x254/x740/991');
  for (const path of ['tile/0/000', 'tile/3/x001/x234/067.p/1', 'tile/entries/x001/000', 'tile/entries/000.p/255', 'tile/63/x009/x007/x199/x254/x740/991']) {
    const parsed = parseTilePath(path);
    assert.equal(parsed.kind === 'entries' ? entryBundlePath(parsed) : tilePath(parsed), path);
  }
  assert.deepEqual(parseTilePath('tile/2/x001/x234/067.p/9'), { kind: 'tile', level: 2, index: 1234067, width: 9 });
});

test('tile paths: one spelling per tile, everything else refused', () => {
  const bad = [
    '', 'tile', 'tile/0', 'tile/0/', 'tiles/0/000', '/tile/0/000', 'tile/0/000/', 'tile//000',
    'tile/00/000', 'tile/01/000', 'tile/64/000', 'tile/-1/000', 'tile/a/000', 'tile/data/000',
    'tile/0/0', 'tile/0/00', 'tile/0/0000', 'tile/0/x000', 'tile/0/x000/001', 'tile/0/001/002', 'tile/0/X001/002', 'tile/0/x01/002',
    'tile/0/000.p/0', 'tile/0/000.p/256', 'tile/0/000.p/07', 'tile/0/000.p/', 'tile/0/000.p', 'tile/0/000.p/1/2', 'tile/0/x001.p/3',
    'tile/0/x009/x007/x199/x254/x740/992', 'tile/0/x001/x001/x001/x001/x001/x001/000',
    'tile/entries/0', 'tile/entries/000.p/256', 'tile/0/000?x', 'tile/0/000#', 'tile/0/+00', 'tile/0/ 00',
    `tile/0/${'x000/'.repeat(40)}000`,
  ];
  for (const path of bad) assert.throws(() => parseTilePath(path), { code: 'E_FORMAT' }, path);
  assert.throws(() => parseTilePath('tile/0/x001/000', limitsWith({ tilePathBytes: 10 })), { code: 'E_FORMAT' });
  assert.throws(() => tilePath({ level: 64, index: 0, width: 256 }), { code: 'E_FORMAT' });
  assert.throws(() => tilePath({ level: 0, index: -1, width: 256 }), { code: 'E_FORMAT' });
  assert.throws(() => tilePath({ level: 0, index: 0, width: 0 }), { code: 'E_FORMAT' });
  assert.throws(() => tilePath({ level: 0, index: 0, width: 257 }), { code: 'E_FORMAT' });
});

test('which tiles a tree has: the C2SP tlog-tiles examples, and what each growth publishes', () => {
  for (const example of vectors.tiles.specTreeExamples.trees) {
    const tiles = treeTiles(example.size);
    const full: Record<string, number> = {};
    const partial: Record<string, number> = {};
    for (const t of tiles) {
      if (t.width === 256) full[t.level] = (full[t.level] ?? 0) + 1;
      else {
        assert.equal(partial[t.level], undefined, 'one partial tile per level');
        partial[t.level] = t.width;
      }
    }
    assert.deepEqual(full, example.fullTiles);
    assert.deepEqual(partial, example.partialTiles);
  }
  assert.deepEqual(treeTiles(0), []);
  assert.deepEqual(newTiles(70_000, 70_000), []);
  const paths = (tiles: Tile[]) => tiles.map(tilePath);
  assert.deepEqual(paths(newTiles(300, 600)), ['tile/0/001', 'tile/0/002.p/88', 'tile/1/000.p/2']);
  assert.deepEqual(paths(newTiles(255, 256)), ['tile/0/000', 'tile/1/000.p/1']);
  assert.deepEqual(paths(newTiles(256, 257)), ['tile/0/001.p/1']);
  // Growing step by step publishes every tile the final tree has.
  const published = new Set<string>();
  let size = 0;
  for (const next of [1, 2, 255, 256, 300, 511, 512, 70_000]) {
    for (const t of newTiles(size, next)) published.add(tilePath(t));
    size = next;
  }
  for (const t of treeTiles(70_000)) assert.ok(published.has(tilePath(t)), tilePath(t));
  assert.equal(tileWidth(0, 273, 70_000), 112);
  assert.equal(tileWidth(0, 274, 70_000), 0);
  assert.equal(tileWidth(2, 0, 70_000), 1);
  assert.deepEqual(tileSpanForNode(0, 1234), { level: 0, index: 4, offset: 210, count: 1 });
  assert.deepEqual(tileSpanForNode(3, 40), { level: 0, index: 1, offset: 64, count: 8 });
  assert.deepEqual(tileSpanForNode(8, 300), { level: 1, index: 1, offset: 44, count: 1 });
  assert.throws(() => newTiles(5, 4), { code: 'E_FORMAT' });
});

test('tiles written from stored hashes give the same roots and proofs as the hash store', async () => {
  const store = new MemoryHashStore();
  const SIZE = 66_000;
  for (let i = 0; i < SIZE; i++) store.append(entry(i));
  for (const size of [1, 2, 255, 256, 257, 4096, 65_535, 65_536, 65_537, SIZE]) {
    const files = new Map<string, Uint8Array>();
    for (const t of treeTiles(size)) files.set(tilePath(t), await readTileData(t, store));
    let fetches = 0;
    const reader = new TileHashReader(size, (t) => {
      fetches++;
      return files.get(tilePath(t)) ?? assert.fail(`fetched ${tilePath(t)}, which a tree of ${size} does not have`);
    });
    assert.equal(hex(await treeHash(size, reader)), hex(await treeHash(size, store)));
    for (const index of [0, size >> 1, size - 1]) {
      assert.deepEqual((await proveInclusion(index, size, reader)).map(hex), (await proveInclusion(index, size, store)).map(hex));
    }
    for (const old of [1, size >> 2, size - 1].filter((n) => n > 0)) {
      assert.deepEqual((await proveConsistency(old, size, reader)).map(hex), (await proveConsistency(old, size, store)).map(hex));
    }
    assert.ok(fetches > 0);
  }
  // Level-0 tiles hold the leaf hashes; a span of 2^r hashes hashes to the node r levels up.
  const tile0 = await readTileData({ level: 0, index: 0, width: 256 }, store);
  assert.equal(hex(parseTile(tile0, 256)[7]!), hex(leafHash(entry(7))));
  const reader = new TileHashReader(SIZE, (t) => readTileData(t, store));
  assert.equal(hex(hashTileSpan(tile0, 0, 256)), hex((await reader.readHashes([510]))[0]!)); // node (level 8, n 0) is stored at 510
});

test('a hostile tile source is caught: wrong lengths, missing tiles, nodes beyond the tree', async () => {
  const store = new MemoryHashStore();
  for (let i = 0; i < 600; i++) store.append(entry(i));
  const short = new TileHashReader(600, async (t) => (await readTileData(t, store)).subarray(32));
  await assert.rejects(treeHash(600, short), { code: 'E_FORMAT' });
  const failing = new TileHashReader(600, () => Promise.reject(Object.assign(new Error('ENOENT'), { code: 'ENOENT' })));
  await assert.rejects(treeHash(600, failing), /ENOENT/);
  const reader = new TileHashReader(600, (t) => readTileData(t, store));
  // A node that is not complete in a tree of 600 leaves (the subtree of leaves 512..1023).
  await assert.rejects(reader.readHashes([storedHashIndex(9, 1)]), { code: 'E_FORMAT' });
  await assert.rejects(proveInclusion(600, 600, reader), { code: 'E_FORMAT' });
  assert.throws(() => new TileHashReader(-1, () => new Uint8Array()), { code: 'E_FORMAT' });
  assert.throws(() => parseTile(new Uint8Array(32 * 3), 4), { code: 'E_FORMAT' });
  assert.throws(() => parseTile(new Uint8Array(32 * 257), 257), { code: 'E_FORMAT' });
  assert.throws(() => formatTile([]), { code: 'E_FORMAT' });
  assert.throws(() => formatTile([new Uint8Array(31)]), { code: 'E_FORMAT' });
});

test('entry bundles: uint16 length-prefixed entries that hash to the level-0 tile', async () => {
  const store = new MemoryHashStore();
  const entries = Array.from({ length: 300 }, (_, i) => entry(i));
  entries[3] = Buffer.alloc(0);
  entries[4] = Buffer.alloc(65_535, 0x41);
  for (const e of entries) store.append(e);
  const bundle = formatEntryBundle(entries.slice(0, 256));
  assert.equal(bundle[0], 0);
  assert.equal(bundle[1], entries[0]!.length);
  const back = parseEntryBundle(bundle, 256);
  assert.deepEqual(back.map(hex), entries.slice(0, 256).map(hex));
  const tile = parseTile(await readTileData({ level: 0, index: 0, width: 256 }, store), 256);
  back.forEach((e, i) => assert.equal(hex(leafHash(e)), hex(tile[i]!)));
  const partial = formatEntryBundle(entries.slice(256));
  assert.equal(parseEntryBundle(partial, 44).length, 44);

  const cases: Array<[string, Uint8Array, number]> = [
    ['fewer entries than the width', bundle, 257],
    ['more entries than the width', bundle, 255],
    ['cut inside a length', bundle.subarray(0, bundle.length - entries[255]!.length - 1), 256],
    ['cut inside an entry', bundle.subarray(0, bundle.length - 1), 256],
    ['a trailing byte', Buffer.concat([partial, Buffer.from([0])]), 44],
    ['empty', new Uint8Array(0), 1],
  ];
  for (const [what, data, width] of cases) assert.throws(() => parseEntryBundle(data, width), { code: 'E_FORMAT' }, what);
  assert.throws(() => parseEntryBundle(bundle, 256, limitsWith({ logEntryBytes: 1000 })), { code: 'E_FORMAT' });
  assert.throws(() => parseEntryBundle(new Uint8Array(256 * 65_537 + 1), 256), { code: 'E_FORMAT' });
  assert.throws(() => formatEntryBundle([Buffer.alloc(65_536)]), { code: 'E_FORMAT' });
  assert.throws(() => formatEntryBundle([]), { code: 'E_FORMAT' });
});
