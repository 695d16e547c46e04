// Attestations read from a log, with the log played here from a tree we build (entries in C2SP entry
// bundles, a checkpoint signed by the log key and cosigned by a witness): the claims by policy builders are
// found among other entries, and a log that serves entries other than those its checkpoint commits to, a
// checkpoint without the witness quorum, or a forged builder signature are refused; so is a log that rolls
// back or forks the tree this client stored before (STATE/trust.sqlite).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { envelopeBytes, keyLookup, signAttestation } from '../../src/attest/bundle.ts';
import { checkAttestations } from '../../src/attest/check.ts';
import { attestationsFromLog, type LogReader } from '../../src/attest/log-source.ts';
import type { SnapshotClaim } from '../../src/attest/statement.ts';
import { SourcemeshError } from '../../src/errors.ts';
import { LIMITS } from '../../src/limits.ts';
import { formatCheckpoint } from '../../src/trust/checkpoint.ts';
import { TrustState } from '../../src/trust/client-state.ts';
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

test('log source: the checkpoint is held against the stored one (rollback, fork, a tree that does not extend it)', async () => {
  const keys = keyLookup(policy.builders!.keys);
  const junk = (i: number) => new TextEncoder().encode(`junk ${i}\n`);
  const five = [attestation(A), junk(1), junk(2), attestation(B), junk(4)];
  const first = await attestationsFromLog(fakeLog(five), policy, keys, NOW, LIMITS);
  assert.equal(first.consistency, 'first');
  const stored = first.checkpoint;
  // The same tree again, and a tree that extends it: accepted, the extension proven by the prefix root.
  assert.equal((await attestationsFromLog(fakeLog(five), policy, keys, NOW, LIMITS, stored)).consistency, 'same');
  const extended = await attestationsFromLog(fakeLog([...five, junk(5), junk(6)]), policy, keys, NOW, LIMITS, stored);
  assert.equal(extended.consistency, 'proven');
  assert.equal(extended.checkpoint.size, 7);
  // Rolled back to three entries (a prefix of the same history, its checkpoint properly signed and cosigned).
  const rollback = await attestationsFromLog(fakeLog(five.slice(0, 3)), policy, keys, NOW, LIMITS, stored).then(() => undefined, (e: SourcemeshError) => e);
  assert.equal(rollback?.code, 'E_POLICY');
  assert.match(rollback!.message, /^rollback: the log shows a tree of 3 entries, but a checkpoint of 5 was seen before/);
  assert.equal(rollback!.details.stored, stored.note);
  // A fork of the same size, and a longer tree whose first five entries differ (B's entry rewritten).
  const rewritten = [...five.slice(0, 3), attestation(B, 'cd'.repeat(32)), junk(4)];
  assert.match((await attestationsFromLog(fakeLog(rewritten), policy, keys, NOW, LIMITS, stored).catch((e: SourcemeshError) => e) as SourcemeshError).message, /^fork: two different trees of 5/);
  const forked = await attestationsFromLog(fakeLog([...rewritten, junk(5)]), policy, keys, NOW, LIMITS, stored).catch((e: SourcemeshError) => e) as SourcemeshError;
  assert.equal(forked.code, 'E_POLICY');
  assert.match(forked.message, /^fork: .* the tree of 6 entries does not extend the tree of 5 seen before/);
});

test('log source: attest verify keeps the newest checkpoint in STATE/trust.sqlite; a log rolled back later is refused with evidence', async () => {
  const stateDir = await mkdtemp(path.join(tmpdir(), 'attest-state-'));
  try {
    const junk = (i: number) => new TextEncoder().encode(`junk ${i}\n`);
    const entries = [attestation(A), attestation(B), junk(2), junk(3)];
    const now = new Date(NOW * 1000);
    const read = (log: LogReader) => checkAttestations({ paths: [], policy, log, stateDir, now, limits: LIMITS });
    const ok = await read(fakeLog(entries));
    assert.equal(ok.snapshots[0]!.verdict!.sha256, 'ab'.repeat(32));
    const state = TrustState.open(stateDir);
    assert.equal(state.checkpoint(logKey.name, policy.log.key)?.size, 4);
    state.close();
    // The log (or whoever answers for it) later serves an older tree: only A's attestation, B's withdrawn.
    const err = await read(fakeLog(entries.slice(0, 1))).then(() => undefined, (e: SourcemeshError) => e);
    assert.equal(err?.code, 'E_POLICY');
    assert.match(err!.message, /^rollback: .*; both checkpoints are in /);
    const evidence = await readdir(path.join(stateDir, 'trust-evidence'));
    assert.equal(evidence.length, 1);
    assert.match(await readFile(path.join(stateDir, 'trust-evidence', evidence[0]!), 'utf8'), /checkpoint seen before/);
    // A later, extended tree is accepted and stored.
    await read(fakeLog([...entries, junk(4)]));
    const again = TrustState.open(stateDir);
    assert.equal(again.checkpoint(logKey.name, policy.log.key)?.size, 5);
    again.close();
  } finally {
    await rm(stateDir, { recursive: true, force: true });
  }
});
