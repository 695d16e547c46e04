// The checker on histories written by hand: a clean one passes, and each invariant fails on the history
// that breaks it (a checker that can't fail proves nothing). The schedule: same seed, same faults, and its
// rules hold for any seed and size (fast-check).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { check, nodeOf, nodeOfKeyName } from './check.ts';
import type { Rec } from './history.ts';
import { BESIDE_SERVING, FAULT_KINDS, planFaults } from './schedule.ts';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const BAD = 'f'.repeat(64);
const nodes = { up: '10.77.1.2', log: '10.77.1.3', w1: '10.77.1.4', w2: '10.77.1.5', w3: '10.77.1.6', m1: '10.77.1.7', m2: '10.77.1.8', c1: '10.77.1.9' };

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
    { t: 11, type: 'checkpoint', size: 1, root: 'r1', cosigners: ['w1'], from: 'w1' },
    { t: 11, type: 'time', client: 'c1', start: 10, exit: 0, agreed: ['w1', 'w2', 'w3'], liars: [], failed: [] },
    { t: 11, type: 'attest', client: 'c1', start: 10, version: '1', exit: 0, honestBuilders: 2, threshold: 2, snapshots: [{ name: 'a.tar.gz', accepted: true, sha256: A, builders: ['m1', 'm2'], liars: [] }] },
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
const timeOf = (h: Rec[]) => h.find((r) => r.type === 'time') as Extract<Rec, { type: 'time' }>;
const attestOf = (h: Rec[]) => h.find((r) => r.type === 'attest') as Extract<Rec, { type: 'attest' }>;
/** A fault from t 3 to the end (the history's faults are in time order: put it after the liar's start). */
const faultFrom3 = (h: Rec[], kind: string, target: string) => h.splice(5, 0, { t: 3, type: 'fault', kind, target, phase: 'start' } as Rec);

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
  ['witnesses', 'a witness asked directly showing another tree of a size it cosigned', (h) => ((h.find((r) => r.type === 'checkpoint' && r.from === 'w1') as { root: string }).root = 'r2')],
  ['attribution', 'a BitTorrent seed blamed (its mirror\'s proxy lies, the seed does not)', (h) => fetchOf(h).files[1]!.rejected.push({ source: 'peer 10.77.1.8:6881', code: 'E_CHECKSUM' })],
  ['attribution', 'a mirror reached on its own port blamed (its proxy lies, its server does not)', (h) => fetchOf(h).files[1]!.rejected.push({ source: 'http://10.77.1.8:8080/', code: 'E_CHECKSUM' })],
  ['time', 'an honest witness named a Roughtime liar', (h) => (timeOf(h).liars = ['w3'])],
  ['time', 'no signed time while all three witnesses were free of faults', (h) => (timeOf(h).exit = 3)],
  ['time', 'a lying witness counted among those that agree', (h) => faultFrom3(h, 'time-liar', 'w2')],
  ['time', 'a witness that lied throughout not named', (h) => {
    faultFrom3(h, 'time-liar', 'w2');
    timeOf(h).agreed = ['w1', 'w3'];
  }],
  ['attest', 'a snapshot accepted as bytes other than its pin', (h) => (attestOf(h).snapshots[0]!.sha256 = BAD)],
  ['attest', 'an honest builder named a liar', (h) => (attestOf(h).snapshots[0]!.liars = ['m2'])],
  ['attest', 'a forged attestation accepted without naming its builder', (h) => (attestOf(h).bogus = 'm2')],
  ['attest', 'a refusal with a threshold of honest attestations', (h) => (attestOf(h).exit = 3)],
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

test('a Roughtime liar named, a forged attestation named: no violation, and counted', () => {
  const h = edit((h) => {
    faultFrom3(h, 'time-liar', 'w2');
    Object.assign(timeOf(h), { agreed: ['w1', 'w3'], liars: ['w2'] });
    Object.assign(attestOf(h).snapshots[0]!, { liars: ['m2'] });
    attestOf(h).bogus = 'm2';
  });
  const r = check(h);
  assert.deepEqual(r.violations, []);
  assert.equal(r.figures.roughtimeLiarsNamed, 1);
  assert.equal(r.figures.forgedNamed, 1);
});

test('source labels: a seed is NODE:seed, a mirror on its own port NODE:PORT, the proxy the node itself', () => {
  const byIp = new Map(Object.entries(nodes).map(([n, ip]) => [ip, n]));
  assert.equal(nodeOf('peer 10.77.1.7:6881', byIp), 'm1:seed');
  assert.equal(nodeOf('http://10.77.1.7:8080/', byIp), 'm1:8080');
  assert.equal(nodeOf('http://10.77.1.7/', byIp), 'm1');
  assert.equal(nodeOf('git http://10.77.1.2/git/proj.git abc', byIp), 'up');
  assert.equal(nodeOf('peer 192.0.2.1:6881', byIp), 'peer 192.0.2.1:6881');
  assert.equal(nodeOfKeyName('m3.stress.test+1a2b3c4d+AQ=='), 'm3');
  assert.equal(nodeOfKeyName('w2.stress.test'), 'w2');
});

test('a killed seed leaves its mirror up for the completion rule', () => {
  const h = edit((h) => {
    fetchOf(h).exit = 1;
    h.splice(4, 0, { t: 3, type: 'fault', kind: 'seed-kill', target: 'm1', phase: 'start' }, { t: 20, type: 'fault', kind: 'seed-kill', target: 'm1', phase: 'end' } as Rec);
  });
  const r = check(h.sort((a, b) => a.t - b.t));
  assert.ok(r.violations.some((v) => v.invariant === 'completion'), JSON.stringify(r.violations));
  assert.equal(r.figures.faults['seed-kill'], 1);
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
    // Every kind fits once the window is long enough for one fault of each on the mirrors left honest
    // (15 kinds, half of 4 mirrors, one of them a liar from the start: not always in 10 s, always in 30).
    if (mirrors >= 4 && durationMs >= 30_000) for (const k of FAULT_KINDS) assert.ok(faults.some((f) => f.kind === k), `${k} missing for ${mirrors} mirrors in ${durationMs} ms`);
    const liars = faults.filter((f) => f.kind === 'liar').length;
    assert.ok(faults.filter((f) => f.kind === 'bogus-attest').length <= 1);
    assert.ok(liars <= Math.max(1, Math.floor(mirrors / 5)));
    for (const f of faults) {
      assert.ok(f.at >= 0 && f.at <= durationMs && (f.until === undefined || f.until > f.at));
      const during = (g: typeof f) => g.at < (f.until ?? Infinity) && (g.until ?? Infinity) > f.at;
      const mirrorsHit = new Set(faults.filter((g) => g.target.startsWith('m') && !BESIDE_SERVING.has(g.kind) && g.at <= f.at && (g.until ?? Infinity) > f.at).map((g) => g.target));
      assert.ok(mirrorsHit.size <= Math.floor(mirrors / 2), `${mirrorsHit.size} of ${mirrors} mirrors faulted at ${f.at}`);
      if (/^w\d$/.test(f.target)) assert.equal(faults.filter((g) => g !== f && /^w\d$/.test(g.target) && during(g)).length, 0);
    }
  }), { numRuns: 200 });
});
