// Property tests over hostile policies, bundles, release statements and rotation statements: arbitrary
// and mutated input gets a SourcemeshError with a clear code (never another exception), and a mutated
// bundle is never accepted.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { isSourcemeshError } from '../../../src/errors.ts';
import { formatCheckpoint } from '../../../src/trust/checkpoint.ts';
import { proveInclusion, treeHash } from '../../../src/trust/merkle.ts';
import { createSigner, formatNote, formatVerifierKey, KEY_TYPE_COSIGNATURE_V1, KEY_TYPE_ED25519, parseNote, signerKeyFromSeed, signNote } from '../../../src/trust/note.ts';
import { parsePolicy, verifyRelease } from '../../../src/trust/policy.ts';
import { formatReleaseBundle, formatReleaseStatement, parseReleaseBundle, parseReleaseStatement } from '../../../src/trust/release.ts';
import { chainHops, formatChainFile, parseChainFile, parseRotationLink, parseRotationStatement } from '../../../src/trust/rotation.ts';
import { MemoryHashStore } from '../reference-tree.ts';
import { buildChain } from './chain.ts';
import { outcome } from '../../helpers/outcome.ts';

const RUNS = { numRuns: 300 };
const seed = (label: string) => createHash('sha256').update(`release fuzz ${label}`).digest();
const NOW = 1_800_000_000;

const PARSE = ['E_FORMAT', 'E_UNSUPPORTED'] as const;
const REFUSE = ['E_FORMAT', 'E_UNSUPPORTED', 'E_POLICY', 'E_SIGNATURE', 'E_PROOF'] as const;

// A valid setup: a log of one release entry and two rotation statements, a checkpoint cosigned by two
// witnesses, a policy, and the bundle that passes it.
const log = signerKeyFromSeed('fuzz.release/log', KEY_TYPE_ED25519, seed('log'));
const witnesses = [1, 2].map((i) => signerKeyFromSeed(`w${i}.fuzz.release`, KEY_TYPE_COSIGNATURE_V1, seed(`w${i}`)));
const built = buildChain(2, { label: 'fuzz' });
const SHA = 'cd'.repeat(32);
const release = signNote(formatReleaseStatement({ kind: 'manifest', name: 'fuzz', version: '1', sha256: SHA }), built.keys[2]!.slice(0, 2).map((k) => createSigner(k)));
const tree = new MemoryHashStore();
const entries = [...built.chain.statements.map((s) => s.note), release];
for (const e of entries) tree.append(new TextEncoder().encode(e));
const size = entries.length;
const cpText = formatCheckpoint({ origin: log.name, size, rootHash: await treeHash(size, tree), extensions: [] });
const checkpoint = signNote(cpText, [createSigner(log), ...witnesses.map((w) => createSigner(w, { clock: () => NOW }))]);
const hops = await Promise.all(chainHops(built.chain).map(async (h) => ({ ...h, inclusionProof: await proveInclusion(h.index, size, tree) })));
const BUNDLE = formatReleaseBundle({ release, index: size - 1, checkpoint, inclusionProof: await proveInclusion(size - 1, size, tree), rotations: hops, consistency: [] });
const POLICY_JSON = {
  format: 'sourcemesh.policy/v1', log: { vkey: formatVerifierKey(log), url: 'https://log.example/fuzz' },
  witnesses: { quorum: 2, vkeys: witnesses.map((w) => formatVerifierKey(w)) },
  release: { threshold: 2, vkeys: built.sets[0]!.vkeys }, maxCheckpointAgeSeconds: 3600,
};
const POLICY = parsePolicy(JSON.stringify(POLICY_JSON), 'policy');
const check = (bundleText: string) => verifyRelease({ policy: POLICY, bundle: parseReleaseBundle(bundleText, 'bundle'), subject: { kind: 'manifest', sha256: SHA }, now: NOW });

test('the valid setup is accepted (so the properties below can fail)', () => {
  const v = check(BUNDLE);
  assert.equal(v.keySet.sequence, 2);
  assert.equal(v.index, size - 1);
});

test('arbitrary text and JSON: the policy, bundle and chain parsers answer E_FORMAT', () => {
  const anyJson = fc.oneof(fc.string(), fc.json(), fc.jsonValue().map((v) => JSON.stringify(v)), fc.constant('{"format":"sourcemesh.release-bundle/v1"}'));
  fc.assert(fc.property(anyJson, (text) => {
    outcome(() => parsePolicy(text, 'p'), PARSE);
    outcome(() => parseReleaseBundle(text, 'b'), PARSE);
    outcome(() => parseChainFile(text, 'c'), PARSE);
  }), RUNS);
  assert.throws(() => parseReleaseBundle(' '.repeat(5 * 1024 * 1024), 'huge'), (e: { code: string; message: string }) => e.code === 'E_FORMAT' && /larger than/.test(e.message));
  assert.throws(() => parsePolicy(JSON.stringify({ ...POLICY_JSON, extra: 1 }), 'p'), (e: { code: string }) => e.code === 'E_FORMAT');
  assert.throws(() => parsePolicy(JSON.stringify({ ...POLICY_JSON, witnesses: { quorum: 3, vkeys: POLICY_JSON.witnesses.vkeys } }), 'p'), (e: { code: string }) => e.code === 'E_FORMAT');
  assert.throws(() => parsePolicy(JSON.stringify({ ...POLICY_JSON, witnesses: { quorum: 1, vkeys: [formatVerifierKey(log)] } }), 'p'), (e: { code: string; message: string }) => e.code === 'E_FORMAT' && /type 0x01/.test(e.message));
});

test('mutated policy fields: refused with E_FORMAT or parsed into a policy that still checks its types', () => {
  fc.assert(fc.property(fc.constantFrom('log', 'witnesses', 'release', 'maxCheckpointAgeSeconds', 'format'), fc.jsonValue(), (field, value) => {
    const p = outcome(() => parsePolicy(JSON.stringify({ ...POLICY_JSON, [field]: value }), 'p'), PARSE);
    assert.ok(p === undefined || JSON.stringify(value) === JSON.stringify((POLICY_JSON as Record<string, unknown>)[field]));
  }), RUNS);
});

test('a bundle with any character changed is never accepted', () => {
  fc.assert(fc.property(fc.nat(BUNDLE.length - 1), fc.integer({ min: 1, max: 0xffff }), (at, delta) => {
    const c = BUNDLE.charCodeAt(at);
    const changed = BUNDLE.slice(0, at) + String.fromCharCode((c + delta) % 0x10000) + BUNDLE.slice(at + 1);
    // Changing JSON white space, or the order-free parts, leaves the same bundle: it may pass, identical.
    const v = outcome(() => check(changed), REFUSE);
    if (v !== undefined) assert.deepEqual(parseReleaseBundle(changed, 'b'), parseReleaseBundle(BUNDLE, 'b'));
  }), { numRuns: 1000 });
});

test('bundles with fields replaced, hops dropped, reordered or duplicated are refused', () => {
  const good = JSON.parse(BUNDLE);
  fc.assert(fc.property(fc.constantFrom('release', 'index', 'checkpoint', 'inclusionProof', 'rotations', 'consistency'), fc.jsonValue(), (field, value) => {
    const text = JSON.stringify({ ...good, [field]: value });
    const v = outcome(() => check(text), REFUSE);
    if (v !== undefined) assert.deepEqual(parseReleaseBundle(text, 'b'), parseReleaseBundle(BUNDLE, 'b'));
  }), RUNS);
  for (const rotations of [[], [good.rotations[0]], [...good.rotations, ...good.rotations], [...good.rotations].reverse()]) {
    if (JSON.stringify(rotations) === JSON.stringify(good.rotations)) continue;
    assert.throws(() => check(JSON.stringify({ ...good, rotations })), (e: unknown) => isSourcemeshError(e) && REFUSE.includes(e.code as never));
  }
});

test('release statements, rotation statements and links: arbitrary and mutated text is E_FORMAT, never accepted changed', () => {
  const statement = parseNote(built.chain.statements[0]!.note).text;
  const link = parseNote([...built.chain.links.values()][0]!).text;
  const releaseText = parseNote(release).text;
  fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 600 }), (text) => {
    outcome(() => parseReleaseStatement(text), PARSE);
    outcome(() => parseRotationStatement(text), PARSE);
    outcome(() => parseRotationLink(text), PARSE);
  }), RUNS);
  for (const [original, parse] of [[statement, parseRotationStatement], [link, parseRotationLink], [releaseText, parseReleaseStatement]] as const) {
    fc.assert(fc.property(fc.nat(original.length - 1), fc.string({ minLength: 0, maxLength: 3 }), (at, insert) => {
      const changed = original.slice(0, at) + insert + original.slice(at + 1);
      const parsed = outcome(() => (parse as (t: string) => unknown)(changed), PARSE);
      // Only the identical text parses to the identical value (one spelling per statement).
      if (parsed !== undefined && changed !== original) assert.notDeepEqual(parsed, (parse as (t: string) => unknown)(original));
    }), RUNS);
  }
  // Oversized: bounded before any work.
  assert.throws(() => parseRotationStatement(`${'x'.repeat(300 * 1024)}\n`), (e: { code: string }) => e.code === 'E_FORMAT');
  assert.throws(() => parseChainFile(formatChainFile(built.chain).replace('"links": [', `"links": [${'"x",'.repeat(10)}`), 'c'), (e: { code: string }) => e.code === 'E_FORMAT');
  // A checkpoint note with a cosignature changed refuses the whole bundle.
  const parsed = parseNote(checkpoint);
  const sig = Buffer.from(parsed.signatures[1]!.signature);
  sig[20]! ^= 0x40;
  const bad = JSON.stringify({ ...JSON.parse(BUNDLE), checkpoint: formatNote(parsed.text, [parsed.signatures[0]!, { ...parsed.signatures[1]!, signature: sig }, parsed.signatures[2]!]) });
  assert.throws(() => check(bad), (e: { code: string }) => e.code === 'E_SIGNATURE');
});
