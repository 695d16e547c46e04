// The simulation: deterministic per seed, every byte of every finished file accounted for exactly once
// (accepted from an honest mirror), liars caught and never the source of an accepted piece, and the
// real scheduler's decisions visible in it (a mirror that lies is dropped after its first bad piece).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULTS, simulate } from './sim.ts';

const small = { ...DEFAULTS, mirrors: 60, clients: 80, filesPerClient: 2, fileSize: 8 << 20, arrivalMs: 20_000 };

test('the same seed gives the same result; another seed another', () => {
  const a = simulate(small);
  const b = simulate(small);
  assert.deepEqual({ ...a, wallMs: 0 }, { ...b, wallMs: 0 });
  assert.notDeepEqual(simulate({ ...small, seed: 2 }).fileMs, a.fileMs);
});

test('every finished file is made of accepted honest bytes, once; liars cost bytes and are caught', () => {
  const r = simulate({ ...small, liarFraction: 0.1 });
  assert.equal(r.filesFailed, 0);
  assert.equal(r.files, small.clients * small.filesPerClient);
  assert.ok(r.lieDetections > 0 && r.liarBytes > 0);
  // A liar is dropped for the file at its first rejected piece: at most one rejection per liar and file
  // (plus pieces already in flight to it), so detections can't exceed files x connections.
  assert.ok(r.lieDetections <= r.files * small.segments);
  assert.equal(r.liarAcceptedBytes, 0);
  assert.equal(r.acceptedBytes, r.files * small.fileSize);
});

test('with no liars nothing is rejected for lying', () => {
  const r = simulate({ ...small, liarFraction: 0 });
  assert.equal(r.liarBytes, 0);
  assert.equal(r.lieDetections, 0);
  assert.equal(r.filesFailed, 0);
});
