// The log's attestation index (subject sha256 and name -> entries, in the log's sqlite) against a real
// `log serve` with three `witness serve` on loopback: a client finds a file's attestations in O(matches)
// (no entry bundle read), each proven by its inclusion proof in the witnessed checkpoint; an index that is
// missing, short of rows or pointing at the wrong entries is rebuilt by the log, never answered from; and
// a client refuses an index answer that is not about the file asked for, or not in the tree.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { envelopeBytes, keyLookup, signAttestation } from '../../src/attest/bundle.ts';
import { attestationsFromLog, attestationsFromLogIndex, type LogReader } from '../../src/attest/log-source.ts';
import type { SnapshotClaim } from '../../src/attest/statement.ts';
import { SourcemeshError } from '../../src/errors.ts';
import { LIMITS } from '../../src/limits.ts';
import { readPolicy } from '../../src/trust/check-release.ts';
import { LogClient } from '../../src/trust/log-client.ts';
import { STATE_DIR } from '../../src/trust/log/storage.ts';
import { subjectKey } from '../../src/trust/log/subjects.ts';
import { formatVerifierKey, KEY_TYPE_ED25519, signerKeyFromSeed } from '../../src/trust/note.ts';
import { tempDir, waitFor } from '../helpers/run.ts';
import { startTrustNetwork } from '../trust/release/network.ts';
import { http, ServerProcess } from '../trust/log/servers.ts';

const hex = (s: string, alg = 'sha256') => createHash(alg).update(s).digest('hex');
const key = (name: string) => signerKeyFromSeed(name, KEY_TYPE_ED25519, createHash('sha256').update(name).digest());
const [A, B, C, D] = ['index-a.test', 'index-b.test', 'index-c.test', 'stranger.test'].map(key) as [ReturnType<typeof key>, ReturnType<typeof key>, ReturnType<typeof key>, ReturnType<typeof key>];
const NAMES = 400;
const name = (i: number) => `pkg-${i}.tar.gz`;

function attestation(k: typeof A, i: number): Buffer {
  const claim: SnapshotClaim = {
    kind: 'git-snapshot', name: name(i), sha256: hex(`bytes ${i}`), builder: formatVerifierKey(k), repository: `https://git.example.org/pkg-${i}.git`,
    ref: 'v1', commit: hex(`commit ${i}`, 'sha1'), prefix: `pkg-${i}/`, compression: 'gzip-n', level: 6,
  };
  return Buffer.from(envelopeBytes(signAttestation(claim, k, { version: '0.1.0', finishedOn: new Date('2026-01-01T00:00:00Z') }).dsseEnvelope));
}

/** The log client, counting what it is asked for. */
function counting(client: LogClient) {
  const calls = { entryBundle: 0, attestations: 0 };
  const reader: LogReader = {
    url: client.url,
    checkpoint: () => client.checkpoint(),
    entryBundle: (b) => (calls.entryBundle++, client.entryBundle(b)),
    attestations: (...a) => (calls.attestations++, client.attestations(...a)),
    reader: (size) => client.reader(size),
  };
  return { calls, reader };
}

function code(err: unknown): string {
  assert.ok(err instanceof SourcemeshError, String(err));
  return err.code;
}

test('log index: attestations found in O(matches) and proven; a damaged or missing index is rebuilt; a lying index refused', async (t) => {
  const dir = await tempDir(t);
  const net = await startTrustNetwork(t, dir);
  let log: ServerProcess = net.log;
  // 1,200 attestations by three builders for 400 files, 400 by a stranger, and 100 entries of other kinds.
  const entries: Buffer[] = [];
  for (let i = 0; i < NAMES; i++) entries.push(attestation(A, i), attestation(B, i), attestation(C, i), attestation(D, i));
  for (let i = 0; i < 100; i++) entries.push(Buffer.from(`not an attestation ${i}\n`));
  for (let at = 0; at < entries.length; at += 64) {
    const answers = await Promise.all(entries.slice(at, at + 64).map((e) => http('POST', `${log.url}/add`, e)));
    for (const a of answers) assert.equal(a.status, 200, a.text);
  }
  const client = new LogClient(log.url);
  await waitFor('a checkpoint of every entry', async () => {
    const note = await client.checkpoint().catch(() => '');
    return Number(note.split('\n')[1]) >= entries.length;
  }, { timeoutMs: 60_000 });

  const policyFile = await net.policy('policy.json');
  const policy = await readPolicy(policyFile);
  const keys = keyLookup([A, B, C]);
  const now = Math.floor(Date.now() / 1000);
  const wanted = [name(7), name(399)];
  const builders = [A, B, C].map(formatVerifierKey).sort();

  // From the index: one lookup per name, no entry bundle read; each entry proven in the witnessed tree.
  const { calls, reader } = counting(client);
  const found = await attestationsFromLogIndex(reader, policy, keys, now, LIMITS, undefined, wanted);
  assert.equal(found.size, entries.length);
  assert.deepEqual(calls, { entryBundle: 0, attestations: 2 });
  for (const n of wanted) assert.deepEqual(found.verified.filter((v) => v.claim.name === n).map((v) => v.claim.builder).sort(), builders, n);
  assert.equal(found.verified.length, 6); // the stranger's are passed over, as in the full read
  // The same attestations the full read of the log finds for those names (which reads every entry bundle).
  const whole = counting(client);
  const all = await attestationsFromLog(whole.reader, policy, keys, now, LIMITS);
  assert.ok(whole.calls.entryBundle >= Math.ceil(entries.length / 256));
  const indices = (xs: { source: { index: number } }[]) => xs.map((x) => x.source.index).sort((a, b) => a - b);
  assert.deepEqual(indices(found.verified), indices(all.verified.filter((v) => wanted.includes(v.claim.name))));
  // Many names at once (looked up a few at a time): again exactly what the full read finds for them.
  const many = Array.from({ length: 40 }, (_, i) => name(i * 10));
  const manyFound = await attestationsFromLogIndex(reader, policy, keys, now, LIMITS, undefined, [...many, ...many]);
  assert.deepEqual(indices(manyFound.verified), indices(all.verified.filter((v) => many.includes(v.claim.name))));
  assert.equal(manyFound.verified.length, 120);
  // The log answers by subject sha256 as well.
  const bySha = (await client.attestations('sha256', hex('bytes 7'), found.size, -1))!.entries.map((e) => e.index);
  assert.equal(bySha.length, 4); // A, B, C and the stranger attest those bytes
  for (const i of indices(found.verified.filter((v) => v.claim.name === name(7)))) assert.ok(bySha.includes(i));

  // A lying index, as a client sees it: the entries of another file, or an entry not in the tree.
  const lying = (swap: (p: NonNullable<Awaited<ReturnType<LogClient['attestations']>>>) => typeof p): LogReader => ({
    ...reader,
    attestations: async (kind, value, size, after) => {
      const p = await client.attestations(kind, value, size, after);
      return p && swap(p);
    },
  });
  const other = (await client.attestations('name', name(8), found.size, -1))!;
  await assert.rejects(attestationsFromLogIndex(lying(() => other), policy, keys, now, LIMITS, undefined, [name(7)]), (e) => code(e) === 'E_PROOF');
  await assert.rejects(attestationsFromLogIndex(lying((p) => ({ ...p, entries: p.entries.map((e, i) => (i === 0 ? { ...e, entry: Buffer.concat([e.entry, Buffer.from(' ')]) } : e)) })), policy, keys, now, LIMITS, undefined, [name(7)]), (e) => code(e) === 'E_PROOF');

  // The log's own index damaged while it is down: answered again only from a rebuilt index.
  const restart = async (damage: (db: DatabaseSync) => void) => {
    await log.stop();
    const db = new DatabaseSync(path.join(dir, 'log', STATE_DIR, 'state.sqlite'));
    damage(db);
    db.close();
    log = await ServerProcess.start([
      'log', 'serve', '--root', path.join(dir, 'log'), '--key', net.logKey.file, '--listen', '127.0.0.1:0', '--checkpoint-interval', '100ms', '--log-level', 'warn',
      '--admit-unsigned', '--quorum', '2', ...net.witnessKeys.flatMap((k, i) => ['--witness', `${k.pub}=${net.witnesses[i]!.url}`]),
    ]);
    t.after(() => log.stop());
    return counting(new LogClient(log.url));
  };
  const key7 = subjectKey('name', name(7))!;
  const expect7 = indices(found.verified.filter((v) => v.claim.name === name(7)));
  const check7 = async (r: ReturnType<typeof counting>) => {
    const got = await attestationsFromLogIndex(r.reader, policy, keys, now, LIMITS, undefined, [name(7)]);
    assert.deepEqual(indices(got.verified), expect7);
    assert.equal(r.calls.entryBundle, 0);
  };
  // (1) A row moved to another file's entry, the count unchanged: found when answering, rebuilt, answered right.
  const moved = await restart((db) => {
    const rows = db.prepare('SELECT idx FROM subject WHERE key = ? ORDER BY idx').all(key7) as { idx: number }[];
    db.prepare('DELETE FROM subject WHERE key = ? AND idx = ?').run(key7, rows[0]!.idx);
    db.prepare('INSERT INTO subject (key, idx) VALUES (?, ?)').run(key7, entries.length - 1);
  });
  await check7(moved);
  assert.ok(log.lines.some((l) => /rebuilding/.test(String(l.msg))), 'the log says it rebuilt its index');
  // (2) Rows missing (the count recorded differs): rebuilt when the log opens.
  await check7(await restart((db) => db.prepare('DELETE FROM subject WHERE key = ?').run(key7)));
  // (3) The table gone (a log from before the index, or a damaged file): rebuilt when the log opens.
  await check7(await restart((db) => db.exec('DROP TABLE subject')));
});
