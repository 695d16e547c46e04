// The segmented scheduler in a swarm (src/fetch/piece-scheduler.ts): the search for a free piece starts
// where the caller says and wraps around (leechers start apart and have pieces to trade), and a source
// that says which pieces it has (a peer's bitfield, Location `has`) is given pieces it has, while a piece
// it lacks goes to a source that has it. Pure, property-tested.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { PieceScheduler, type Attempt } from '../../src/fetch/piece-scheduler.ts';
import type { Source } from '../../src/fetch/plan.ts';

const PL = 1000;
const mirror = (i: number): Source => ({ role: 'mirror', label: `m${i}`, location: { type: 'http', url: `http://127.0.0.1:1/m${i}` } });
const peer = (i: number, has: (start: number, end: number) => boolean | undefined): Source => ({
  role: 'peer', label: `p${i}`, location: { type: 'opener', open: () => Promise.reject(new Error('not opened here')), has },
});

test('the first free piece is searched from firstFree on, wrapping around; every piece is assigned once', () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 200 }), fc.nat(1000), (count, start) => {
    const states = PieceScheduler.states([mirror(0)]);
    const sched = new PieceScheduler(count * PL - 3, PL, states, start % count);
    const order: number[] = [];
    for (let a = sched.assign(0); a && !a.endGame; a = sched.assign(0)) {
      order.push(a.piece.index);
      states[0]!.active = 0; // one connection's worth: the next assignment goes to the same source
    }
    assert.deepEqual(order, Array.from({ length: count }, (_, k) => (start % count + k) % count));
  }));
});

test('a peer is given only pieces it says it has; a piece it lacks goes to a source that has it', () => {
  fc.assert(fc.property(fc.integer({ min: 2, max: 64 }), fc.nat(63), fc.array(fc.boolean(), { minLength: 64, maxLength: 64 }), (count, start, bits) => {
    const has = (s: number, e: number) => {
      for (let i = Math.floor(s / PL); i <= Math.floor(e / PL); i++) if (!bits[i]) return false;
      return true;
    };
    const states = PieceScheduler.states([peer(0, has), mirror(1)]);
    const sched = new PieceScheduler(count * PL, PL, states, start % count);
    const attempts: Attempt[] = [];
    for (let a = sched.assign(0); a && !a.endGame; a = sched.assign(0)) attempts.push(a);
    assert.equal(new Set(attempts.map((a) => a.piece.index)).size, count, 'every piece assigned, once');
    for (const a of attempts) if (a.state.source.role === 'peer') assert.ok(bits[a.piece.index], `piece ${a.piece.index} given to a peer that lacks it`);
    // The peer got every piece it has but for those the mirror took first.
    const byPeer = attempts.filter((a) => a.state.source.role === 'peer').length;
    assert.ok(byPeer >= Math.min(1, bits.slice(0, count).filter(Boolean).length), 'a peer with pieces is used');
  }));
});

test('a peer that has not said anything yet may be asked; with no one else to ask, a peer lacking the piece is asked anyway', () => {
  const silent = PieceScheduler.states([peer(0, () => undefined)]);
  assert.equal(new PieceScheduler(3 * PL, PL, silent).assign(0)?.state, silent[0]);
  const lacking = PieceScheduler.states([peer(0, () => false)]);
  assert.equal(new PieceScheduler(3 * PL, PL, lacking).assign(0)?.piece.index, 0);
});
