// Blame when two liars take part: the stress harness (test/stress/) found fetches that named one liar
// and not the other, whose wrong opinions had been read while the first was found. Once the file
// verifies, every opinion that differs from the verified bytes is a lie and names its source.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { assumptions, picksUnder, wrongOpinions, type Dispute } from '../../src/fetch/liars.ts';
import { LIMITS } from '../../src/limits.ts';

const PAIRS = LIMITS.blamePairSources;

test('a second liar that only gave opinions (the same lie as the first) is named too', () => {
  // Piece 0 came from liar A; B (also lying, identically) and honest H gave opinions.
  const disputes: Dispute<number, string>[] = [{ piece: 0, opinions: [{ st: 'A', sha: 'bad' }, { st: 'B', sha: 'bad' }, { st: 'H', sha: 'good' }] }];
  const suspects = assumptions(disputes)[0]!;
  assert.deepEqual([...suspects], ['A']);
  const chosen = picksUnder(disputes, suspects);
  assert.equal(chosen[0]!.pick.st, 'H', 'under "A lied" the file takes H\'s bytes, and verifies');
  assert.deepEqual([...wrongOpinions(disputes, chosen).keys()].sort(), ['A', 'B']);
});

test('two liars that both served pieces of the file: the pair is assumed, and the file repaired', () => {
  const disputes: Dispute<number, string>[] = [
    { piece: 0, opinions: [{ st: 'A', sha: 'a0' }, { st: 'H', sha: 't0' }, { st: 'B', sha: 'b0' }] },
    { piece: 1, opinions: [{ st: 'B', sha: 'b1' }, { st: 'A', sha: 'a1' }, { st: 'H', sha: 't1' }] },
  ];
  const right = assumptions(disputes, undefined, PAIRS).find((s) => picksUnder(disputes, s).every(({ piece, pick }) => pick.sha === `t${piece}`));
  assert.deepEqual([...right!].sort(), ['A', 'B']);
  assert.deepEqual([...wrongOpinions(disputes, picksUnder(disputes, right!)).keys()].sort(), ['A', 'B']);
});

test('property: with two liars, once every piece is right, exactly the sources that gave a wrong opinion are named, never an honest one', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 3, max: 5 }),
      fc.array(fc.record({ from: fc.nat(4), askFirst: fc.nat(4), sameLie: fc.boolean() }), { minLength: 1, maxLength: 10 }),
      (sources, pieces) => {
        const names = Array.from({ length: sources }, (_, i) => `s${i}`);
        const liars = new Set([names[0]!, names[1]!]);
        const disputes: Dispute<number, string>[] = [];
        pieces.forEach((p, i) => {
          const say = (who: string) => (liars.has(who) ? (p.sameLie ? `lie${i}` : `lie${i}-${who}`) : `t${i}`);
          const from = names[p.from % sources]!;
          const rest = names.filter((n) => n !== from);
          const others = [...rest.slice(p.askFirst % rest.length), ...rest.slice(0, p.askFirst % rest.length)].slice(0, 2);
          const opinions = [from, ...others].map((st) => ({ st, sha: say(st) }));
          if (new Set(opinions.map((o) => o.sha)).size > 1) disputes.push({ piece: i, opinions });
        });
        if (disputes.length === 0) return;
        const right = assumptions(disputes, undefined, PAIRS).map((s) => picksUnder(disputes, s)).find((c) => c.every(({ piece, pick }) => pick.sha === `t${piece}`));
        // Every piece has an honest opinion (3 opinions, 2 liars at most) unless both liars and nobody else were asked.
        const repairable = disputes.every((d) => d.opinions.some((o) => !liars.has(o.st)));
        if (repairable) assert.ok(right, 'some assumption (a pair, for two liars that both served pieces) repairs every piece');
        if (!right) return;
        const named = new Set(wrongOpinions(disputes, right).keys());
        const lied = new Set(disputes.flatMap((d) => d.opinions.filter((o) => o.sha !== `t${d.piece}`).map((o) => o.st)));
        assert.deepEqual([...named].sort(), [...lied].sort());
        for (const n of named) assert.ok(liars.has(n), `honest ${n} named`);
      },
    ),
    { numRuns: 500 },
  );
});
