import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { decideSnapshot, type Attested, type SnapshotInputs } from '../../src/attest/quorum.ts';
import type { SnapshotClaim } from '../../src/attest/statement.ts';
import { SourcemeshError } from '../../src/errors.ts';

const inputs: SnapshotInputs = { name: 'x.tar.gz', repository: 'git://127.0.0.1/x', ref: 'v1', prefix: 'x/', compression: 'gzip-n', level: 6 };
const H = ['a', 'b', 'c'].map((c) => c.repeat(64));
const COMMITS = ['1'.repeat(40), '2'.repeat(40)];
const claim = (builder: string, sha: string, over: Partial<SnapshotClaim> = {}): Attested<number> => ({
  claim: { kind: 'git-snapshot', builder, sha256: sha, commit: COMMITS[0]!, name: inputs.name, repository: inputs.repository, ref: inputs.ref, prefix: inputs.prefix, compression: 'gzip-n', level: 6, ...over },
  source: 0,
});

test('quorum: 2 of 3 with one liar names the liar; equivocation counts for none; a pin wins', () => {
  const v = decideSnapshot(inputs, [claim('A', H[0]!), claim('B', H[0]!), claim('C', H[1]!)], 2);
  assert.equal(v.sha256, H[0]);
  assert.deepEqual(v.builders, ['A', 'B']);
  assert.deepEqual(v.liars, [{ builder: 'C', sha256: H[1] }]);
  assert.equal(v.evidence.length, 3);
  // B also attested other bytes: it counts for none, so A alone is short of 2.
  assert.throws(() => decideSnapshot(inputs, [claim('A', H[0]!), claim('B', H[0]!), claim('B', H[1]!)], 2), (e: SourcemeshError) => e.code === 'E_POLICY' && /count for none/.test(e.message));
  // Two liars agree; the pin is the honest bytes: refused.
  assert.throws(() => decideSnapshot({ ...inputs, sha256: H[0] }, [claim('A', H[0]!), claim('B', H[1]!), claim('C', H[1]!)], 2), (e: SourcemeshError) => e.code === 'E_POLICY' && /always wins/.test(e.message));
  // Other inputs are ignored, with why.
  const v2 = decideSnapshot(inputs, [claim('A', H[0]!), claim('B', H[0]!), claim('C', H[1]!, { ref: 'v2' }), claim('C', H[1]!, { prefix: 'y/' })], 2);
  assert.deepEqual(v2.liars, []);
  assert.equal(v2.ignored.length, 2);
  assert.match(v2.ignored[0]!.why, /ref "v2"/);
  // Two groups both reaching a threshold of 1: refused as a disagreement.
  assert.throws(() => decideSnapshot(inputs, [claim('A', H[0]!), claim('B', H[1]!)], 1), (e: SourcemeshError) => e.code === 'E_POLICY' && /disagree/.test(e.message));
});

test('quorum (property): an accepted snapshot has threshold distinct builders, the pinned bytes when pinned, and no builder is also a liar', () => {
  const att = fc.array(fc.record({ b: fc.constantFrom('A', 'B', 'C', 'D', 'E'), h: fc.nat(2), c: fc.nat(1), ref: fc.constantFrom('v1', 'v1', 'v1', 'v2') }), { maxLength: 12 });
  fc.assert(fc.property(att, fc.integer({ min: 1, max: 4 }), fc.option(fc.nat(2), { nil: undefined }), (list, threshold, pin) => {
    const attested = list.map((x) => claim(x.b, H[x.h]!, { commit: COMMITS[x.c]!, ref: x.ref }));
    const ins = pin === undefined ? inputs : { ...inputs, sha256: H[pin]! };
    let v;
    try {
      v = decideSnapshot(ins, attested, threshold);
    } catch (err) {
      assert.equal((err as SourcemeshError).code, 'E_POLICY');
      return;
    }
    assert.ok(new Set(v.builders).size >= threshold);
    if (pin !== undefined) assert.equal(v.sha256, H[pin]);
    for (const b of v.builders) {
      assert.ok(!v.liars.some((l) => l.builder === b));
      // Every counted builder attested exactly these bytes for these inputs, and nothing else.
      const own = list.filter((x) => x.b === b && x.ref === 'v1');
      assert.ok(own.every((x) => H[x.h] === v.sha256 && COMMITS[x.c] === v.commit));
    }
  }), { numRuns: 2000 });
});
