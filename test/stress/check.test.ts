// The checker on histories written by hand: a clean one passes, and each invariant fails on the history
// that breaks it (a checker that can't fail proves nothing). The schedule: same seed, same faults, and its
// rules hold for any seed and size (fast-check).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { check } from './check.ts';
import type { Rec } from './history.ts';
import { FAULT_KINDS, planFaults } from './schedule.ts';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const BAD = 'f'.repeat(64);
const nodes = { up: '10.77.1.2', log: '10.77.1.3', m1: '10.77.1.7', m2: '10.77.1.8', c1: '10.77.1.9' };

function base(): Rec[] {
  return [
    { t: 0, type: 'run', seed: 1, durationMs: 1000, nodes, mirrors: ['m1', 'm2'], clients: ['c1'], faults: [], pins: { '1': { 'a.tar.gz': A, 'b.tar.gz': B } } },
    { t: 1, type: 'mirror-files', mirror: 'm1', files: [{ name: 'a.tar.gz', sha256: A }, { name: 'b.tar.gz', sha256: B }] },
    { t: 1, type: 'mirror-files', mirror: 'm2', files: [{ name: 'a.tar.gz', sha256: A }, { name: 'b.tar.gz', sha256: B }] },
    { t: 2, type: 'release', version: '1', exit: 0, index: 0 },
    { t: 3, type: 'fault', kind: 'liar', target: 'm2', phase: 'start' },
    { t: 5, type: 'lie', mirror: 'm2', client: nodes.c1, path: '/a.tar.gz', flipped: 3, read: true },
    { t: 9, type: 'fetch', op: 1, client: 'c1', start: 4, exit: 0, version: '1', exported: [{ name: 'a.tar.gz', sha256: A }, { name: 'b.tar.gz', sha256: B }],
      files: [{ name: 'a.tar.gz', status: 'fetched', contributors: [{ source: 'http://10.77.1.7/', bytes: 10 }], rejected: [{ source: 'http://10.77.1.8/', code: 'E_CHECKSUM' }] },
        { name: 'b.tar.gz', status: 'fetched', source: 'http://10.77.1.7/', size: 5, rejected: [] }] },
    { t: 10, type: 'checkpoint', size: 1, root: 'r1', cosigners: ['w1', 'w2'] },
    { t: 11, type: 'release-verify', client: 'c1', version: '1', exit: 0 },
    { t: 12, type: 'entry-check', version: '1', index: 0, exit: 0 },
    { t: 13, type: 'end' },
  ];
}

function edit(fn: (h: Rec[]) => void): Rec[] {
  const h = structuredClone(base());
  fn(h);
  return h;
}

const fetchOf = (h: Rec[]) => h.find((r) => r.type === 'fetch') as Extract<Rec, { type: 'fetch' }>;

test('a clean history passes, with its figures', () => {
  const r = check(base());
  assert.deepEqual(r.violations, []);
  assert.equal(r.figures.fetchesOk, 1);
  assert.equal(r.figures.liesCaught, 1);
  assert.equal(r.figures.liesServed, 3);
  assert.deepEqual(r.figures.bytesBySource, { m1: 15 });
  assert.equal(r.figures.p50ms, 5);
});

const broken: [string, string, (h: Rec[]) => void][] = [
  ['exports', 'an exported file that does not verify', (h) => (fetchOf(h).exported[0]!.sha256 = BAD)],
  ['exports', 'an exported file no manifest pins', (h) => fetchOf(h).exported.push({ name: 'evil', sha256: A })],
  ['completion', 'a failed fetch while m1 stayed honest and up', (h) => (fetchOf(h).exit = 1)],
  ['attribution', 'an honest mirror blamed', (h) => fetchOf(h).files[1]!.rejected.push({ source: 'http://10.77.1.7/', code: 'E_CHECKSUM' })],
  ['attribution', 'a lie read and not named', (h) => (fetchOf(h).files[0]!.rejected = [])],
  ['attribution', 'upstream blamed though it never replaced a file', (h) => fetchOf(h).files[0]!.rejected.push({ source: 'http://10.77.1.2/a.tar.gz', code: 'E_CHECKSUM' })],
  ['witnesses', 'a witness cosigning two trees of one size', (h) => h.splice(-1, 0, { t: 12, type: 'checkpoint', size: 1, root: 'r2', cosigners: ['w2'] })],
  ['log', 'an acknowledged entry lost', (h) => ((h.find((r) => r.type === 'entry-check') as { exit: number }).exit = 3)],
  ['log', 'an acknowledged entry never checked', (h) => h.splice(h.findIndex((r) => r.type === 'entry-check'), 1)],
  ['log', 'an acknowledged release refused by a client', (h) => ((h.find((r) => r.type === 'release-verify') as { exit: number }).exit = 3)],
  ['mirrors', 'a mirror publishing an unverified file', (h) => ((h[2] as Extract<Rec, { type: 'mirror-files' }>).files[1]!.sha256 = BAD)],
];
for (const [invariant, what, fn] of broken) {
  test(`the checker fails on ${what} (${invariant})`, () => {
    const r = check(edit(fn));
    assert.equal(r.ok, false);
    assert.ok(r.violations.some((v) => v.invariant === invariant), JSON.stringify(r.violations));
  });
}

test('a lie never known to be read (a cancelled duplicate) need not be named', () => {
  const h = edit((h) => {
    fetchOf(h).files[0]!.rejected = [];
    (h.find((r) => r.type === 'lie') as { read: boolean }).read = false;
  });
  assert.deepEqual(check(h).violations, []);
});

test('a failed fetch is excused when no honest mirror with every file stayed up', () => {
  const h = edit((h) => {
    fetchOf(h).exit = 1;
    h.splice(4, 0, { t: 3, type: 'fault', kind: 'kill', target: 'm1', phase: 'start' }, { t: 20, type: 'fault', kind: 'kill', target: 'm1', phase: 'end' } as Rec);
  });
  const r = check(h.sort((a, b) => a.t - b.t));
  assert.deepEqual(r.violations.filter((v) => v.invariant === 'completion'), []);
  assert.equal(r.figures.fetchesExcused, 1);
});

test('blaming upstream for a file it replaced is right attribution', () => {
  const h = edit((h) => {
    h.splice(4, 0, { t: 3, type: 'fault', kind: 'replace', target: 'up', phase: 'start', param: 'a.tar.gz' });
    fetchOf(h).files[0]!.rejected.push({ source: 'http://10.77.1.2/a.tar.gz', code: 'E_CHECKSUM' });
  });
  assert.deepEqual(check(h).violations, []);
});

test('the schedule: the same seed gives the same faults; every kind asked for appears; its rules hold', () => {
  const input = { seed: 42, mirrors: 10, durationMs: 300_000, kinds: FAULT_KINDS, files: ['x', 'y'], clients: 20 };
  assert.deepEqual(planFaults(input), planFaults(input));
  assert.notDeepEqual(planFaults(input), planFaults({ ...input, seed: 43 }));
  fc.assert(fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.integer({ min: 2, max: 30 }), fc.integer({ min: 10_000, max: 900_000 }), (seed, mirrors, durationMs) => {
    const faults = planFaults({ ...input, seed, mirrors, durationMs });
    if (mirrors >= 4) for (const k of FAULT_KINDS) assert.ok(faults.some((f) => f.kind === k), `${k} missing for ${mirrors} mirrors`);
    const liars = faults.filter((f) => f.kind === 'liar').length;
    assert.ok(liars <= Math.max(1, Math.floor(mirrors / 5)));
    for (const f of faults) {
      assert.ok(f.at >= 0 && f.at <= durationMs && (f.until === undefined || f.until > f.at));
      const during = (g: typeof f) => g.at < (f.until ?? Infinity) && (g.until ?? Infinity) > f.at;
      const mirrorsHit = new Set(faults.filter((g) => g.target.startsWith('m') && g.at <= f.at && (g.until ?? Infinity) > f.at).map((g) => g.target));
      assert.ok(mirrorsHit.size <= Math.floor(mirrors / 2), `${mirrorsHit.size} of ${mirrors} mirrors faulted at ${f.at}`);
      if (/^w\d$/.test(f.target)) assert.equal(faults.filter((g) => g !== f && /^w\d$/.test(g.target) && during(g)).length, 0);
    }
  }), { numRuns: 200 });
});
