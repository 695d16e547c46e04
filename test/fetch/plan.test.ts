// Source planning (src/fetch/plan.ts), pure: the order of sources for every policy, and the rule that a
// mirror with a recorded lie (weight 0, a last resort) goes after every source without one, always
// (issue 11, item 9), as properties over seeded random mirror sets, weights and random streams.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { POLICIES, planSources, weightedOrder, type Mirror } from '../../src/fetch/plan.ts';
import { mirrorWeight, type MirrorRecord } from '../../src/fetch/reputation.ts';
import type { Distfile } from '../../src/manifest/distfile.ts';

// Fixed seeds: a failure repeats exactly (fast-check prints the seed and the counterexample).
const SEED = 20_011_009;

/** A deterministic uniform generator in [0, 1) from a list of draws (cycled). */
const stream = (draws: number[]) => {
  let i = 0;
  return () => draws[i++ % draws.length]!;
};

const record = (over: Partial<MirrorRecord>): MirrorRecord => ({ mirror: 'm', files: 10, bytes: 1e8, ms: 1e4, failures: 0, lies: 0, lastSeen: 0, ...over });

const d: Distfile = { name: 'f.tar.gz', sha256: 'ab'.repeat(32), urls: ['http://127.0.0.1:1/up/f.tar.gz'] };

test('weightedOrder: items of weight 0 come after every item of positive weight, whatever the draws', () => {
  fc.assert(
    fc.property(
      fc.array(fc.oneof(fc.constant(0), fc.double({ min: 1e-12, max: 1e6, noNaN: true })), { minLength: 1, maxLength: 12 }),
      fc.array(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), { minLength: 1, maxLength: 32 }),
      (weights, draws) => {
        const items = weights.map((w, i) => ({ i, w }));
        const out = weightedOrder(items, (x) => x.w, stream(draws));
        assert.deepEqual([...out].sort((a, b) => a.i - b.i), items, 'a permutation');
        const firstBarred = out.findIndex((x) => !(x.w > 0));
        if (firstBarred >= 0) assert.ok(out.slice(firstBarred).every((x) => !(x.w > 0)), JSON.stringify(out));
      },
    ),
    { seed: SEED, numRuns: 500 },
  );
});

test('planSources: a mirror with a recorded lie goes after every source without one, for every policy', () => {
  fc.assert(
    fc.property(
      fc.array(fc.record({ lies: fc.nat(3), failures: fc.nat(50), files: fc.nat(50), known: fc.boolean() }), { minLength: 1, maxLength: 10 }),
      fc.constantFrom(...POLICIES),
      fc.array(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), { minLength: 1, maxLength: 32 }),
      (specs, policy, draws) => {
        const mirrors: Mirror[] = specs.map((_, i) => ({ kind: 'http', base: `http://127.0.0.1:${1000 + i}/m` }));
        const records = new Map(specs.map((s, i) => [mirrors[i]!, s.known ? record({ lies: s.lies, failures: s.failures, files: s.files }) : undefined]));
        const liar = (label: string) => (records.get(mirrors.find((m) => m.kind === 'http' && m.base === label)!)?.lies ?? 0) > 0;
        const plan = planSources(d, { mirrors, policy, offline: false, random: stream(draws), mirrorWeight: (m) => mirrorWeight(records.get(m)) });
        const firstLast = plan.findIndex((s) => s.lastResort);
        for (const [i, s] of plan.entries()) {
          const isLiar = s.role === 'mirror' && liar(s.label);
          assert.equal(Boolean(s.lastResort), isLiar, `${s.label}: marked a last resort exactly when it has a recorded lie`);
          if (firstLast >= 0 && i >= firstLast) assert.ok(s.lastResort, `${plan.map((x) => `${x.label}${x.lastResort ? '!' : ''}`).join(' ')}: nothing after a last resort but last resorts`);
        }
        const expectMirrors = policy !== 'upstream-only';
        assert.equal(plan.filter((s) => s.role === 'mirror').length, expectMirrors ? mirrors.length : 0);
      },
    ),
    { seed: SEED, numRuns: 500 },
  );
});

test('the rule can fail: with a tiny positive weight instead of 0, a liar sometimes goes first', () => {
  // What the order did before (weight 0.001): not "never". The property above holds only because a
  // recorded lie now gives weight 0.
  const mirrors: Mirror[] = [{ kind: 'http', base: 'http://127.0.0.1:1/liar' }, { kind: 'http', base: 'http://127.0.0.1:1/slow' }];
  let seed = 7;
  const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
  let liarFirst = 0;
  for (let i = 0; i < 20_000; i++) {
    const plan = planSources(d, { mirrors, policy: 'mirrors-only', offline: false, random, mirrorWeight: (m) => (m.kind === 'http' && m.base.endsWith('/liar') ? 0.001 : 0.25) });
    if (plan[0]!.label.endsWith('/liar')) liarFirst++;
  }
  assert.ok(liarFirst > 0, 'a small weight is only a small chance');
  assert.equal(mirrorWeight(record({ lies: 1 })), 0);
  for (let i = 0; i < 2_000; i++) {
    const plan = planSources(d, { mirrors, policy: 'mirrors-only', offline: false, random, mirrorWeight: (m) => (m.kind === 'http' && m.base.endsWith('/liar') ? mirrorWeight(record({ lies: 1 })) : 0.25) });
    assert.ok(plan[0]!.label.endsWith('/slow'));
  }
});

test('policies: mirrors or upstream first, only one kind, offline keeps local mirrors only', () => {
  const mirrors: Mirror[] = [{ kind: 'http', base: 'http://127.0.0.1:1/a' }, { kind: 'dir', dir: '/srv/mirror' }];
  const plan = (policy: (typeof POLICIES)[number], offline = false) => planSources(d, { mirrors, policy, offline, random: () => 0.5 }).map((s) => s.role);
  assert.deepEqual(plan('mirrors-first'), ['mirror', 'mirror', 'upstream']);
  assert.deepEqual(plan('upstream-first'), ['upstream', 'mirror', 'mirror']);
  assert.deepEqual(plan('upstream-only'), ['upstream']);
  assert.deepEqual(plan('mirrors-only'), ['mirror', 'mirror']);
  assert.deepEqual(planSources(d, { mirrors, policy: 'mirrors-first', offline: true, random: () => 0.5 }).map((s) => s.label), ['/srv/mirror']);
  // A last resort goes after upstream too, under mirrors-first.
  const marked = planSources(d, { mirrors, policy: 'mirrors-first', offline: false, random: () => 0.5, mirrorWeight: (m) => (m.kind === 'dir' ? 0 : 1) });
  assert.deepEqual(marked.map((s) => [s.role, Boolean(s.lastResort)]), [['mirror', false], ['upstream', false], ['mirror', true]]);
});
