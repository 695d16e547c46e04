// discover's query schedule (src/discovery/discover.ts queryTimes), RFC 6762 §5.2: the first query after
// its short delay, the second at least one second later, every interval after that at least twice the
// one before (here exactly, up to the hour the RFC caps it at), nothing after the timeout.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { queryTimes } from '../../src/discovery/discover.ts';

test('queries: the first at its delay, then gaps of 1 s doubling (at most an hour), all before the timeout', () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 120 }), fc.integer({ min: 1, max: 30 * 86_400_000 }), (first, timeoutMs) => {
    const at = queryTimes(first, timeoutMs);
    assert.equal(at.length > 0, first < timeoutMs);
    if (at.length === 0) return;
    assert.equal(at[0], first);
    assert.ok(at.every((x) => x < timeoutMs));
    for (let i = 1; i < at.length; i++) {
      const gap = at[i]! - at[i - 1]!;
      assert.equal(gap, i === 1 ? 1000 : Math.min((at[i - 1]! - at[i - 2]!) * 2, 3_600_000));
    }
    // The next one would have been at or after the timeout: none is left out.
    const last = at.length === 1 ? 1000 : Math.min((at.at(-1)! - at.at(-2)!) * 2, 3_600_000);
    assert.ok(at.at(-1)! + last >= timeoutMs);
  }));
});

test('a two-second browse asks at the delay and one second later; ten seconds: at 0, 1, 3 and 7 s', () => {
  assert.deepEqual(queryTimes(50, 2000), [50, 1050]);
  assert.deepEqual(queryTimes(0, 10_000), [0, 1000, 3000, 7000]);
});
