// The segmented scheduler in a swarm (src/fetch/piece-scheduler.ts): the search for a free piece starts
// where the caller says and wraps around (leechers start apart and have pieces to trade), and a source
// that says which pieces it has (a peer's bitfield, Location `has`) is given pieces it has, while a piece
// it lacks goes to a source that has it. Pure, property-tested.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { PieceScheduler, type Attempt } from '../../src/fetch/piece-scheduler.ts';
import type { Source } from '../../src/fetch/plan.ts';
import { simulateSwarm } from './swarm-sim.ts';

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

// Swarm mode (PieceScheduler's SwarmOptions): rarest first, whole sources on pieces no peer has.
const SWARM = { perSource: 3, perWholeSource: 1, unknownGraceMs: 1000 };
const bitsHas = (bits: boolean[]) => (s: number, e: number) => {
  for (let i = Math.floor(s / PL); i <= Math.floor(e / PL); i++) if (!bits[i]) return false;
  return true;
};
const lcg = (seed: number) => {
  let x = seed >>> 0;
  return () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) / 2 ** 32;
};

test('swarm: a source with every piece (a seeder, a web seed) is given only pieces no other leecher has, while there are some', () => {
  fc.assert(fc.property(fc.integer({ min: 2, max: 60 }), fc.array(fc.array(fc.boolean(), { minLength: 60, maxLength: 60 }), { minLength: 1, maxLength: 4 }), fc.nat(), (count, peers, seed) => {
    const states = PieceScheduler.states([peer(99, () => true), mirror(98), ...peers.map((bits, i) => peer(i, bitsHas(bits)))]);
    // The leechers are busy (no room), so only the whole sources are given pieces here.
    for (const st of states.slice(2)) st.active = SWARM.perSource;
    const sched = new PieceScheduler(count * PL, PL, states, 0, { ...SWARM, random: lcg(seed) });
    const nobody = Array.from({ length: count }, (_, i) => i).filter((i) => peers.every((bits) => !bits[i]));
    const got: Attempt[] = [];
    for (let a = sched.assign(0); a; a = sched.assign(0)) got.push(a);
    assert.ok(got.every((a) => a.state === states[0] || a.state === states[1]), 'only the whole sources');
    assert.ok(got.length <= 2, 'one piece each in flight');
    // Pieces nobody has go first; one a leecher has only once none is left (the leechers have no room).
    assert.equal(got.filter((a) => nobody.includes(a.piece.index)).length, Math.min(nobody.length, 2));
    for (const [k, a] of got.entries()) if (k < nobody.length) assert.ok(nobody.includes(a.piece.index), `piece ${a.piece.index} is had by a leecher, yet asked of ${a.state.source.label}`);
  }));
});

test('swarm: a leecher is given the rarest piece it has, and no more than perSource at once', () => {
  fc.assert(fc.property(fc.integer({ min: 2, max: 40 }), fc.array(fc.array(fc.boolean(), { minLength: 40, maxLength: 40 }), { minLength: 2, maxLength: 4 }), fc.nat(), (count, peers, seed) => {
    // Leechers that lack some piece (else they count as whole sources).
    for (const bits of peers) bits[count - 1] = false;
    const states = PieceScheduler.states(peers.map((bits, i) => peer(i, bitsHas(bits))));
    const sched = new PieceScheduler(count * PL, PL, states, 0, { ...SWARM, random: lcg(seed) });
    const a = sched.assign(0);
    const had = (i: number) => peers.filter((bits) => bits[i]).length;
    const any = peers.some((bits) => bits.slice(0, count).some(Boolean));
    if (!any) return; // nobody has anything: the in-order fallback (next test)
    assert.ok(a && !a.endGame);
    const mine = peers[states.indexOf(a.state)]!;
    assert.ok(mine[a.piece.index], 'a piece it has');
    const rarest = Math.min(...Array.from({ length: count }, (_, i) => i).filter((i) => mine[i]).map(had));
    assert.equal(had(a.piece.index), rarest, 'the rarest of its pieces');
    for (let b = sched.assign(0); b; b = sched.assign(0)) assert.ok(b.state.active <= SWARM.perSource);
  }));
});

test('swarm: a peer that has said nothing is asked only after the grace period, one piece at a time; nothing in flight and nothing to give falls back to asking in order', () => {
  const silent = PieceScheduler.states([peer(0, () => undefined), mirror(1)]);
  silent[1]!.dropped = { source: 'm1', code: 'E_NETWORK', message: 'gone' };
  const sched = new PieceScheduler(3 * PL, PL, silent, 0, { ...SWARM, random: lcg(1) });
  silent[0]!.active = 1; // something in flight: no fallback
  assert.equal(sched.assign(0), undefined, 'not before the grace period');
  silent[0]!.active = 0;
  assert.equal(new PieceScheduler(3 * PL, PL, [silent[0]!], 0, { ...SWARM, random: lcg(1) }).assign(SWARM.unknownGraceMs + 1)?.state, silent[0]);
  // Two leechers that both lack every piece, nothing in flight: asked in order, so `stuck` can end the download.
  const lacking = PieceScheduler.states([peer(0, () => false), peer(1, () => false)]);
  const s2 = new PieceScheduler(3 * PL, PL, lacking, 0, { ...SWARM, random: lcg(1) });
  assert.equal(s2.assign(0)?.piece.index, 0);
});

test('swarm simulation: with swarm options the seeder and the web seed send each piece about once; asking in order (no options) they send far more', () => {
  const pieces = 128;
  const swarm = [1, 2, 3, 4, 5].map((seed) => simulateSwarm({ pieces, leechers: 4, segments: 10, random: lcg(seed), swarm: SWARM }));
  const inOrder = [1, 2, 3, 4, 5].map((seed) => simulateSwarm({ pieces, leechers: 4, segments: 10, random: lcg(seed) }));
  for (const r of [...swarm, ...inOrder]) assert.ok(r.complete, 'every leecher ends with the file');
  for (const r of swarm) {
    assert.ok(r.fromSources <= 1.3 * pieces, `the sources sent ${r.fromSources} pieces for ${pieces}`);
    assert.ok(r.maxPerSource <= SWARM.perSource);
  }
  // The same bound fails without the swarm rules: the simulation can tell them apart.
  assert.ok(inOrder.some((r) => r.fromSources > 1.3 * pieces), `in order: ${inOrder.map((r) => r.fromSources).join(', ')}`);
});
