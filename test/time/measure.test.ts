// The judgement (src/time/measure.ts), property-tested on simulated chains: honest servers answer with
// the true time (whole seconds, RADI 3) at some instant between send and receive, liars with an offset
// of an hour or more either way; the sequence is asked twice in the same order, as the client does.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { isSourcemeshError } from '../../src/errors.ts';
import { causalBreaks, judge, type Observation } from '../../src/time/measure.ts';

const chainArb = fc.record({
  base: fc.integer({ min: 1_700_000_000_000, max: 1_900_000_000_000 }),
  honest: fc.integer({ min: 2, max: 6 }),
  liars: fc.array(fc.integer({ min: 3600, max: 86_400 * 3 }).chain((s) => fc.constantFrom(s, -s)), { maxLength: 3 }),
  delays: fc.array(fc.tuple(fc.integer({ min: 0, max: 50 }), fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 0, max: 20 })), { minLength: 40, maxLength: 40 }),
  order: fc.integer({ min: 0, max: 1000 }),
});

type Chain = typeof chainArb extends fc.Arbitrary<infer R> ? R : never;

function simulate(c: Chain): { chain: Observation[]; at: number; names: { honest: string[]; liars: string[] } } {
  const servers = [
    ...Array.from({ length: c.honest }, (_, i) => ({ name: `h${i}`, offset: 0 })),
    // Liars apart from each other by two hours or more: they do not collude (colluders reaching the quorum
    // are believed: that is what a k-of-n policy trusts).
    ...c.liars.map((o, i) => ({ name: `l${i}`, offset: (o + Math.sign(o) * i * 7200) * 1000 })),
  ];
  // A deterministic shuffle of the order the servers are asked in.
  const order = servers.map((s, i) => ({ s, k: (i * 7919 + c.order) % 1009 })).sort((a, b) => a.k - b.k).map((x) => x.s);
  const chain: Observation[] = [];
  let t = 0;
  let d = 0;
  for (let round = 0; round < 2; round++) {
    for (const s of order) {
      const [rtt, where, gap] = c.delays[d++ % c.delays.length]!;
      const sent = t;
      const received = t + rtt;
      const processed = sent + where * rtt;
      chain.push({ server: s.name, sent, received, midpoint: Math.floor((c.base + processed + s.offset) / 1000), radius: 3 });
      t = received + gap;
    }
  }
  return { chain, at: t, names: { honest: servers.filter((s) => s.offset === 0).map((s) => s.name), liars: servers.filter((s) => s.offset !== 0).map((s) => s.name) } };
}

test('honest servers agree on an interval holding the true time; every liar is named with a causal-order break', () => {
  fc.assert(fc.property(chainArb, (c) => {
    const { chain, at, names } = simulate(c);
    const quorum = Math.max(names.liars.length + 1, Math.ceil(names.honest.length / 2));
    if (quorum > names.honest.length) return;
    const j = judge(chain, quorum, at);
    assert.deepEqual([...j.agreed].sort(), [...names.honest].sort());
    assert.deepEqual(j.liars.map((l) => l.server).sort(), [...names.liars].sort());
    for (const l of j.liars) assert.ok(l.proof.length > 0, `${l.server} has a break in the chain`);
    const truth = c.base + at;
    assert.ok(j.earliest <= truth && truth <= j.latest, `${j.earliest} <= ${truth} <= ${j.latest}`);
    assert.ok(j.latest - j.earliest <= 7000 + 100, 'about 2 RADI wide at most');
  }), { numRuns: 300 });
});

test('liars that outnumber the quorum are refused, never believed', () => {
  fc.assert(fc.property(chainArb, (c) => {
    const { chain, at, names } = simulate(c);
    if (names.liars.length === 0) return;
    // A quorum no group of honest servers can reach.
    try {
      judge(chain, names.honest.length + 1, at);
      assert.fail('judged without a quorum');
    } catch (err) {
      assert.ok(isSourcemeshError(err, 'E_POLICY'), String(err));
    }
  }), { numRuns: 200 });
  // Two groups that each reach the quorum: nothing says which is honest.
  const two: Observation[] = ['a', 'b', 'c', 'd'].map((server, i) => ({ server, sent: i, received: i + 1, midpoint: i < 2 ? 1000 : 9000, radius: 3 }));
  assert.throws(() => judge(two, 2, 10), (e) => isSourcemeshError(e, 'E_POLICY') && /two groups/.test(e.message));
  assert.deepEqual(causalBreaks(two), []);
});
