// What bench:serve counts from a wrk run: only successful responses of the expected size. A server that
// failed fast, cut bodies short or ignored Range must not score.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { countWrkRun, parseWrkSummary, wrkScript, type WrkRun } from '../../../bench/lib/wrk.ts';

const MiB = 1 << 20;
const run = (over: Partial<WrkRun>): WrkRun => ({ requests: 1000, bytes: 1000 * (MiB + 300), seconds: 3, p99ms: 5, statusErrors: 0, socketErrors: 0, ...over });

test('an honest run counts its bodies, not its heads, partial responses at the end allowed', () => {
  const c = countWrkRun(run({}), MiB, 16);
  assert.deepEqual(c.problems, []);
  assert.equal(c.good, 1000);
  assert.equal(c.goodBytes, 1000 * MiB);
  // 16 connections each cut half-way through one more response when the time was up.
  assert.deepEqual(countWrkRun(run({ bytes: 1000 * (MiB + 300) + 16 * (MiB / 2) }), MiB, 16).problems, []);
});

test('a server that ignores Range (whole 1 GiB files for 1 MiB ranges) does not count', () => {
  const c = countWrkRun(run({ requests: 10, bytes: 10 * 1024 * MiB }), MiB, 16);
  assert.equal(c.good, 0);
  assert.match(c.problems.join(), /more than asked for/);
});

test('failed statuses, socket errors and short bodies do not count', () => {
  assert.match(countWrkRun(run({ statusErrors: 3 }), MiB, 16).problems.join(), /status 400 or more/);
  assert.match(countWrkRun(run({ socketErrors: 1 }), MiB, 16).problems.join(), /errors or timeouts/);
  assert.match(countWrkRun(run({ bytes: 1000 * MiB - 1 }), MiB, 16).problems.join(), /short bodies/);
  // A server answering 503 at once: many tiny responses.
  const busy = countWrkRun(run({ requests: 100_000, statusErrors: 100_000, bytes: 100_000 * 120 }), MiB, 16);
  assert.equal(busy.good, 0);
});

test('the summary line the script prints is parsed back', () => {
  assert.match(wrkScript(), /done = function/);
  assert.deepEqual(parseWrkSummary('noise\nBENCH 10 20 3000000 1500 2 1\n'), { requests: 10, bytes: 20, seconds: 3, p99ms: 1.5, statusErrors: 2, socketErrors: 1 });
  assert.equal(parseWrkSummary('wrk: no summary'), undefined);
});
