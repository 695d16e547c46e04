// The harness itself: a small real network in namespaces (2 mirrors, one of which starts lying, 2
// clients). One client is broken on purpose (it skips verification: plain downloads from each mirror in
// turn, exported as they came); the checker must fail on it, naming that client and only that client,
// while the real `fetch` beside it keeps every promise under the same liar. Needs root (ip netns).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { tempDir } from '../helpers/run.ts';
import { namespaces } from '../helpers/netns.ts';
import { runStress } from './harness.ts';

test('a client that skips verification makes the checker fail; the real fetch beside it does not', { timeout: 240_000 }, async (t) => {
  assert.equal(process.getuid?.(), 0, 'the stress harness needs root for network namespaces');
  const r = await runStress({ mirrors: 2, clients: 2, durationMs: 20_000, seed: 20, faults: ['liar'], concurrency: 2, cli: 'head', brokenClient: 'c1', out: await tempDir(t), log: (l) => t.diagnostic(l) });
  t.diagnostic(r.report);
  assert.equal(r.result.ok, false, 'the checker passed a run whose client exported unverified bytes');
  const exportsBroken = r.result.violations.filter((v) => v.invariant === 'exports');
  assert.ok(exportsBroken.length > 0, 'no export violation');
  for (const v of r.result.violations) assert.match(v.message, /\bc1\b/, `a violation not about the broken client: ${v.message}`);
  assert.ok(r.result.figures.liesCaught > 0, 'the real fetch caught no lie: the liar never lied to it');
  assert.ok(r.result.figures.fetches > r.result.figures.fetchesExcused);
  // Torn down: no namespace of the run is left, nor its work directory.
  assert.deepEqual(namespaces().filter((n) => n.includes(r.runId)), []);
  assert.equal(existsSync(`/tmp/sourcemesh-stress-${r.runId}`), false);
});
