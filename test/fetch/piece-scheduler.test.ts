// The segmented scheduler's decisions (src/fetch/piece-scheduler.ts) and blame's assumptions
// (src/fetch/liars.ts), pure: driven here by a discrete-event simulation with seeded randomness (sources
// that are fast, slow, failing, ignoring Range, lying against a piece map, or last resorts), checking
// the rules at every decision and that every download ends.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { assumptions, picksUnder, type Dispute } from '../../src/fetch/liars.ts';
import { PieceScheduler, crossCheckSource, endGamePiece, hedgeTarget, type Attempt, type SourceState } from '../../src/fetch/piece-scheduler.ts';
import type { Source } from '../../src/fetch/plan.ts';

// Fixed seed: a failure repeats exactly (fast-check prints the seed and the smallest counterexample).
const SEED = 20_011_013;

type Kind = 'ok' | 'slow' | 'fails' | 'no-ranges' | 'lies';
interface SourceSpec {
  kind: Kind;
  lastResort: boolean;
  upstream: boolean;
  /** ms per piece. */
  speed: number;
}

const source = (i: number, spec: Pick<SourceSpec, 'lastResort' | 'upstream'>): Source => ({
  role: spec.upstream ? 'upstream' : 'mirror',
  label: `s${i}`,
  location: { type: 'http', url: `http://127.0.0.1:1/s${i}` },
  ...(spec.lastResort ? { lastResort: true as const } : {}),
});

const specArb = fc.record({
  kind: fc.constantFrom<Kind>('ok', 'ok', 'slow', 'fails', 'no-ranges', 'lies'),
  lastResort: fc.boolean(),
  upstream: fc.boolean(),
  speed: fc.integer({ min: 1, max: 50 }),
});

/**
 * Run a download of `pieces` pieces over `specs` with `segments` connections; every decision goes
 * through the scheduler and is checked against its rules. Returns how it ended.
 */
function simulate(specs: SourceSpec[], pieceCount: number, segments: number, jitter: number[]): { outcome: 'complete' | 'stuck'; sched: PieceScheduler; steps: number } {
  const pieceLength = 1000;
  const states = PieceScheduler.states(specs.map((s, i) => source(i, s)));
  const sched = new PieceScheduler(pieceCount * pieceLength - 7, pieceLength, states);
  const spec = new Map(states.map((st, i) => [st, specs[i]!]));
  // 'read': the attempt's bytes arrive (or it fails); 'check': they were checked (against a piece map:
  // that takes a while, and another copy may be accepted meanwhile).
  type Event = { at: number; seq: number; a: Attempt; phase: 'read' | 'check'; cancelled?: boolean };
  const writes = new Map<number, number>();
  const events: Event[] = [];
  let now = 0;
  let seq = 0;
  let idle = segments; // connections waiting for an attempt
  let j = 0;
  const rand = () => jitter[j++ % jitter.length]!;

  const check = (a: Attempt, before: { done: boolean; asked: boolean; inflight: number; checking: number; unassigned: boolean }) => {
    const { piece, state } = a;
    assert.ok(!before.done, 'a done piece is never assigned');
    assert.ok(!state.dropped && !state.noRanges, 'never to a dropped source or one that ignores Range');
    assert.ok(!before.asked, 'never twice to the same source for one piece');
    const usable = states.filter((s) => !s.dropped && !s.noRanges);
    if (state.source.lastResort) assert.ok(usable.every((s) => s.source.lastResort), 'a last resort only when nothing else is usable');
    if (a.endGame) {
      assert.ok(!before.unassigned, 'end game only once every piece is done or in flight');
      assert.equal(before.inflight, 1, 'a duplicate only of a piece in flight at exactly one source');
      assert.equal(before.checking, 0, 'no duplicate of a piece whose bytes arrived and are being checked');
    } else {
      assert.equal(before.inflight, 0, 'a first attempt is at a piece nobody works on');
      // Fewest attempts in flight among those that could take it.
      const eligible = sched.usable().filter((s) => s === state || !piece.askedOf.has(s));
      assert.ok(eligible.every((s) => s === state || s.active >= state.active - 1), 'the source with the fewest attempts in flight');
    }
    assert.ok(piece.inflight.size <= 2, 'at most two attempts at one piece');
  };

  let steps = 0;
  for (; steps < 100_000; steps++) {
    // Free connections take attempts.
    while (idle > 0) {
      const unassigned = sched.pieces.some((p) => !p.done && p.inflight.size === 0);
      const snapshot = new Map(sched.pieces.map((p) => [p, { done: p.done, inflight: p.inflight.size, checking: p.checking, asked: new Set(p.askedOf) }]));
      const a = sched.assign(now);
      if (!a) break;
      const b = snapshot.get(a.piece)!;
      check(a, { done: b.done, asked: b.asked.has(a.state), inflight: b.inflight, checking: b.checking, unassigned });
      idle--;
      const sp = spec.get(a.state)!;
      const ms = sp.kind === 'slow' ? sp.speed * 40 : sp.speed;
      events.push({ at: now + Math.max(1, Math.round(ms * (0.5 + rand()))), seq: seq++, a, phase: 'read' });
    }
    if (sched.complete()) return { outcome: 'complete', sched, steps };
    if (sched.stuck(false)) return { outcome: 'stuck', sched, steps };
    if (!events.length) {
      // Nothing in flight and nothing assignable yet: time passes (end game waits for a piece to age).
      assert.ok(idle > 0);
      now += 10;
      continue;
    }
    events.sort((x, y) => x.at - y.at || x.seq - y.seq);
    const e = events.shift()!;
    now = Math.max(now, e.at);
    const { a } = e;
    const kind = spec.get(a.state)!.kind;
    if (e.phase === 'check') {
      if (kind === 'lies') {
        sched.rejected(a, { source: a.state.source.label, code: 'E_CHECKSUM', message: 'bad piece' });
        sched.release(a);
        continue;
      }
      const from = a.piece.from;
      const losers = sched.accepted(a, a.piece.end - a.piece.start + 1, now - (a.piece.startedAt ?? now));
      if (losers) {
        for (const other of events) if (other.phase === 'read' && other.a.piece === a.piece && losers.includes(other.a.state)) other.cancelled = true;
        writes.set(a.piece.index, (writes.get(a.piece.index) ?? 0) + 1);
        assert.equal(writes.get(a.piece.index), 1, 'a piece is accepted and written once');
        sched.written(a.piece);
      } else {
        assert.equal(a.piece.from, from, 'a later copy does not replace the accepted one');
      }
      sched.release(a);
      continue;
    }
    idle++; // the connection is free once the bytes are read; checking goes on beside it
    if (e.cancelled) {
      sched.failed(a);
      continue;
    }
    if (kind === 'fails') {
      sched.failed(a, { source: a.state.source.label, code: 'E_NETWORK', message: 'reset' });
      continue;
    }
    if (kind === 'no-ranges') {
      sched.noRanges(a);
      continue;
    }
    if (!sched.arrived(a)) continue;
    events.push({ at: now + Math.round(20 * rand()), seq: seq++, a, phase: 'check' });
  }
  throw new Error(`no end after ${steps} steps`);
}

test('scheduler: every decision follows the rules, and a download with an honest source always completes', () => {
  fc.assert(
    fc.property(
      fc.array(specArb, { minLength: 1, maxLength: 6 }),
      fc.integer({ min: 1, max: 40 }),
      fc.integer({ min: 1, max: 8 }),
      fc.array(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), { minLength: 1, maxLength: 16 }),
      (specs, pieces, segments, jitter) => {
        const r = simulate(specs, pieces, segments, jitter);
        const honest = specs.some((s) => s.kind === 'ok' || s.kind === 'slow');
        if (honest) assert.equal(r.outcome, 'complete', `${JSON.stringify(specs)}: an honest source serves every piece`);
        if (r.outcome === 'complete') {
          for (const p of r.sched.pieces) {
            assert.ok(p.done && p.written && p.from, `piece ${p.index} done, written, with its source`);
            const kind = specs[r.sched.states.indexOf(p.from!)]!.kind;
            assert.ok(kind === 'ok' || kind === 'slow', `piece ${p.index} came from an honest source, not ${kind}`);
          }
        } else {
          assert.ok(r.sched.states.every((s) => s.dropped || s.noRanges), 'stuck only once every source is out');
        }
      },
    ),
    { seed: SEED, numRuns: 400 },
  );
});

test('scheduler: a recorded liar (last resort) gets no piece while an honest source works, and takes over when it drops out', () => {
  // Two sources: honest (slow) and a last resort. The last resort is never asked...
  const specs: SourceSpec[] = [{ kind: 'slow', lastResort: false, upstream: false, speed: 5 }, { kind: 'ok', lastResort: true, upstream: false, speed: 1 }];
  const r = simulate(specs, 20, 4, [0.5]);
  assert.equal(r.outcome, 'complete');
  assert.equal(r.sched.states[1]!.pieces, 0);
  assert.deepEqual([...new Set(r.sched.pieces.flatMap((p) => [...p.askedOf]))], [r.sched.states[0]]);
  // ...until every other source has failed.
  const r2 = simulate([{ kind: 'fails', lastResort: false, upstream: false, speed: 5 }, { kind: 'ok', lastResort: true, upstream: false, speed: 1 }], 20, 4, [0.5]);
  assert.equal(r2.outcome, 'complete');
  assert.equal(r2.sched.states[1]!.pieces, 20);
  // And the rule can fail: without the mark, the fast source takes most pieces.
  const r3 = simulate([{ kind: 'slow', lastResort: false, upstream: false, speed: 5 }, { kind: 'ok', lastResort: false, upstream: false, speed: 1 }], 20, 4, [0.5]);
  assert.ok(r3.sched.states[1]!.pieces > 10, `${r3.sched.states[1]!.pieces} pieces`);
});

test('end game: a piece in flight longer than twice the time a source takes per piece is duplicated, not sooner', () => {
  const states = PieceScheduler.states([source(0, { lastResort: false, upstream: false }), source(1, { lastResort: false, upstream: false })]);
  const sched = new PieceScheduler(2000, 1000, states);
  const a0 = sched.assign(0)!;
  const a1 = sched.assign(0)!;
  assert.deepEqual([a0.piece.index, a0.state.source.label, a1.piece.index, a1.state.source.label], [0, 's0', 1, 's1']);
  // s1 finishes piece 1 in 100 ms; piece 0 at s0 is then duplicated to s1 only after 200 ms.
  assert.ok(sched.arrived(a1));
  assert.deepEqual(sched.accepted(a1, 1000, 100), []);
  sched.written(a1.piece);
  sched.release(a1);
  assert.equal(sched.assign(150), undefined, 'not yet');
  assert.equal(endGamePiece(sched.pieces, states[1]!, states, 200), undefined, 'not at exactly twice');
  const dup = sched.assign(201)!;
  assert.deepEqual([dup.piece.index, dup.state.source.label, dup.endGame], [0, 's1', true]);
  // The duplicate wins: the first attempt is to be cancelled, and its late bytes are not used.
  assert.ok(sched.arrived(dup));
  assert.deepEqual(sched.accepted(dup, 1000, 50), [states[0]]);
  sched.written(dup.piece);
  sched.release(dup);
  assert.equal(sched.arrived(a0), false);
  assert.ok(sched.complete());
});

test('hedging the first piece: never to a last resort while a source without the mark is still asked', () => {
  fc.assert(
    fc.property(fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }), fc.nat(8), fc.array(fc.nat(7), { maxLength: 4 }), (marks, next, askingIdx) => {
      const states = marks.map((m, i) => ({ source: source(i, { lastResort: m, upstream: false }) }));
      const asking = askingIdx.filter((i) => i < states.length).map((i) => states[i]!);
      const to = hedgeTarget(states, next, asking);
      if (next >= states.length) return assert.equal(to, undefined);
      if (!marks[next]) return assert.equal(to, next);
      assert.equal(to, asking.some((s) => !s.source.lastResort) ? undefined : next);
    }),
    { seed: SEED, numRuns: 300 },
  );
});

test('cross-checks: upstream first, never the piece\'s own source, never a last resort while another is usable', () => {
  const states = PieceScheduler.states([source(0, { lastResort: false, upstream: false }), source(1, { lastResort: true, upstream: true }), source(2, { lastResort: false, upstream: false }), source(3, { lastResort: false, upstream: true })]);
  const sched = new PieceScheduler(1000, 1000, states);
  const piece = sched.pieces[0]!;
  piece.from = states[3];
  assert.equal(crossCheckSource(states, piece), states[0]);
  piece.from = states[0];
  assert.equal(crossCheckSource(states, piece), states[3]);
  states[3]!.dropped = { source: 's3', code: 'E_NETWORK', message: 'x' };
  states[2]!.dropped = { source: 's2', code: 'E_NETWORK', message: 'x' };
  assert.equal(crossCheckSource(states, piece), undefined, 'the piece\'s source is the only usable one: a last resort does not step in');
});

const opinionsArb = fc.record({
  sources: fc.integer({ min: 2, max: 4 }),
  liar: fc.nat(3),
  earlierLies: fc.boolean(),
  pieces: fc.array(fc.record({ from: fc.nat(4), earlierWrong: fc.boolean() }), { minLength: 1, maxLength: 12 }),
});

test('blame: with one liar among the sources (and an earlier run\'s bytes, right or wrong), the first assumption that verifies repairs every piece and blames no honest source', () => {
  fc.assert(
    fc.property(opinionsArb, ({ sources, liar: liarIdx, pieces }) => {
      const names = Array.from({ length: sources }, (_, i) => `s${i}`);
      const liar = names[liarIdx % sources]!;
      const EARLIER = 'earlier';
      const disputes: Dispute<number, string>[] = [];
      pieces.forEach((p, i) => {
        const truth = `t${i}`;
        const say = (who: string) => (who === liar || (who === EARLIER && p.earlierWrong) ? `lie${i}-${who}` : truth);
        const from = p.from >= sources ? EARLIER : names[p.from]!;
        const others = names.filter((n) => n !== from).slice(0, 2);
        const opinions = [from, ...others].map((st) => ({ st, sha: say(st) }));
        if (new Set(opinions.map((o) => o.sha)).size > 1) disputes.push({ piece: i, opinions });
      });
      const found = assumptions(disputes, EARLIER).find((suspects) => picksUnder(disputes, suspects).every(({ piece, pick }) => pick.sha === `t${piece}`));
      if (!disputes.length) return;
      assert.ok(found, 'some assumption makes every piece right');
      for (const s of found) {
        if (s === EARLIER || s === liar) continue;
        const picks = picksUnder(disputes, found);
        const lied = disputes.some((d, i) => d.opinions.some((o) => o.st === s && o.sha !== picks[i]!.pick.sha));
        assert.ok(!lied, `honest ${s} would be blamed`);
      }
    }),
    { seed: SEED, numRuns: 500 },
  );
});
