// Piece maps on a worker thread: the same as on the main thread, and a failure is an error, not a hang.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { pieceMapOfFile } from '../../src/fetch/piece-map.ts';
import { pieceMapInThread } from '../../src/mirror/piece-layer-thread.ts';
import { tempDir } from '../helpers/run.ts';

test('pieceMapInThread: the map of pieceMapOfFile, several files at once; a missing file or a bad piece length rejected', async (t) => {
  const dir = await tempDir(t);
  const sizes = [0, 1, 16_384, 3 * (1 << 20) + 12_345, 5 * (1 << 20)];
  const files = await Promise.all(sizes.map(async (n, i) => {
    const f = path.join(dir, `f${i}`);
    await writeFile(f, randomBytes(n));
    return f;
  }));
  const inThreads = await Promise.all(files.map((f) => pieceMapInThread(f, 1 << 20)));
  for (const [i, f] of files.entries()) assert.deepEqual(inThreads[i], await pieceMapOfFile(f, 1 << 20), `file of ${sizes[i]} bytes`);
  assert.ok(inThreads[3]!.layer.length === 4 && inThreads[3]!.layer.every((h) => h.length === 32));
  await assert.rejects(pieceMapInThread(path.join(dir, 'missing'), 1 << 20), (e: Error & { code?: string }) => e.code === 'E_IO' && /missing: ENOENT/.test(e.message));
  await assert.rejects(pieceMapInThread(files[1]!, 1000), (e: Error & { code?: string }) => e.code === 'E_USAGE' && /power of two/.test(e.message));
});
