// Segmented downloads' hashes (src/fetch/piece-hasher.ts, on the main thread): piece hashes and leaves
// equal piece-map.ts's, and each file's SHA-256 equals node:crypto's over the same bytes for any order the
// pieces are written in, whether a piece is hashed from memory (it extends the hashed prefix) or read
// back (it arrived ahead), for several files at once; a file shorter than asked gives no digest; and no
// hashing thread is started for any of it.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { open, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setImmediate as turn } from 'node:timers/promises';
import { test } from 'node:test';
import fc from 'fast-check';
import { HASH_THREAD_NAME } from '../../src/fetch/hash-thread.ts';
import { PieceHasher } from '../../src/fetch/piece-hasher.ts';
import { BLOCK, blockHashes, pieceHash } from '../../src/fetch/piece-map.ts';
import { bytes } from '../helpers/distfiles.ts';
import { tempDir } from '../helpers/run.ts';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

test('piece hashes and leaves are those of piece-map.ts, for pieces in buffers of their own or inside larger ones', async (t) => {
  const dir = await tempDir(t);
  const hasher = new PieceHasher(path.join(dir, 'unused'));
  t.after(() => hasher.close());
  fc.assert(fc.property(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1, max: 8 * BLOCK }), fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 1, max: 1 << 30 }), (shift, want, at, seed) => {
    const pieceLength = BLOCK << shift;
    const body = bytes(Math.min(want, pieceLength), seed);
    const within = Buffer.alloc(at + body.length + 7);
    body.copy(within, at);
    for (const given of [Buffer.from(body), within.subarray(at, at + body.length)]) {
      const r = hasher.pieceHash(given, pieceLength);
      assert.deepEqual(r.hash, pieceHash(body, pieceLength));
      assert.deepEqual(r.leaves, Buffer.concat(blockHashes(body)));
    }
  }), { numRuns: 60 });
});

test("the whole file's SHA-256 for any order of written pieces (from memory or read back), three files at once", async (t) => {
  const dir = await tempDir(t);
  let n = 0;
  await fc.assert(fc.asyncProperty(
    fc.integer({ min: 1, max: 40 * 1024 + 5 }), // file size
    fc.integer({ min: 1, max: 3 }), // log2 of the piece length in KiB
    fc.integer({ min: 1, max: 1 << 30 }), // seed of the bytes and the order
    fc.array(fc.boolean(), { minLength: 1, maxLength: 50 }), // after which writes to let read-backs run
    async (size, shift, seed, pauses) => {
      const pieceLength = 1024 << shift;
      const runs = [0, 1, 2].map(async (k) => {
        const body = bytes(size, seed + k);
        const file = path.join(dir, `f${n++}`);
        await writeFile(file, Buffer.alloc(size));
        const fh = await open(file, 'r+');
        const hasher = new PieceHasher(file);
        try {
          const count = Math.ceil(size / pieceLength);
          // A shuffled order (seeded): some pieces extend the prefix, some arrive ahead and are read back.
          const order = Array.from({ length: count }, (_, i) => i).sort((a, b) => ((a * 7919 + seed + k) % 13) - ((b * 7919 + seed + k) % 13) || a - b);
          const written = new Set<number>();
          for (const [w, i] of order.entries()) {
            const piece = Buffer.from(body.subarray(i * pieceLength, Math.min(size, (i + 1) * pieceLength)));
            await fh.write(piece, 0, piece.length, i * pieceLength);
            written.add(i);
            let prefix = 0;
            while (written.has(prefix)) prefix++;
            hasher.wrote(i * pieceLength, piece, Math.min(size, prefix * pieceLength));
            piece.fill(0xee); // the caller reuses its buffer at once: what was hashed must not change
            if (pauses[w % pauses.length]) await turn();
          }
          assert.equal(await hasher.digest(size), sha(body), `size ${size}, pieces of ${pieceLength}, order ${order}`);
        } finally {
          await hasher.close();
          await fh.close();
        }
      });
      await Promise.all(runs);
    },
  ), { numRuns: 40 });
});

test('a digest of bytes that are not in the file is undefined, not a wrong hash; no hashing thread is started', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'short');
  await writeFile(file, bytes(1000, 73));
  const hasher = new PieceHasher(file);
  try {
    assert.equal(await hasher.digest(5000), undefined);
  } finally {
    await hasher.close();
  }
  // The segmented path hashes on the main thread (the thread's 20 MB bought it no time).
  const threads = readdirSync('/proc/self/task').filter((tid) => readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim() === HASH_THREAD_NAME);
  assert.deepEqual(threads, []);
});
