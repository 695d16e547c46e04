// The verifier threads (src/trust/log/verifier.ts) against the same check on the calling thread: every
// entry type and every refusal comes back whole through the batch transport (entries in one transferred
// buffer, results as one flat array), in order, with the keys a submitter names applied to its own entry
// only; and a thread that dies fails the jobs it held, and a new one takes its place.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { LIMITS } from '../../../src/limits.ts';
import type { CheckedEntry } from '../../../src/trust/log/entries/types.ts';
import { EntryVerifier } from '../../../src/trust/log/verifier.ts';
import { createSigner, formatVerifierKey, KEY_TYPE_ED25519, signerKeyFromSeed, type SignerKey } from '../../../src/trust/note.ts';
import { genesisPosition, keySetFrom, makeRotationStatement } from '../../../src/trust/rotation.ts';
import { dsseEntry, releaseEntry } from './servers.ts';

const key = (name: string): SignerKey => signerKeyFromSeed(name, KEY_TYPE_ED25519, createHash('sha256').update(name).digest());
const alice = key('alice.verifier.test');
const bob = key('bob.verifier.test');
const carol = key('carol.verifier.test');
const mallory = key('mallory.verifier.test');
const vkey = (k: SignerKey) => formatVerifierKey(k);
const bytes = (s: string) => Buffer.from(s, 'utf8');

type Outcome = CheckedEntry | { code: string; message: string };
const outcome = (p: Promise<CheckedEntry>): Promise<Outcome> => p.then((c) => c, (err: { code: string; message: string }) => ({ code: err.code, message: err.message }));

const genesis = keySetFrom([vkey(alice), vkey(bob), vkey(carol)], 2, 'genesis');
const rotation = makeRotationStatement(genesisPosition(genesis), keySetFrom([vkey(mallory), vkey(carol)], 1, 'next'), [createSigner(alice), createSigner(bob)]);
const release = releaseEntry([alice, bob], '1', 'verifier-test');
const entries: [string, string[]][] = [
  [release, []],
  [rotation, []],
  [dsseEntry([alice, mallory], 'tcc-0.9.27.tar.bz2'), []],
  // Keys the submitter names count for its own entry only (--admit-any-signed).
  [releaseEntry([mallory], '2', 'verifier-test'), [vkey(mallory), 'not a key']],
  [releaseEntry([mallory], '3', 'verifier-test'), []],
  ['junk', []],
  [release.replace('version 1', 'version 9'), []], // a bad signature by a known key
  [dsseEntry([alice], 'x').replace('"payloadType"', '"payloadtype"'), []],
  [`${release}${release.split('\n\n')[1]}`, []], // two signature lines by one key
];

test('verifier threads give back what the calling thread computes, every entry type and refusal, in order', { timeout: 20_000 }, async () => {
  const inline = new EntryVerifier({ limits: LIMITS, threads: 0 });
  const one = new EntryVerifier({ limits: LIMITS, threads: 1 });
  const two = new EntryVerifier({ limits: LIMITS, threads: 2 });
  try {
    for (const v of [inline, one, two]) v.setKeys([vkey(alice), vkey(bob), vkey(carol)]);
    const run = (v: EntryVerifier) => Promise.all(entries.map(([e, extra]) => outcome(v.check(bytes(e), extra))));
    const want = await run(inline);
    // What the comparison rests on: each kind of result is there.
    assert.deepEqual(want.map((o) => ('code' in o ? o.code : o.subject.kind)), ['release', 'rotation', 'signed', 'release', 'release', 'E_FORMAT', 'E_SIGNATURE', 'E_FORMAT', 'E_FORMAT']);
    assert.deepEqual(want.map((o) => ('code' in o ? o.code : o.signers.length)), [2, 2, 1, 1, 0, 'E_FORMAT', 'E_SIGNATURE', 'E_FORMAT', 'E_FORMAT']);
    // All at once (batches), then one at a time (a batch each), on one thread and on two.
    for (const v of [one, two]) {
      assert.deepEqual(await run(v), want);
      const each: Outcome[] = [];
      for (const [e, extra] of entries) each.push(await outcome(v.check(bytes(e), extra)));
      assert.deepEqual(each, want);
    }
    assert.equal(one.pending, 0);
  } finally {
    await Promise.all([inline.close(), one.close(), two.close()]);
  }
});

test('a verifier thread that dies fails the jobs it held with E_INTERNAL; a new thread checks the next ones', { timeout: 20_000 }, async () => {
  const v = new EntryVerifier({ limits: LIMITS, threads: 1 });
  try {
    v.setKeys([vkey(alice)]);
    assert.deepEqual((await v.check(bytes(release))).signers, [vkey(alice)]);
    // Jobs queued when the thread dies: sent to it on this turn's flush, never answered.
    const dead = v.workers[0]!;
    const held = Array.from({ length: 5 }, (_, i) => outcome(v.check(bytes(releaseEntry([alice], `held ${i}`, 'verifier-test')))));
    await dead.terminate();
    // Bounded: a job lost with the thread would never settle.
    let timer: NodeJS.Timeout | undefined;
    const settled = await Promise.race([Promise.all(held), new Promise<'lost'>((resolve) => (timer = setTimeout(() => resolve('lost'), 5000)))]);
    clearTimeout(timer);
    assert.notEqual(settled, 'lost', 'jobs held by the dead thread never settled');
    for (const o of settled as Outcome[]) assert.equal('code' in o ? o.code : 'checked', 'E_INTERNAL');
    assert.equal(v.pending, 0);
    assert.notEqual(v.workers[0], dead);
    assert.deepEqual((await v.check(bytes(releaseEntry([alice], 'after', 'verifier-test')))).signers, [vkey(alice)]);
  } finally {
    await v.close();
  }
});
