// Piece maps on worker threads: the same as on the main thread, threads reused across files, and a
// failure is an error for its file alone, not a hang.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { threadId } from 'node:worker_threads';
import { pieceMapOfFile } from '../../src/fetch/piece-map.ts';
import { PieceLayerThreads } from '../../src/mirror/piece-layer-thread.ts';
import { tempDir } from '../helpers/run.ts';

test('PieceLayerThreads: the map of pieceMapOfFile, several files at once on two threads; a missing file or a bad piece length rejected, and the threads go on', async (t) => {
  const dir = await tempDir(t);
  const sizes = [0, 1, 16_384, 3 * (1 << 20) + 12_345, 5 * (1 << 20)];
  const files = await Promise.all(sizes.map(async (n, i) => {
    const f = path.join(dir, `f${i}`);
    await writeFile(f, randomBytes(n));
    return f;
  }));
  const threads = new PieceLayerThreads(2);
  t.after(() => threads.close());
  const inThreads = await Promise.all(files.map((f) => threads.pieceMap(f, 1 << 20)));
  for (const [i, f] of files.entries()) assert.deepEqual(inThreads[i], await pieceMapOfFile(f, 1 << 20), `file of ${sizes[i]} bytes`);
  assert.ok(inThreads[3]!.layer.length === 4 && inThreads[3]!.layer.every((h) => h.length === 32));
  await assert.rejects(threads.pieceMap(path.join(dir, 'missing'), 1 << 20), (e: Error & { code?: string }) => e.code === 'E_IO' && /missing: ENOENT/.test(e.message));
  await assert.rejects(threads.pieceMap(files[1]!, 1000), (e: Error & { code?: string }) => e.code === 'E_USAGE' && /power of two/.test(e.message));
  assert.deepEqual(await threads.pieceMap(files[4]!, 1 << 20), inThreads[4], 'a thread that answered an error takes the next file');
  // Closed: what was waiting is refused, nothing hangs.
  const waiting = [threads.pieceMap(files[4]!, 1 << 20), threads.pieceMap(files[3]!, 1 << 20), threads.pieceMap(files[2]!, 1 << 20)];
  const outcomes = Promise.allSettled(waiting);
  await threads.close();
  const settled = await outcomes;
  assert.ok(settled.every((s) => s.status === 'rejected' && (s.reason as { code?: string }).code === 'E_INTERNAL'), JSON.stringify(settled.map((s) => s.status)));
  await assert.rejects(threads.pieceMap(files[1]!, 1 << 20), /closed/);
});

test('PieceLayerThreads: files after the first reuse the threads started (no thread per file)', async (t) => {
  const dir = await tempDir(t);
  const files = await Promise.all(Array.from({ length: 6 }, async (_, i) => {
    const f = path.join(dir, `g${i}`);
    await writeFile(f, randomBytes(2 * (1 << 20) + i));
    return f;
  }));
  const threads = new PieceLayerThreads(2);
  t.after(() => threads.close());
  // Worker thread ids are never reused within a process: count the threads this pool started.
  const { Worker } = await import('node:worker_threads');
  const probe = new Worker('', { eval: true });
  const before = probe.threadId;
  await probe.terminate();
  await Promise.all(files.map((f) => threads.pieceMap(f, 1 << 20)));
  for (const f of files) await threads.pieceMap(f, 1 << 20);
  const probe2 = new Worker('', { eval: true });
  const after = probe2.threadId;
  await probe2.terminate();
  assert.equal(after - before - 1, 2, `threads started for 12 files: ${after - before - 1} (main thread ${threadId})`);
});
