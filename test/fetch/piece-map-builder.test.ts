// PieceMapBuilder (src/fetch/piece-map.ts): the piece map built as bytes go by, in any chunking, equals the
// one of the whole file (pieceMapOfFile, itself checked against libtorrent in piece-map.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { BLOCK, PieceMapBuilder, blockHashes, pieceMapFromLeaves, pieceMapOfFile } from '../../src/fetch/piece-map.ts';

const hex = (m: { root: Buffer; layer: Buffer[] }) => ({ root: m.root.toString('hex'), layer: m.layer.map((h) => h.toString('hex')) });

test('any chunking of any length gives the whole-buffer piece map', () => {
  fc.assert(fc.property(
    // Lengths around block and piece boundaries for 16 KiB and 32 KiB pieces (1, 2, 3, 5 pieces).
    fc.integer({ min: 0, max: 5 * 2 * BLOCK + 3 }), fc.constantFrom(BLOCK, 2 * BLOCK, 4 * BLOCK), fc.array(fc.integer({ min: 1, max: 3 * BLOCK }), { minLength: 1, maxLength: 20 }), fc.integer(),
    (size, pieceLength, cuts, seed) => {
      const data = Buffer.alloc(size);
      for (let i = 0; i < size; i++) data[i] = (seed + i * 2654435761) >>> 24;
      const b = new PieceMapBuilder(pieceLength);
      for (let at = 0, k = 0; at < size; k++) {
        const n = Math.min(cuts[k % cuts.length]!, size - at);
        b.update(data.subarray(at, at + n));
        at += n;
      }
      assert.deepEqual(hex(b.finish()), hex(pieceMapFromLeaves(blockHashes(data), pieceLength)));
    },
  ), { numRuns: 300 });
});

test('a 3 MiB file in 1 MiB pieces, fed in odd chunks, equals pieceMapOfFile', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pmb-'));
  try {
    for (const size of [3 << 20, (3 << 20) + 1, (1 << 20) - 1, 1 << 20, (1 << 20) + 1]) {
      const data = randomBytes(size);
      const file = path.join(dir, `f-${size}`);
      await writeFile(file, data);
      const b = new PieceMapBuilder(1 << 20);
      for (let at = 0; at < size; at += 65_537) b.update(data.subarray(at, Math.min(size, at + 65_537)));
      const got = b.finish();
      const want = await pieceMapOfFile(file, 1 << 20);
      assert.deepEqual(hex(got), hex(want), `size ${size}`);
      assert.equal(got.layer.length, size > 1 << 20 ? Math.ceil(size / (1 << 20)) : 0);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a piece length that is not a power of two of at least 16 KiB is refused', () => {
  assert.throws(() => new PieceMapBuilder(BLOCK / 2), /piece length/);
  assert.throws(() => new PieceMapBuilder(3 * BLOCK), /piece length/);
});
