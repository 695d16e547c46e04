// The client's trust state is kept per log origin AND log key (issue 11): a log re-created with a new key
// and the same origin is not reported as a fork of the old one, while the same key showing two trees of one
// size still is; the evidence says which key signed which checkpoint; and a state database written before
// keys were recorded (schema 1) is migrated in place, its checkpoint still counting for the key that signed
// it. Logs are simulated here (keys, trees in memory, cosignatures at a pinned time); the state, policy and
// bundle files are real files, checked by checkRelease (what the CLI runs) and once by the CLI itself.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { manifestDigest } from '../../../src/manifest/write.ts';
import { checkRelease } from '../../../src/trust/check-release.ts';
import { formatCheckpoint } from '../../../src/trust/checkpoint.ts';
import { proveInclusion, treeHash } from '../../../src/trust/merkle.ts';
import {
  createSigner, formatNote, formatVerifierKey, KEY_TYPE_COSIGNATURE_V1, KEY_TYPE_ED25519, parseNote, signerKeyFromSeed, signNote, type SignerKey,
} from '../../../src/trust/note.ts';
import { formatReleaseBundle, formatReleaseStatement } from '../../../src/trust/release.ts';
import { runCli, tempDir } from '../../helpers/run.ts';
import { MemoryHashStore } from '../reference-tree.ts';
import { writeManifest } from './network.ts';

const seed = (label: string) => createHash('sha256').update(`log key test ${label}`).digest();
const ORIGIN = 'log.rekey.test/main';
// The same origin, two keys: the log as first made, and as re-created with a new key.
const keyA = signerKeyFromSeed(ORIGIN, KEY_TYPE_ED25519, seed('log A'));
const keyB = signerKeyFromSeed(ORIGIN, KEY_TYPE_ED25519, seed('log B'));
const witnessKeys = [1, 2].map((i) => signerKeyFromSeed(`w${i}.rekey.test`, KEY_TYPE_COSIGNATURE_V1, seed(`w ${i}`)));
const releaseKeys = [1, 2, 3].map((i) => signerKeyFromSeed(`release${i}.rekey.test`, KEY_TYPE_ED25519, seed(`release ${i}`)));
const label = (k: SignerKey) => formatVerifierKey(k).split('+', 2).join('+');
const T = Math.floor(Date.now() / 1000); // the cosignatures' time; the CLI run below checks with the real clock

/** A bundle of a one-entry log (the entry is `release`) whose checkpoint `logKey` signs and both witnesses cosign at T. */
async function oneEntryBundle(logKey: SignerKey, release: string): Promise<string> {
  const store = new MemoryHashStore();
  store.append(new TextEncoder().encode(release));
  const text = formatCheckpoint({ origin: ORIGIN, size: 1, rootHash: await treeHash(1, store), extensions: [] });
  const signed = parseNote(signNote(text, [createSigner(logKey)]));
  const cosignatures = witnessKeys.map((w) => parseNote(signNote(text, [createSigner(w, { clock: () => T })])).signatures[0]!);
  const checkpoint = formatNote(text, [...signed.signatures, ...cosignatures]);
  return formatReleaseBundle({ release, index: 0, checkpoint, inclusionProof: await proveInclusion(0, 1, store), rotations: [], consistency: [] });
}

async function setUp(dir: string) {
  const manifest = await writeManifest(path.join(dir, 'm.json'), '1');
  const sha256 = manifestDigest(JSON.parse(await readFile(manifest, 'utf8')));
  // Two valid releases of the manifest (by different pairs of release keys): two different log entries.
  const release = (signers: SignerKey[]) => signNote(formatReleaseStatement({ kind: 'manifest', name: 'release-test', version: '1', sha256 }), signers.map((k) => createSigner(k)));
  const entries = [release(releaseKeys.slice(0, 2)), release([releaseKeys[0]!, releaseKeys[2]!])];
  const files: Record<string, string> = {};
  for (const [name, logKey, entry] of [['a', keyA, 0], ['a-fork', keyA, 1], ['b', keyB, 1], ['b-fork', keyB, 0]] as const) {
    files[name] = path.join(dir, `${name}.release`);
    await writeFile(files[name]!, await oneEntryBundle(logKey, entries[entry]!));
  }
  const policy = async (name: string, logKey: SignerKey) => {
    const file = path.join(dir, name);
    await writeFile(file, JSON.stringify({
      format: 'sourcemesh.policy/v1', log: { vkey: formatVerifierKey(logKey) }, witnesses: { quorum: 2, vkeys: witnessKeys.map((k) => formatVerifierKey(k)) },
      release: { threshold: 2, vkeys: releaseKeys.map((k) => formatVerifierKey(k)) }, maxCheckpointAgeSeconds: 3600,
    }));
    return file;
  };
  const policies = { a: await policy('policy-a.json', keyA), b: await policy('policy-b.json', keyB) };
  const check = (policyFile: string, bundleFile: string, stateDir: string) => checkRelease({
    file: manifest, subject: { kind: 'manifest', sha256 }, policyFile, bundleFile, stateDir, online: false, now: () => T + 10,
  });
  return { manifest, bundles: files, policies, check };
}

const isFork = (key: SignerKey) => (e: { code?: string; message?: string }) => e.code === 'E_POLICY' && e.message!.includes(`fork: two different trees of 1 entries, both signed by the log key ${label(key)};`);

test('a log re-created with a new key and the same origin is no fork; the same key showing two trees of one size still is, with the key in the evidence', async (t) => {
  const dir = await tempDir(t);
  const { manifest, bundles, policies, check } = await setUp(dir);
  const state = path.join(dir, 'state');
  assert.equal((await check(policies.a, bundles.a!, state)).consistency, 'first');

  // The log is re-created with key B (same origin, a different first entry); the policy now names key B.
  // Before the state was keyed, this was "fork: two different trees of 1 entries, both signed by the log".
  const cli = await runCli(['release', 'verify', manifest, '--trust-policy', policies.b, '--bundle', bundles.b!, '--state', state]);
  assert.equal(cli.code, 0, cli.stderr);
  assert.match(cli.stdout, new RegExp(`signed by ${label(keyB).replace(/[.+]/g, '\\$&')}, .*consistency first \\(first under this log key; the checkpoints stored for ${label(keyA).replace(/[.+]/g, '\\$&')} of this origin are kept, not compared\\), offline\\n$`));
  assert.equal((await check(policies.b, bundles.b!, state)).consistency, 'same');

  // Key A's history is kept: its own checkpoint again is the same one; a checkpoint signed by key B is
  // refused under a policy that names key A (and the other way round).
  const again = await check(policies.a, bundles.a!, state);
  assert.equal(again.consistency, 'same');
  assert.deepEqual(again.otherLogKeys, []);
  await assert.rejects(check(policies.a, bundles.b!, state), { code: 'E_SIGNATURE' });
  await assert.rejects(check(policies.b, bundles.a!, state), { code: 'E_SIGNATURE' });

  // The real forks: one key, two trees of the same size. Refused under either key, with evidence that says
  // which key signed the stored and the presented checkpoint.
  let evidence = '';
  await assert.rejects(check(policies.a, bundles['a-fork']!, state), (e: { code?: string; message?: string; details?: { evidence?: string } }) => {
    evidence = e.details?.evidence ?? '';
    return isFork(keyA)(e);
  });
  const text = await readFile(evidence, 'utf8');
  const signedBy = `signed by the log key ${label(keyA)} (vkey ${formatVerifierKey(keyA)})`;
  assert.ok(text.includes(`# the checkpoint seen before, ${signedBy}:\n`) && text.includes(`# the checkpoint presented now, ${signedBy}:\n`), text);
  await assert.rejects(check(policies.b, bundles['b-fork']!, state), isFork(keyB));
});

test('a trust state from before keys were recorded is migrated in place: its checkpoint counts for the key that signed it only', async (t) => {
  const dir = await tempDir(t);
  const { bundles, policies, check } = await setUp(dir);
  // A schema 1 database, as earlier versions wrote it: checkpoints keyed by origin alone, holding key A's.
  const state = path.join(dir, 'state');
  const stored = JSON.parse(await readFile(bundles.a!, 'utf8')).checkpoint as string;
  const root = Buffer.from(stored.split('\n')[2]!, 'base64');
  await mkdir(state);
  const old = new DatabaseSync(path.join(state, 'trust.sqlite'));
  old.exec(`CREATE TABLE checkpoints (origin TEXT PRIMARY KEY, size INTEGER NOT NULL, root BLOB NOT NULL, note TEXT NOT NULL, updated INTEGER NOT NULL);
    CREATE TABLE keysets (chain TEXT PRIMARY KEY, sequence INTEGER NOT NULL, hash TEXT NOT NULL, updated INTEGER NOT NULL)`);
  old.prepare('INSERT INTO checkpoints VALUES (?, 1, ?, ?, 0)').run(ORIGIN, root, stored);
  old.close();

  // Key B's log: the old row is not its history (no false fork); it is reported as kept.
  const b = await check(policies.b, bundles.b!, state);
  assert.equal(b.consistency, 'first');
  assert.deepEqual(b.otherLogKeys, ['']);
  // Key A's log: the old row is its history (key A signed it), so A's fork is caught, and A's tree is the same.
  await assert.rejects(check(policies.a, bundles['a-fork']!, state), isFork(keyA));
  assert.equal((await check(policies.a, bundles.a!, state)).consistency, 'same');

  // The database now has schema 2: one row per key, the old row replaced by key A's.
  const db = new DatabaseSync(path.join(state, 'trust.sqlite'));
  t.after(() => db.close());
  assert.equal((db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version, 2);
  const rows = db.prepare('SELECT origin, key, size FROM checkpoints ORDER BY key').all().map((r) => ({ ...r }));
  assert.deepEqual(rows, [formatVerifierKey(keyA), formatVerifierKey(keyB)].sort().map((key) => ({ origin: ORIGIN, key, size: 1 })));

  // A schema newer than this version knows is refused, not guessed at.
  db.exec('PRAGMA user_version = 3');
  await assert.rejects(check(policies.a, bundles.a!, state), (e: { code?: string; message?: string }) => e.code === 'E_UNSUPPORTED' && /trust state schema 3 is newer/.test(e.message!));
});
