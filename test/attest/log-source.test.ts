// Attestations read from a log, with the log played here from a tree we build (entries in C2SP entry
// bundles, a checkpoint signed by the log key and cosigned by a witness): the claims by policy builders are
// found among other entries, and a log that serves entries other than those its checkpoint commits to, a
// checkpoint without the witness quorum, or a forged builder signature are refused.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { envelopeBytes, keyLookup, signAttestation } from '../../src/attest/bundle.ts';
import { attestationsFromLog, type LogReader } from '../../src/attest/log-source.ts';
import type { SnapshotClaim } from '../../src/attest/statement.ts';
import { SourcemeshError } from '../../src/errors.ts';
import { LIMITS } from '../../src/limits.ts';
import { formatCheckpoint } from '../../src/trust/checkpoint.ts';
import { CompactRange, leafHash } from '../../src/trust/merkle.ts';
import { createSigner, formatVerifierKey, KEY_TYPE_COSIGNATURE_V1, KEY_TYPE_ED25519, signerKeyFromSeed, signNote, type SignerKey } from '../../src/trust/note.ts';
import { parsePolicy } from '../../src/trust/policy.ts';
import { formatEntryBundle, TILE_WIDTH } from '../../src/trust/tiles.ts';

const seed = (s: string) => createHash('sha256').update(s).digest();
const ed = (name: string) => signerKeyFromSeed(name, KEY_TYPE_ED25519, seed(name));
const logKey = ed('log.test/main');
const witness = signerKeyFromSeed('w1.test', KEY_TYPE_COSIGNATURE_V1, seed('w1'));
const [A, B, X] = [ed('a.test'), ed('b.test'), ed('stranger.test')];
const NOW = 1_800_000_000;
const policy = parsePolicy(JSON.stringify({
  format: 'sourcemesh.policy/v1', log: { vkey: formatVerifierKey(logKey), url: 'http://127.0.0.1:1/log' }, witnesses: { quorum: 1, vkeys: [formatVerifierKey(witness)] },
  release: { threshold: 1, vkeys: [formatVerifierKey(ed('r.test'))] }, maxCheckpointAgeSeconds: 3600, builders: { threshold: 2, vkeys: [A, B].map(formatVerifierKey) },
}), 'policy');

function attestation(k: SignerKey, sha = 'ab'.repeat(32)): Uint8Array {
  const claim: SnapshotClaim = { kind: 'git-snapshot', name: 'x.tar.gz', sha256: sha, builder: formatVerifierKey(k), repository: 'git://127.0.0.1/x', ref: 'v1', commit: '1'.repeat(40), prefix: 'x/', compression: 'gzip-n', level: 6 };
  return envelopeBytes(signAttestation(claim, k, { version: '0.1.0' }).dsseEnvelope);
}

/** A log serving `served` entries under a checkpoint of `committed` (the same unless a test lies). */
function fakeLog(committed: Uint8Array[], served = committed, cosigned = true): LogReader {
  const range = new CompactRange();
  for (const e of committed) range.append(leafHash(e));
  const text = formatCheckpoint({ origin: logKey.name, size: committed.length, rootHash: range.root(), extensions: [] });
  const signers = [createSigner(logKey), ...(cosigned ? [createSigner(witness, { clock: () => NOW - 10 })] : [])];
  const note = signNote(text, signers);
  return {
    url: 'http://127.0.0.1:1/log',
    checkpoint: async () => note,
    entryBundle: async ({ index, width }) => formatEntryBundle(served.slice(index * TILE_WIDTH, index * TILE_WIDTH + width)),
  };
}

const code = async (p: Promise<unknown>) => p.then(() => undefined, (e: SourcemeshError) => e.code);

test('log source: builders\' DSSE entries among 300 others, in two entry bundles, become claims', async () => {
  const entries: Uint8Array[] = [];
  for (let i = 0; i < 300; i++) entries.push(new TextEncoder().encode(`sourcemesh.release/v1\njunk ${i}\n`));
  entries[3] = attestation(A);
  entries[270] = attestation(B);
  entries[280] = attestation(X); // no builder of the policy: passed over
  const got = await attestationsFromLog(fakeLog(entries), policy, keyLookup(policy.builders!.keys), NOW, LIMITS);
  assert.equal(got.size, 300);
  assert.deepEqual(got.verified.map((v) => [v.source.index, v.claim.builder]), [[3, formatVerifierKey(A)], [270, formatVerifierKey(B)]]);
  assert.deepEqual(got.refused, []);
});

test('log source: entries other than the checkpoint commits to, no witness quorum, a forged signature, too many entries', async () => {
  const entries = [attestation(A), attestation(B)];
  const keys = keyLookup(policy.builders!.keys);
  // The log swaps B's entry for B's attestation of other bytes: the fold no longer meets the root.
  assert.equal(await code(attestationsFromLog(fakeLog(entries, [entries[0]!, attestation(B, 'cd'.repeat(32))]), policy, keys, NOW, LIMITS)), 'E_PROOF');
  assert.equal(await code(attestationsFromLog(fakeLog(entries, entries, false), policy, keys, NOW, LIMITS)), 'E_POLICY');
  // A committed entry with B's keyid but a broken signature: reported, not counted.
  const forged = JSON.parse(Buffer.from(entries[1]!).toString());
  const sig = Buffer.from(forged.signatures[0].sig, 'base64');
  sig[3]! ^= 1;
  forged.signatures[0].sig = sig.toString('base64');
  const got = await attestationsFromLog(fakeLog([entries[0]!, new TextEncoder().encode(JSON.stringify(forged))]), policy, keys, NOW, LIMITS);
  assert.equal(got.verified.length, 1);
  assert.deepEqual(got.refused.map((r) => r.code), ['E_SIGNATURE']);
  assert.equal(await code(attestationsFromLog(fakeLog(entries), policy, keys, NOW, { ...LIMITS, attestationLogEntries: 1 })), 'E_UNSUPPORTED');
});
