// The hashing thread of segmented downloads: piece hashes equal piece-map.ts's, and each file's SHA-256
// equals node:crypto's over the same bytes, for several files at once, whatever order and sizes the
// written prefix grows by.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { open, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { PieceHasher } from '../../src/fetch/piece-hasher.ts';
import { pieceHash } from '../../src/fetch/piece-map.ts';
import { bytes } from '../helpers/distfiles.ts';
import { tempDir } from '../helpers/run.ts';

const PIECE = 256 * 1024;

test('piece hashes and whole-file SHA-256 from the hashing thread, two files at once', async (t) => {
  const dir = await tempDir(t);
  const bodies = [bytes(3 * 1024 * 1024 + 12_345, 71), bytes(1024 * 1024 + 1, 72)];
  const runs = bodies.map(async (body, n) => {
    const file = path.join(dir, `f${n}`);
    await writeFile(file, Buffer.alloc(body.length));
    const fh = await open(file, 'r+');
    const hasher = new PieceHasher(file);
    try {
      const count = Math.ceil(body.length / PIECE);
      // Pieces arrive out of order; the prefix only grows once its pieces are written.
      const order = Array.from({ length: count }, (_, i) => i).reverse();
      const written = new Set<number>();
      for (const i of order) {
        const piece = Buffer.from(body.subarray(i * PIECE, Math.min(body.length, (i + 1) * PIECE)));
        const got = await hasher.pieceHash(piece, PIECE);
        assert.deepEqual(got.hash, pieceHash(body.subarray(i * PIECE, Math.min(body.length, (i + 1) * PIECE)), PIECE), `piece ${i} of file ${n}`);
        assert.deepEqual(got.body, body.subarray(i * PIECE, Math.min(body.length, (i + 1) * PIECE)), 'the same bytes come back');
        await fh.write(got.body, 0, got.body.length, i * PIECE);
        written.add(i);
        let prefix = 0;
        while (written.has(prefix)) prefix++;
        hasher.prefixWritten(Math.min(body.length, prefix * PIECE));
      }
      assert.equal(await hasher.digest(body.length), createHash('sha256').update(body).digest('hex'));
    } finally {
      await hasher.close();
      await fh.close();
    }
  });
  await Promise.all(runs);
});

test('a digest of bytes that are not in the file is undefined, not a wrong hash', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'short');
  await writeFile(file, bytes(1000, 73));
  const hasher = new PieceHasher(file);
  try {
    assert.equal(await hasher.digest(5000), undefined);
  } finally {
    await hasher.close();
  }
});

test("a piece in Node's Buffer pool (untransferable memory, even at offset 0) is hashed from a copy, and the pool is left whole", async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'f');
  await writeFile(file, Buffer.alloc(0));
  const hasher = new PieceHasher(file);
  t.after(() => hasher.close());
  const body = bytes(16 * 1024, 74);
  // Buffer.from of less than half of Buffer.poolSize takes a slice of the pool: a new pool begins at
  // offset 0 within poolSize / 16 KiB slices. The case a copy-free move mistook for memory of its own.
  let piece = Buffer.from(body);
  for (let i = 0; piece.byteOffset !== 0 && i <= Buffer.poolSize / body.length; i++) piece = Buffer.from(body);
  assert.equal(piece.byteOffset, 0, 'no pool slice at offset 0');
  assert.ok(piece.buffer.byteLength > piece.length, 'not a slice of a pool');
  const neighbour = Buffer.from(bytes(100, 75)); // the next slice of the same pool
  assert.equal(neighbour.buffer, piece.buffer);
  const got = await hasher.pieceHash(piece, 16 * 1024);
  assert.deepEqual(got.hash, pieceHash(body, 16 * 1024));
  assert.deepEqual(got.body, body);
  assert.deepEqual(neighbour, bytes(100, 75), 'the pool still reads');
});
