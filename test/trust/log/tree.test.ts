// The pure part of the log: a batch of entries becomes exactly the tiles and bundles C2SP tlog-tiles says
// the grown tree has, with the bytes an independently built tree gives (the reference store of the trust
// core's tests), however the entries are split into batches.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { treeHash } from '../../../src/trust/merkle.ts';
import { entryBundlePath, formatEntryBundle, newTiles, readTileData, TILE_WIDTH, tilePath } from '../../../src/trust/tiles.ts';
import { checkEdge, emptyEdge, integrate, type TreeEdge } from '../../../src/trust/log/tree.ts';
import { MemoryHashStore } from '../reference-tree.ts';

const entry = (i: number) => Buffer.from(`log entry ${i}${'~'.repeat(i % 37)}`);

function batches(total: number, seed: string): number[] {
  const out: number[] = [];
  let left = total;
  for (let i = 0; left > 0; i++) {
    const d = createHash('sha256').update(`${seed} ${i}`).digest();
    // Mostly small batches, now and then one across several tiles.
    const n = Math.min(left, d[0]! < 16 ? 1 + d.readUInt16BE(1) % 1500 : 1 + (d[1]! % 40));
    out.push(n);
    left -= n;
  }
  return out;
}

test('integrate writes exactly the new tiles and bundles, byte for byte, for any batch split', async () => {
  const TOTAL = 70_000;
  const store = new MemoryHashStore();
  for (let i = 0; i < TOTAL; i++) store.append(entry(i));
  for (const seed of ['a', 'b']) {
    let edge: TreeEdge = emptyEdge();
    let written = 0;
    for (const n of batches(TOTAL, seed)) {
      const old = edge.size;
      const { next, files, filled } = integrate(edge, Array.from({ length: n }, (_, i) => entry(old + i)));
      assert.equal(next.size, old + n);
      const want = new Map<string, Uint8Array>();
      for (const tile of newTiles(old, next.size)) want.set(tilePath(tile), await readTileData(tile, store));
      // Bundles: those that became full, and the partial one of the new size.
      for (let b = Math.floor(old / TILE_WIDTH); b * TILE_WIDTH < next.size; b++) {
        const width = Math.min(TILE_WIDTH, next.size - b * TILE_WIDTH);
        if (width < TILE_WIDTH || (b + 1) * TILE_WIDTH > old) {
          const entries = Array.from({ length: width }, (_, i) => entry(b * TILE_WIDTH + i));
          want.set(entryBundlePath({ index: b, width }), formatEntryBundle(entries));
        }
      }
      assert.deepEqual(files.map((f) => f.path).sort(), [...want.keys()].sort(), `files for ${old} -> ${next.size}`);
      for (const f of files) {
        assert.deepEqual(Buffer.from(f.data), Buffer.from(want.get(f.path)!), f.path);
        assert.equal(f.full, !f.path.includes('.p/'));
      }
      assert.deepEqual([...filled].sort(), files.filter((f) => f.full).map((f) => f.path).sort());
      assert.deepEqual(Buffer.from(next.range.root()), Buffer.from(await treeHash(next.size, store)));
      checkEdge(next, next.range.root());
      edge = next;
      written += files.length;
    }
    assert.equal(edge.size, TOTAL);
    assert.ok(written > 300);
  }
});

test('checkEdge refuses an edge that does not match its tree head', () => {
  const { next } = integrate(emptyEdge(), [entry(0), entry(1), entry(2)]);
  assert.throws(() => checkEdge(next, Buffer.alloc(32)), { code: 'E_VERIFY' });
  assert.throws(() => checkEdge({ ...next, bundle: [entry(0), entry(9), entry(2)] }, next.range.root()), { code: 'E_VERIFY' });
  assert.throws(() => checkEdge({ ...next, tiles: [next.tiles[0]!.slice(0, 2)] }, next.range.root()), { code: 'E_VERIFY' });
});

test('integrate refuses entries that an entry bundle cannot hold', () => {
  assert.throws(() => integrate(emptyEdge(), [Buffer.alloc(65_536)]), { code: 'E_INPUT' });
  assert.equal(integrate(emptyEdge(), [Buffer.alloc(65_535), Buffer.alloc(0)]).next.size, 2);
});
