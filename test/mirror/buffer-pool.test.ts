// The read-buffer pool of `serve` and the send-progress decision, with the clock passed in: what one
// client may hold, degrading to small buffers, waiting, buffers whose write outlived the connection,
// and memory given back after a burst.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BufferPool, type BufferPoolLimits } from '../../src/mirror/file-body.ts';
import { sendState } from '../../src/net/send-watch.ts';

const KiB = 1024;
const L: BufferPoolLimits = { largeBytes: 64 * KiB, smallBytes: 4 * KiB, maxBytes: 512 * KiB, reserveBytes: 128 * KiB, clientBytes: 192 * KiB, clientSmallBytes: 8 * KiB, floorBytes: 128 * KiB, idleMs: 1000 };

test('buffer pool: a client past its share gets small buffers, then waits for its own; others still get large ones', async () => {
  const pool = new BufferPool(L);
  const mine = [0, 1, 2, 3, 4].map(() => pool.tryTake('a', 0)!);
  assert.deepEqual(mine.map((b) => b.length), [64 * KiB, 64 * KiB, 64 * KiB, 4 * KiB, 4 * KiB]);
  assert.equal(pool.tryTake('a', 0), undefined, 'a holds its whole share and small allowance: nothing more');
  assert.equal(pool.tryTake('b', 0)!.length, 64 * KiB, 'b is not held back by a');
  let got: Buffer | undefined;
  const waiting = pool.take('a', 0).then((b) => (got = b));
  await Promise.resolve();
  assert.equal(got, undefined, 'a waits');
  pool.give('a', mine[0]!, 1);
  await waiting;
  assert.equal(got!.length, 4 * KiB, 'a\'s waiting response goes on once its own buffer is back (small: its large share is still held)');
});

test('buffer pool: when large buffers run out, the reserve lends small ones; a newcomer always gets one', () => {
  const pool = new BufferPool({ ...L, clientBytes: 1024 * KiB });
  const large: Buffer[] = [];
  for (let b = pool.tryTake('a', 0); b !== undefined && b.length === L.largeBytes; b = pool.tryTake('a', 0)) large.push(b);
  assert.equal(large.length, (L.maxBytes - L.reserveBytes) / L.largeBytes, 'large buffers up to the reserve');
  assert.equal(pool.tryTake('b', 0, true), undefined, 'no read-ahead from the reserve');
  assert.equal(pool.tryTake('b', 0)!.length, L.smallBytes, 'a small one instead of waiting');
  assert.ok(pool.lent() <= L.maxBytes);
});

test('buffer pool: a buffer whose connection closed stops counting at once and is reused only once its write is over', () => {
  const pool = new BufferPool(L);
  const b = pool.tryTake('a', 0)!;
  pool.release('a', b.length, 0);
  assert.equal(pool.lent('a'), 0);
  assert.equal(pool.idleBytes, 0, 'not reusable yet: a write may still read it');
  pool.late(b);
  assert.equal(pool.idleBytes, L.largeBytes);
  assert.equal(pool.tryTake('c', 0), b, 'reused once over');
});

test('buffer pool: idle buffers beyond the floor are freed (detached) once idle for idleMs, not before', () => {
  const pool = new BufferPool(L);
  const bufs = [0, 1, 2, 3, 4, 5].map((i) => pool.tryTake(`c${i}`, 0)!);
  for (const [i, b] of bufs.entries()) pool.give(`c${i}`, b, 10);
  assert.equal(pool.idleBytes, 6 * L.largeBytes);
  pool.trim(500);
  assert.equal(pool.idleBytes, 6 * L.largeBytes, 'still within idleMs of the burst');
  pool.trim(1000);
  assert.ok(pool.idleBytes <= L.floorBytes);
  assert.equal(bufs.filter((b) => b.length === 0).length, 4, 'the freed ones are detached: their memory is gone now');
});

test('send progress: an empty queue or any change is progress; the same bytes queued past the timeout is a stall', () => {
  const at = (queued: number, dispatched: number) => ({ queued, dispatched });
  assert.equal(sendState(at(100, 5), at(0, 5), 0, 99_000, 1000), 'moved', 'nothing queued: we are the slow side');
  assert.equal(sendState(at(100, 5), at(90, 5), 0, 99_000, 1000), 'moved', 'the kernel took bytes');
  assert.equal(sendState(at(100, 5), at(100, 6), 0, 99_000, 1000), 'moved', 'a new write after the last completed');
  assert.equal(sendState(at(100, 5), at(100, 5), 0, 999, 1000), 'waiting');
  assert.equal(sendState(at(100, 5), at(100, 5), 0, 1000, 1000), 'stalled');
});
