import assert from 'node:assert/strict';
import { createHash, createPublicKey, verify as cryptoVerify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import { envelopeBytes, formatBundle, keyLookup, signAttestation, verifyAttestation } from '../../src/attest/bundle.ts';
import { BUILD_TYPE_GIT_SNAPSHOT, BUILD_TYPE_UPSTREAM_DOWNLOAD, BUILDER_ID_PREFIX, builderId, builderOfId, buildStatement, parseStatement, type Claim, type SnapshotClaim } from '../../src/attest/statement.ts';
import { SourcemeshError } from '../../src/errors.ts';
import { DSSE_PAYLOAD_TYPE, pae } from '../../src/trust/log/entries/dsse.ts';
import { checkEntry } from '../../src/trust/log/entries/registry.ts';
import { createSigner, formatVerifierKey, KEY_TYPE_ED25519, signerKeyFromSeed } from '../../src/trust/note.ts';
import { LIMITS } from '../../src/limits.ts';

const vectors = JSON.parse(readFileSync(new URL('./vectors/attest-formats.json', import.meta.url), 'utf8'));
const seed = (label: string) => createHash('sha256').update(label).digest();
const keyA = signerKeyFromSeed('rebuilder-a.example', KEY_TYPE_ED25519, seed('a'));
const keyB = signerKeyFromSeed('rebuilder-b.example', KEY_TYPE_ED25519, seed('b'));
const hex = (label: string) => createHash('sha256').update(label).digest('hex');

function snapshot(builder: string, over: Partial<SnapshotClaim> = {}): SnapshotClaim {
  return {
    kind: 'git-snapshot', name: 'gnulib-8f4538a5.tar.gz', sha256: hex('bytes'), tarSha256: hex('tar'), builder,
    repository: 'https://git.savannah.gnu.org/git/gnulib.git', ref: '8f4538a5', commit: '8f4538a53d64054ae2fc8b86c0f87c418c6176e6',
    prefix: 'gnulib-8f4538a5/', compression: 'gzip-n', level: 6, ...over,
  };
}
const vkeyA = formatVerifierKey(keyA);
const vkeyB = formatVerifierKey(keyB);
const meta = { version: '0.1.0', finishedOn: new Date('2026-01-01T00:00:00Z') };

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof SourcemeshError, String(err));
    return err.code;
  }
  return undefined;
}

test('DSSE PAE: the specification\'s test vector, and its published P-256 signature verifies over our PAE', () => {
  const v = vectors.dssePae;
  const encoded = pae(v.payloadType, Buffer.from(v.body));
  assert.equal(Buffer.from(encoded).toString('latin1'), v.pae);
  // The published signature is over PAE(type, body): verifying it with the published key proves the same bytes.
  const toB64u = (dec: string) => Buffer.from(BigInt(dec).toString(16).padStart(64, '0'), 'hex').toString('base64url');
  const key = createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: toB64u(v.ecdsaP256.x), y: toB64u(v.ecdsaP256.y) }, format: 'jwk' });
  const sig = Buffer.from(v.ecdsaP256.envelope.signatures[0].sig, 'base64');
  assert.equal(Buffer.from(v.ecdsaP256.envelope.payload, 'base64').toString(), v.body);
  assert.equal(cryptoVerify('sha256', encoded, { key, dsaEncoding: 'ieee-p1363' }, sig), true);
  // It can fail: one more space in the encoding, or the lengths counted in characters, do not verify.
  assert.equal(cryptoVerify('sha256', Buffer.from(`${v.pae} `), { key, dsaEncoding: 'ieee-p1363' }, sig), false);
  assert.equal(Buffer.from(pae('t', Buffer.from('é'))).toString('latin1').startsWith('DSSEv1 1 t 2 '), true);
});

test('statement: an in-toto Statement v1 with a SLSA Provenance v1 predicate, only the published fields', () => {
  const st = buildStatement(snapshot(vkeyA), meta) as Record<string, any>;
  const defs = vectors.slsaProvenanceV1;
  assert.equal(st._type, vectors.inTotoStatementV1._type);
  for (const f of vectors.inTotoStatementV1.required) assert.ok(f in st, f);
  for (const s of st.subject) for (const f of vectors.inTotoStatementV1.subjectRequired) assert.ok(f in s);
  assert.equal(st.predicateType, defs.predicateType);
  const within = (obj: Record<string, unknown>, allowed: string[], where: string) => {
    for (const k of Object.keys(obj)) assert.ok(allowed.includes(k), `${where}.${k} is no field of the published definition`);
  };
  within(st.predicate, defs.fields.predicate, 'predicate');
  within(st.predicate.buildDefinition, defs.fields.buildDefinition, 'buildDefinition');
  within(st.predicate.runDetails, defs.fields.runDetails, 'runDetails');
  within(st.predicate.runDetails.builder, defs.fields.builder, 'builder');
  within(st.predicate.runDetails.metadata, defs.fields.metadata, 'metadata');
  for (const r of [...st.predicate.buildDefinition.resolvedDependencies, ...st.predicate.runDetails.byproducts]) within(r, defs.fields.resourceDescriptor, 'resourceDescriptor');
  for (const [obj, fields] of Object.entries(defs.required) as [string, string[]][]) {
    const at = obj === 'builder' ? st.predicate.runDetails.builder : st.predicate[obj];
    for (const f of fields) assert.ok(f in at, `${obj}.${f}`);
  }
  assert.deepEqual(st.subject, [{ name: 'gnulib-8f4538a5.tar.gz', digest: { sha256: hex('bytes') } }]);
  assert.deepEqual(st.predicate.buildDefinition.resolvedDependencies, [{ uri: 'https://git.savannah.gnu.org/git/gnulib.git', digest: { gitCommit: '8f4538a53d64054ae2fc8b86c0f87c418c6176e6' } }]);
});

const claimArb: fc.Arbitrary<Claim> = fc.oneof(
  fc.record({
    kind: fc.constant('git-snapshot' as const), name: fc.string({ minLength: 1, maxLength: 40 }), sha256: fc.stringMatching(/^[0-9a-f]{64}$/),
    builder: fc.constant(vkeyA), repository: fc.webUrl(), ref: fc.string({ minLength: 1, maxLength: 40 }), commit: fc.stringMatching(/^[0-9a-f]{40}$/),
    prefix: fc.string({ maxLength: 40 }), compression: fc.constantFrom('gzip-n' as const, 'xz' as const, 'none' as const), level: fc.integer({ min: 0, max: 9 }),
  }, { requiredKeys: ['kind', 'name', 'sha256', 'builder', 'repository', 'ref', 'commit', 'prefix', 'compression'] }),
  fc.record({ kind: fc.constant('upstream-download' as const), name: fc.string({ minLength: 1, maxLength: 40 }), sha256: fc.stringMatching(/^[0-9a-f]{64}$/), builder: fc.constant(vkeyA), url: fc.webUrl(), tarSha256: fc.stringMatching(/^[0-9a-f]{64}$/) }, { requiredKeys: ['kind', 'name', 'sha256', 'builder', 'url'] }),
);

test('statement: parseStatement(buildStatement(c)) is c (property)', () => {
  fc.assert(fc.property(claimArb, (c) => {
    assert.deepEqual(parseStatement(JSON.parse(JSON.stringify(buildStatement(c, meta))), 'x'), { ...c });
  }), { numRuns: 300 });
});

test('bundle: signed, verified back to its claim; its envelope is a log entry the log admits by the same key', () => {
  const claim = snapshot(vkeyA);
  const bundle = signAttestation(claim, keyA, meta);
  assert.equal(bundle.mediaType, vectors.sigstoreBundleV03.mediaType);
  assert.equal(bundle.verificationMaterial.publicKey.hint, vkeyA.split('+').slice(0, 2).join('+'));
  const got = verifyAttestation(formatBundle(bundle), 'a.json', keyLookup([keyA, keyB]));
  assert.deepEqual(got.claim, claim);
  const checked = checkEntry(got.entry, keyLookup([keyA]), LIMITS);
  assert.deepEqual(checked.signers, [vkeyA]);
  assert.equal(Buffer.from(envelopeBytes(bundle.dsseEnvelope)).toString(), Buffer.from(got.entry).toString());
});

test('bundle: refused when tampered, by an unknown builder, naming another builder, or malformed', () => {
  const bundle = signAttestation(snapshot(vkeyA), keyA, meta);
  const keys = keyLookup([keyA, keyB]);
  const text = formatBundle(bundle);
  // One byte of the statement changed (another sha256): the signature fails.
  const payload = Buffer.from(bundle.dsseEnvelope.payload, 'base64').toString().replace(hex('bytes'), hex('other'));
  const tampered = { ...bundle, dsseEnvelope: { ...bundle.dsseEnvelope, payload: Buffer.from(payload).toString('base64') } };
  assert.equal(code(() => verifyAttestation(JSON.stringify(tampered), 't.json', keys)), 'E_SIGNATURE');
  // A flipped signature bit.
  const sig = Buffer.from(bundle.dsseEnvelope.signatures[0]!.sig, 'base64');
  sig[5]! ^= 1;
  const badSig = { ...bundle, dsseEnvelope: { ...bundle.dsseEnvelope, signatures: [{ keyid: bundle.dsseEnvelope.signatures[0]!.keyid, sig: sig.toString('base64') }] } };
  assert.equal(code(() => verifyAttestation(JSON.stringify(badSig), 's.json', keys)), 'E_SIGNATURE');
  // A builder the verifier does not know.
  assert.equal(code(() => verifyAttestation(text, 'u.json', keyLookup([keyB]))), 'E_POLICY');
  // Signed by B, but the statement says A built it.
  const st = new TextEncoder().encode(JSON.stringify(buildStatement(snapshot(vkeyA), meta)));
  const forged = {
    ...bundle, verificationMaterial: { publicKey: { hint: vkeyB.split('+').slice(0, 2).join('+') }, tlogEntries: [] },
    dsseEnvelope: { payloadType: DSSE_PAYLOAD_TYPE, payload: Buffer.from(st).toString('base64'), signatures: [{ keyid: vkeyB.split('+').slice(0, 2).join('+'), sig: Buffer.from(createSigner(keyB).sign(pae(DSSE_PAYLOAD_TYPE, st))).toString('base64') }] },
  };
  assert.equal(code(() => verifyAttestation(JSON.stringify(forged), 'f.json', keys)), 'E_POLICY');
  // Not a v0.3 bundle, a Rekor entry, two signatures, another payload type, oversized, not JSON.
  assert.equal(code(() => verifyAttestation(JSON.stringify({ ...bundle, mediaType: 'application/vnd.dev.sigstore.bundle+json;version=0.1' }), 'm.json', keys)), 'E_FORMAT');
  assert.equal(code(() => verifyAttestation(JSON.stringify({ ...bundle, verificationMaterial: { ...bundle.verificationMaterial, tlogEntries: [{}] } }), 'r.json', keys)), 'E_FORMAT');
  assert.equal(code(() => verifyAttestation(JSON.stringify({ ...bundle, dsseEnvelope: { ...bundle.dsseEnvelope, signatures: [bundle.dsseEnvelope.signatures[0], bundle.dsseEnvelope.signatures[0]] } }), 'd.json', keys)), 'E_FORMAT');
  assert.equal(code(() => verifyAttestation(JSON.stringify({ ...bundle, dsseEnvelope: { ...bundle.dsseEnvelope, payloadType: 'application/json' } }), 'p.json', keys)), 'E_FORMAT');
  assert.equal(code(() => verifyAttestation(' '.repeat(LIMITS.attestationBytes + 1), 'big.json', keys)), 'E_FORMAT');
  assert.equal(code(() => verifyAttestation('{', 'j.json', keys)), 'E_FORMAT');
});

// RFC 3986 §3: scheme ":" "//" authority path-abempty [ "#" fragment ], fragment = *( pchar / "/" / "?" ),
// pchar = unreserved / pct-encoded / sub-delims / ":" / "@". Written from the ABNF, for the URIs we write.
const PCHAR = "(?:[A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})";
const HTTPS_URI = new RegExp(`^https://[A-Za-z0-9.-]+(?:/${PCHAR}*)*(?:#(?:${PCHAR}|[/?])*)?$`);

test('URIs: build types and builder ids are https URIs (RFC 3986), no unregistered URN; a builder id names its vkey', () => {
  for (const uri of [BUILD_TYPE_GIT_SNAPSHOT, BUILD_TYPE_UPSTREAM_DOWNLOAD, builderId(vkeyA)]) {
    assert.match(uri, HTTPS_URI);
    assert.equal(new URL(uri).protocol, 'https:');
    assert.doesNotMatch(uri, /^urn:/i);
  }
  const st = buildStatement(snapshot(vkeyA), meta) as Record<string, any>;
  assert.equal(st.predicate.buildDefinition.buildType, BUILD_TYPE_GIT_SNAPSHOT);
  assert.equal(st.predicate.runDetails.builder.id, `${BUILDER_ID_PREFIX}${vkeyA}`); // '+', '/', '=' stay as they are in a fragment
  // Any name a key could carry (a '#', a '%', spaces, non-ASCII) gives a valid URI that names it back.
  fc.assert(fc.property(fc.string({ maxLength: 60, unit: 'grapheme' }), (name) => {
    const vkey = `${name}+0123abcd+AepKbGPinFIKvvVQexMuxfmVR3auvr57kkIe6mkURtIs`;
    const id = builderId(vkey);
    assert.match(id, HTTPS_URI);
    assert.equal(builderOfId(id), vkey);
  }), { numRuns: 300 });
  // It can fail: the old escaping (encodeURI alone) leaves a '#' in the fragment, which no URI may hold.
  assert.doesNotMatch(`${BUILDER_ID_PREFIX}${encodeURI('a#b+0123abcd+AAAA')}`, HTTPS_URI);
});

test('URIs: bundles written with the former urn:sourcemesh: identifiers still verify, as the same claims; other URNs are refused', () => {
  const sign = (statement: Record<string, any>) => {
    const st = new TextEncoder().encode(JSON.stringify(statement));
    const hint = vkeyA.split('+').slice(0, 2).join('+');
    return JSON.stringify({
      mediaType: vectors.sigstoreBundleV03.mediaType, verificationMaterial: { publicKey: { hint }, tlogEntries: [] },
      dsseEnvelope: { payloadType: DSSE_PAYLOAD_TYPE, payload: Buffer.from(st).toString('base64'), signatures: [{ keyid: hint, sig: Buffer.from(createSigner(keyA).sign(pae(DSSE_PAYLOAD_TYPE, st))).toString('base64') }] },
    });
  };
  const keys = keyLookup([keyA]);
  const download: Claim = { kind: 'upstream-download', name: 'bash-2.05b.tar.gz', sha256: hex('bash'), builder: vkeyA, url: 'https://mirrors.kernel.org/gnu/bash/bash-2.05b.tar.gz' };
  for (const [claim, legacyType] of [[snapshot(vkeyA), 'urn:sourcemesh:build-type:git-snapshot:v1'], [download, 'urn:sourcemesh:build-type:upstream-download:v1']] as const) {
    const legacy = buildStatement(claim, meta) as Record<string, any>;
    legacy.predicate.buildDefinition.buildType = legacyType;
    legacy.predicate.runDetails.builder.id = `urn:sourcemesh:builder:${encodeURI(vkeyA)}`;
    assert.deepEqual(verifyAttestation(sign(legacy), 'legacy.json', keys).claim, claim);
    // Another namespace is no build type or builder of ours.
    const other = structuredClone(legacy);
    other.predicate.buildDefinition.buildType = legacyType.replace('sourcemesh', 'elsewhere');
    assert.equal(code(() => verifyAttestation(sign(other), 'other.json', keys)), 'E_FORMAT');
    const otherBuilder = structuredClone(legacy);
    otherBuilder.predicate.runDetails.builder.id = `urn:elsewhere:builder:${encodeURI(vkeyA)}`;
    assert.equal(code(() => verifyAttestation(sign(otherBuilder), 'other.json', keys)), 'E_FORMAT');
  }
});
