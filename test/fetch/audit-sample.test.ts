// Which files an audit compares (src/fetch/audit.ts sampleFiles): a fixed count, never none.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sampleFiles } from '../../src/fetch/audit.ts';
import { withSeed } from '../helpers/prng.ts';

test('sampleFiles: ceil(fraction x n) files, at least one, distinct, in manifest order', async (t) => {
  const files = ['a', 'b', 'c', 'd'];
  // The draw that made coin-per-file sampling compare nothing (every coin above 0.5): 2 of 4 here.
  assert.deepEqual(sampleFiles(files, 0.5, () => 0.99), ['a', 'd']);
  assert.deepEqual(sampleFiles(files, 0.01, () => 0.99), ['d']);
  assert.deepEqual(sampleFiles(files, 1, () => 0), files);
  assert.deepEqual(sampleFiles([], 0.5, () => 0), []);
  await withSeed(t, (rng) => {
    for (let run = 0; run < 500; run++) {
      const n = rng.between(1, 40);
      const items = Array.from({ length: n }, (_, i) => i);
      const fraction = rng.between(1, 100) / 100;
      const got = sampleFiles(items, fraction, () => rng.next() / 0x1_0000_0000);
      assert.equal(got.length, Math.max(1, Math.ceil(fraction * n)), `n ${n} fraction ${fraction}`);
      assert.deepEqual(got, [...new Set(got)].sort((a, b) => a - b), 'distinct, in order');
    }
  });
});
