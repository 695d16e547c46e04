// src/fetch/backoff.ts, pure: the jittered exponential delay and the Retry-After hint, as properties
// over seeded inputs, and RFC 9110 §5.6.7's three date forms (others refused).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { backoffDelay, parseRetryAfter } from '../../src/fetch/backoff.ts';

const SEED = 20_012_002;

test('backoffDelay: within [ceiling/2, ceiling], never over the cap, the ceiling doubling per attempt', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 2000 }),
      fc.integer({ min: 1, max: 60_000 }),
      fc.integer({ min: 1, max: 3_600_000 }),
      fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
      (attempt, base, max, random) => {
        const ceiling = Math.min(max, base * 2 ** attempt);
        const d = backoffDelay(attempt, base, max, random);
        assert.ok(Number.isInteger(d), `integer: ${d}`);
        assert.ok(d >= Math.floor(ceiling / 2) && d <= ceiling, `${d} within [${ceiling / 2}, ${ceiling}]`);
        assert.ok(d <= max);
        // The same draw one attempt later never waits less.
        assert.ok(backoffDelay(attempt + 1, base, max, random) >= d);
      },
    ),
    { seed: SEED, numRuns: 1000 },
  );
});

test('backoffDelay: the jitter spreads retries (not all clients at the same moment)', () => {
  assert.equal(backoffDelay(3, 100, 1e6, 0), 400);
  assert.equal(backoffDelay(3, 100, 1e6, 0.999999), 800);
  assert.equal(backoffDelay(40, 100, 30_000, 0.5), 22_500);
});

test('parseRetryAfter: delay-seconds and the three HTTP-date forms, as milliseconds from now', () => {
  const now = Date.UTC(1994, 10, 6, 8, 49, 0);
  assert.equal(parseRetryAfter('120', now), 120_000);
  assert.equal(parseRetryAfter(' 0 ', now), 0);
  assert.equal(parseRetryAfter('Sun, 06 Nov 1994 08:49:37 GMT', now), 37_000);
  assert.equal(parseRetryAfter('Sunday, 06-Nov-94 08:49:37 GMT', now), 37_000);
  assert.equal(parseRetryAfter('Sun Nov  6 08:49:37 1994', now), 37_000, 'asctime is GMT, whatever the local zone');
  assert.equal(parseRetryAfter('Sun, 06 Nov 1994 08:48:00 GMT', now), 0, 'a date in the past: at once');
});

test('parseRetryAfter: anything else is no hint', () => {
  for (const v of [undefined, '', '1', '-5', '1.5', '3 apples', '2026-12-02T10:00:00Z', 'Sun, 06 Nov 1994 08:49:37 PST', 'tomorrow', 'Sun, 6 Nov 1994 08:49:37 GMT']) {
    // '1' and '-5' are delay-seconds or nothing: '1' is one second, '-5' is nothing.
    if (v === '1') assert.equal(parseRetryAfter(v, 0), 1000);
    else assert.equal(parseRetryAfter(v, 0), undefined, String(v));
  }
  fc.assert(
    fc.property(fc.string({ maxLength: 40 }), (s) => {
      const r = parseRetryAfter(s, 0);
      assert.ok(r === undefined || (Number.isFinite(r) && r >= 0), `${JSON.stringify(s)} -> ${r}`);
    }),
    { seed: SEED, numRuns: 2000 },
  );
});
