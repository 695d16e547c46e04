// Our attestation bundles checked by the Sigstore project's own verifier (@sigstore/verify 4.1.3, bundles read
// by @sigstore/bundle 5.0.1): a Sigstore bundle v0.3 with a public-key hint, a DSSE envelope, no Fulcio
// certificate, no Rekor entry and no timestamp, so every threshold but the signature's is 0.
import assert from 'node:assert/strict';
import { createHash, createPublicKey } from 'node:crypto';
import { test } from 'node:test';
import { bundleFromJSON } from '@sigstore/bundle';
import { toSignedEntity, toTrustMaterial, Verifier } from '@sigstore/verify';
import { formatBundle, signAttestation } from '../../src/attest/bundle.ts';
import { formatVerifierKey, KEY_TYPE_ED25519, signerKeyFromSeed, type VerifierKey } from '../../src/trust/note.ts';
import { keyLabel } from '../../src/trust/policy.ts';

const seed = (label: string) => createHash('sha256').update(label).digest();
const keyA = signerKeyFromSeed('rebuilder-a.example', KEY_TYPE_ED25519, seed('a'));
const keyB = signerKeyFromSeed('rebuilder-b.example', KEY_TYPE_ED25519, seed('b'));

/** The key finder a Sigstore verifier takes: our vkeys by the hint (`name+keyid`), as SPKI key objects. */
function verifierFor(keys: VerifierKey[], hintOf = (k: VerifierKey) => keyLabel(formatVerifierKey(k))): Verifier {
  const byHint = new Map(keys.map((k) => [hintOf(k), createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), k.publicKey]), format: 'der', type: 'spki' })]));
  const trust = toTrustMaterial({ mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1', tlogs: [], ctlogs: [], certificateAuthorities: [], timestampAuthorities: [] }, (hint) => {
    const publicKey = byHint.get(hint);
    if (publicKey === undefined) throw new Error(`no key for hint ${hint}`);
    return { publicKey, validFor: () => true };
  });
  return new Verifier(trust, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 });
}

function bundleText() {
  const claim = {
    kind: 'git-snapshot' as const, name: 'demo-1.0.tar.gz', sha256: createHash('sha256').update('x').digest('hex'), builder: formatVerifierKey(keyA),
    repository: 'https://git.example/demo.git', ref: 'v1.0', commit: 'a'.repeat(40), prefix: 'demo-1.0/', compression: 'gzip-n' as const, level: 9,
  };
  return formatBundle(signAttestation(claim, keyA, { version: '0.1.0' }));
}

const verify = (text: string, keys: VerifierKey[], hintOf?: (k: VerifierKey) => string) => verifierFor(keys, hintOf).verify(toSignedEntity(bundleFromJSON(JSON.parse(text))));

test('@sigstore/verify accepts our bundle with our public key', () => {
  const signer = verify(bundleText(), [keyA, keyB]);
  assert.ok(signer.key);
});

test('@sigstore/verify refuses a tampered bundle, another key under the hint, and an unknown hint', () => {
  const good = JSON.parse(bundleText());
  const payload = Buffer.from(good.dsseEnvelope.payload, 'base64').toString().replace('v1.0', 'v1.1');
  const tampered = { ...good, dsseEnvelope: { ...good.dsseEnvelope, payload: Buffer.from(payload).toString('base64') } };
  assert.throws(() => verify(JSON.stringify(tampered), [keyA]), /signature verification failed/);
  // The hint names A, but the finder holds B's key under A's name: the signature is A's, so it fails.
  assert.throws(() => verify(JSON.stringify(good), [keyB], () => keyLabel(formatVerifierKey(keyA))), /signature verification failed/);
  assert.throws(() => verify(JSON.stringify(good), [keyB]), /no key for hint/);
});
