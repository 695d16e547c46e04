// A log that shows two different trees of the same size to two witnesses. The log is simulated here (its
// key, trees in memory, signed checkpoints); the witnesses are real `witness serve` processes and the
// client is the real CLI (`release verify`) with its state on disk. The witness that cosigned tree A
// refuses tree B (409 or 422, C2SP tlog-witness); a fresh witness cosigns B; a client that accepted A
// detects the fork when shown B, and keeps both checkpoints as evidence. Also the pure decision with a
// pinned clock: freshness, future timestamps, consistency proofs carried in a bundle.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { manifestDigest } from '../../../src/manifest/write.ts';
import { formatCheckpoint, parseCheckpoint } from '../../../src/trust/checkpoint.ts';
import { type Hash, proveConsistency, proveInclusion, treeHash } from '../../../src/trust/merkle.ts';
import {
  createSigner, formatNote, formatVerifierKey, KEY_TYPE_COSIGNATURE_V1, KEY_TYPE_ED25519, parseNote, signerKeyFromSeed, signNote, type SignerKey,
} from '../../../src/trust/note.ts';
import { parsePolicy, verifyRelease, type TrustPolicy } from '../../../src/trust/policy.ts';
import { formatReleaseBundle, formatReleaseStatement, type ReleaseBundle } from '../../../src/trust/release.ts';
import { formatAddCheckpoint, parseCosignatures } from '../../../src/trust/witness/protocol.ts';
import { createVerifier } from '../../../src/trust/note.ts';
import { runCli, tempDir } from '../../helpers/run.ts';
import { http, ServerProcess, writeKey } from '../log/servers.ts';
import { MemoryHashStore } from '../reference-tree.ts';
import { writeManifest } from './network.ts';

const seed = (label: string) => createHash('sha256').update(`fork test ${label}`).digest();
const logKey = signerKeyFromSeed('log.fork.test/main', KEY_TYPE_ED25519, seed('log'));
const releaseKeys = [1, 2, 3].map((i) => signerKeyFromSeed(`release${i}.fork.test`, KEY_TYPE_ED25519, seed(`release ${i}`)));
const utf8 = new TextEncoder();

class Tree {
  readonly store = new MemoryHashStore();
  readonly entries: string[] = [];
  add(entry: string): number {
    this.store.append(utf8.encode(entry));
    this.entries.push(entry);
    return this.entries.length - 1;
  }
  async checkpoint(): Promise<string> {
    const size = this.entries.length;
    return signNote(formatCheckpoint({ origin: logKey.name, size, rootHash: await treeHash(size, this.store), extensions: [] }), [createSigner(logKey)]);
  }
  async bundle(index: number, checkpoint: string, consistency: ReleaseBundle['consistency'] = []): Promise<ReleaseBundle> {
    const size = this.entries.length;
    return { release: this.entries[index]!, index, checkpoint, inclusionProof: await proveInclusion(index, size, this.store), rotations: [], consistency };
  }
}

function releaseNote(sha256: string, signers: SignerKey[] = releaseKeys.slice(0, 2)): string {
  return signNote(formatReleaseStatement({ kind: 'manifest', name: 'release-test', version: '1', sha256 }), signers.map((k) => createSigner(k)));
}

/** Send a checkpoint to a witness (old size and proof as given); the note with its cosignature added, or the refusal status. */
async function cosign(witness: ServerProcess, key: SignerKey, note: string, old: number, proof: readonly Hash[]): Promise<{ status: number; note?: string }> {
  const a = await http('POST', `${witness.url}/add-checkpoint`, formatAddCheckpoint({ old, proof, note }));
  if (a.status !== 200) return { status: a.status };
  const parsed = parseNote(note);
  const cosigs = parseCosignatures(parsed.text, a.text, createVerifier(key));
  return { status: 200, note: formatNote(parsed.text, [...parsed.signatures, ...cosigs]) };
}

test('a split view: the witness that cosigned tree A refuses tree B; a client that accepted A detects the fork in B, with both checkpoints as evidence', async (t) => {
  const dir = await tempDir(t);
  const wKeys = await Promise.all([1, 2, 3].map((i) => writeKey(dir, `w${i}.fork.test`, 'cosignature')));
  const logPub = path.join(dir, 'log.pub');
  await writeFile(logPub, `${formatVerifierKey(logKey)}\n`);
  const witnesses = await Promise.all(wKeys.map((k, i) => ServerProcess.start(['witness', 'serve', '--state', path.join(dir, `w${i}`), '--key', k.file, '--listen', '127.0.0.1:0', '--log', logPub])));
  t.after(() => Promise.all(witnesses.map((w) => w.stop())));
  const manifest = await writeManifest(path.join(dir, 'm.json'), '1');
  const sha = manifestDigest(JSON.parse(await readFile(manifest, 'utf8')));

  // Tree A: the release, then an entry; shown to witness 1.
  const a = new Tree();
  const release = releaseNote(sha);
  a.add(release);
  a.add('entry only in tree A\n');
  const cpA = await cosign(witnesses[0]!, wKeys[0]!.key, await a.checkpoint(), 0, []);
  assert.equal(cpA.status, 200);
  // Tree B: the same release, another second entry: same size, another root; shown to witness 1 and 3.
  const b = new Tree();
  b.add(release);
  b.add('entry only in tree B\n');
  const noteB = await b.checkpoint();
  const refusedFresh = await cosign(witnesses[0]!, wKeys[0]!.key, noteB, 0, []);
  assert.equal(refusedFresh.status, 409, 'witness 1 has cosigned size 2 already');
  const refused = await cosign(witnesses[0]!, wKeys[0]!.key, noteB, 2, []);
  assert.ok(refused.status === 409 || refused.status === 422, `witness 1 refuses the fork (got ${refused.status})`);
  const cpB = await cosign(witnesses[2]!, wKeys[2]!.key, noteB, 0, []);
  assert.equal(cpB.status, 200, 'a witness that never saw tree A cosigns B');

  // A client with a 1-of-3 policy accepts A and stores it; B is then a fork.
  const policy = path.join(dir, 'policy.json');
  const policyJson = (quorum: number) => JSON.stringify({
    format: 'sourcemesh.policy/v1', log: { vkey: formatVerifierKey(logKey) }, witnesses: { quorum, vkeys: wKeys.map((k) => k.vkey) },
    release: { threshold: 2, vkeys: releaseKeys.map((k) => formatVerifierKey(k)) }, maxCheckpointAgeSeconds: 3600,
  });
  await writeFile(policy, policyJson(1));
  await writeFile(path.join(dir, 'a.release'), formatReleaseBundle(await a.bundle(0, cpA.note!)));
  await writeFile(path.join(dir, 'b.release'), formatReleaseBundle(await b.bundle(0, cpB.note!)));
  const state = path.join(dir, 'state');
  const verify = (bundle: string, p = policy, s = state) => runCli(['release', 'verify', manifest, '--trust-policy', p, '--bundle', path.join(dir, bundle), '--state', s]);
  const okA = await verify('a.release');
  assert.equal(okA.code, 0, okA.stderr);
  const forked = await verify('b.release');
  assert.equal(forked.code, 3);
  const logLabel = formatVerifierKey(logKey).split('+', 2).join('+');
  assert.match(forked.stderr, /fork: two different trees of 2 entries, both signed by the log key (\S+); both checkpoints are in (\S+) \[E_POLICY\]/);
  assert.ok(forked.stderr.includes(`both signed by the log key ${logLabel};`), forked.stderr);
  const evidence = await readFile(/both checkpoints are in (\S+) \[/.exec(forked.stderr)![1]!, 'utf8');
  assert.ok(evidence.includes(cpA.note!) && evidence.includes(cpB.note!));
  // The evidence says which key signed each checkpoint.
  assert.ok(evidence.includes(`# the checkpoint seen before, signed by the log key ${logLabel} (vkey ${formatVerifierKey(logKey)}):\n${cpA.note!}`), evidence);
  assert.ok(evidence.includes(`# the checkpoint presented now, signed by the log key ${logLabel} (vkey ${formatVerifierKey(logKey)}):\n${cpB.note!}`), evidence);
  // Tree B is valid on its own: only the stored checkpoint catches it...
  const fresh = await verify('b.release', policy, path.join(dir, 'state-fresh'));
  assert.equal(fresh.code, 0, fresh.stderr);
  // ...and a 2-of-3 policy refuses it anyway: one honest witness can't be fooled twice.
  const strict = path.join(dir, 'strict.json');
  await writeFile(strict, policyJson(2));
  const quorum = await verify('b.release', strict, path.join(dir, 'state-strict'));
  assert.equal(quorum.code, 3);
  assert.match(quorum.stderr, /cosigned by 1 of the policy's 3 witnesses; the quorum is 2/);

  // Tree A grows: a consistency proof carried in the bundle proves it extends what was stored...
  a.add('third entry of A\n');
  const grown = await cosign(witnesses[0]!, wKeys[0]!.key, await a.checkpoint(), 2, await proveConsistency(2, 3, a.store));
  assert.equal(grown.status, 200);
  await writeFile(path.join(dir, 'a3.release'), formatReleaseBundle(await a.bundle(0, grown.note!, [{ size: 2, proof: await proveConsistency(2, 3, a.store) }])));
  const okA3 = await verify('a3.release');
  assert.equal(okA3.code, 0, okA3.stderr);
  assert.match(okA3.stdout, /consistency proven/);
  // ...while tree B grown to 3 with a proof from its own size 2 is not consistent with stored A.
  b.add('third entry of B\n');
  const grownB = await cosign(witnesses[2]!, wKeys[2]!.key, await b.checkpoint(), 2, await proveConsistency(2, 3, b.store));
  assert.equal(grownB.status, 200);
  await writeFile(path.join(dir, 'b3.release'), formatReleaseBundle(await b.bundle(0, grownB.note!)));
  const sameSize = await verify('b3.release');
  assert.equal(sameSize.code, 3, 'tree B of 3 against stored tree A of 3');
  assert.match(sameSize.stderr, /fork/);
});

// ---------------------------------------------------------------------------------------------------
// The pure decision, with a pinned clock

const witnessKeys = [1, 2, 3].map((i) => signerKeyFromSeed(`w${i}.pure.test`, KEY_TYPE_COSIGNATURE_V1, seed(`w ${i}`)));

function pinnedPolicy(quorum = 2, maxAge = 600): TrustPolicy {
  return parsePolicy(JSON.stringify({
    format: 'sourcemesh.policy/v1', log: { vkey: formatVerifierKey(logKey) }, witnesses: { quorum, vkeys: witnessKeys.map((k) => formatVerifierKey(k)) },
    release: { threshold: 2, vkeys: releaseKeys.map((k) => formatVerifierKey(k)) }, maxCheckpointAgeSeconds: maxAge,
  }), 'policy');
}

function cosignAt(note: string, times: number[]): string {
  const parsed = parseNote(note);
  const sigs = times.map((time, i) => {
    const signed = signNote(parsed.text, [createSigner(witnessKeys[i]!, { clock: () => time })]);
    return parseNote(signed).signatures[0]!;
  });
  return formatNote(parsed.text, [...parsed.signatures, ...sigs]);
}

test('the decision with a pinned clock: freshness from cosignature times, future ones ignored, the log signature required', async () => {
  const sha = 'ab'.repeat(32);
  const tree = new Tree();
  tree.add(releaseNote(sha));
  const T = 1_800_000_000;
  const check = async (times: number[], now: number, policy = pinnedPolicy()) => verifyRelease({ policy, bundle: await tree.bundle(0, cosignAt(await tree.checkpoint(), times)), subject: { kind: 'manifest', sha256: sha }, now });
  const ok = await check([T, T], T + 10);
  assert.deepEqual([...ok.witnesses].sort(), ['w1.pure.test', 'w2.pure.test']);
  assert.equal(ok.consistency, 'first');
  await assert.rejects(check([T, T], T + 601), (e: { code: string; message: string }) => e.code === 'E_POLICY' && /stale/.test(e.message));
  await assert.rejects(check([T, T - 700], T + 10), (e: { code: string; message: string }) => e.code === 'E_POLICY' && /stale/.test(e.message));
  // A cosignature from the future (beyond the allowed skew) doesn't count.
  await assert.rejects(check([T, T + 3600], T), (e: { code: string; message: string }) => e.code === 'E_POLICY' && /cosigned by 1/.test(e.message));
  assert.ok(await check([T, T + 60], T));
  // Without the log's own signature: refused, however many witnesses cosigned.
  const parsed = parseNote(cosignAt(await tree.checkpoint(), [T, T, T]));
  const unsigned = formatNote(parsed.text, parsed.signatures.slice(1));
  await assert.rejects(async () => verifyRelease({ policy: pinnedPolicy(), bundle: await tree.bundle(0, unsigned), subject: { kind: 'manifest', sha256: sha }, now: T }), (e: { code: string }) => e.code === 'E_SIGNATURE');
  // Another log's checkpoint (same key name, other key): refused.
  const otherLog = signerKeyFromSeed(logKey.name, KEY_TYPE_ED25519, seed('other log'));
  const cp = parseCheckpoint(parsed.text);
  const forged = signNote(formatCheckpoint(cp), [createSigner(otherLog)]);
  await assert.rejects(async () => verifyRelease({ policy: pinnedPolicy(), bundle: await tree.bundle(0, cosignAt(forged, [T, T])), subject: { kind: 'manifest', sha256: sha }, now: T }), (e: { code: string }) => e.code === 'E_SIGNATURE');
  // A wrong inclusion proof: E_PROOF.
  const b = await tree.bundle(0, cosignAt(await tree.checkpoint(), [T, T]));
  tree.add('second\n');
  const b2 = await tree.bundle(0, cosignAt(await tree.checkpoint(), [T, T]));
  assert.throws(() => verifyRelease({ policy: pinnedPolicy(), bundle: { ...b2, inclusionProof: [...b2.inclusionProof.slice(0, -1), Buffer.alloc(32)] }, subject: { kind: 'manifest', sha256: sha }, now: T }), (e: { code: string }) => e.code === 'E_PROOF');
  assert.ok(verifyRelease({ policy: pinnedPolicy(), bundle: b, subject: { kind: 'manifest', sha256: sha }, now: T }));
});
