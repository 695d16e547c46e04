// src/archive/tar/writer.ts: staging buffers handed back by the consumer are filled again instead of new
// ones being allocated (docs/BENCHMARKS.md, bench:archive, issue 14).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TarBlocker } from '../../src/archive/tar/writer.ts';

/** 2 MiB of 1 KiB data entries (each a whole number of blocks, so no padding), then the chunks made. */
function fill(out: TarBlocker, round: number): Buffer[] {
  for (let i = 0; i < 2048; i++) out.data(Buffer.alloc(1024, (round * 7 + i) & 0xff));
  return out.take(true);
}

test('a 1 MiB batch written while the next is filled: every 64 KiB staging buffer handed back is filled again, with the new bytes', () => {
  const out = new TarBlocker(64 * 1024);
  const first = fill(out, 0);
  assert.equal(first.length, 32);
  const lent = new Set(first.map((c) => c.buffer));
  for (const c of first) out.recycle(c);
  const second = fill(out, 1);
  assert.equal(second.length, 32);
  // The staging buffer in use when the first round ended was never lent: the first chunk of round two.
  const reused = second.filter((c) => lent.has(c.buffer)).length;
  assert.ok(reused >= 31, `only ${reused} of 32 chunks reused a buffer handed back`);
  const bytes = Buffer.concat(second);
  for (let i = 0; i < 2048; i++) assert.equal(bytes[i * 1024], (7 + i) & 0xff, `entry ${i} holds its own bytes`);
});

test('a buffer handed back twice, or one never lent, is not taken into the spare list', () => {
  const out = new TarBlocker(64 * 1024);
  const [a] = fill(out, 0);
  out.recycle(a!);
  out.recycle(a!);
  out.recycle(Buffer.alloc(64 * 1024));
  const again = fill(out, 1);
  assert.equal(again.filter((c) => c.buffer === a!.buffer).length, 1);
});
