// The pure parts of log admission: entry types (signed notes, DSSE envelopes), the admission decision, the
// admission file, the per-key quota arithmetic, and the verifier threads against the same check in-process.
import assert from 'node:assert/strict';
import { createHash, createPublicKey, verify } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { isSourcemeshError } from '../../../src/errors.ts';
import { LIMITS } from '../../../src/limits.ts';
import { admissionPolicy, decide, parseAdmissionFile, type AdmissionMode } from '../../../src/trust/log/admission.ts';
import { pae } from '../../../src/trust/log/entries/dsse.ts';
import { checkEntry } from '../../../src/trust/log/entries/registry.ts';
import type { CheckedEntry, KeyLookup, KnownKey } from '../../../src/trust/log/entries/types.ts';
import { DAY_MS, HOUR_MS, take } from '../../../src/trust/log/quota.ts';
import { EntryVerifier } from '../../../src/trust/log/verifier.ts';
import {
  createSigner, createVerifier, formatSignatureLine, formatVerifierKey, KEY_TYPE_COSIGNATURE_V1, KEY_TYPE_ED25519, parseNote, signerKeyFromSeed, signNote, type SignerKey,
} from '../../../src/trust/note.ts';
import { chainIdOf, genesisPosition, keySetFrom, makeRotationStatement, stepForward, type ChainPosition } from '../../../src/trust/rotation.ts';
import { dsseEntry, releaseEntry } from './servers.ts';

const key = (name: string, type: number = KEY_TYPE_ED25519): SignerKey => signerKeyFromSeed(name, type, createHash('sha256').update(name).digest());
const vkey = (k: SignerKey) => formatVerifierKey(k);

function lookup(...keys: SignerKey[]): KeyLookup {
  const byId = new Map<string, KnownKey>(keys.map((k) => [`${k.keyId}:${k.name}`, { vkey: vkey(k), verifier: createVerifier(k) }]));
  return { byId: (name, keyId) => byId.get(`${keyId}:${name}`) };
}

const bytes = (s: string) => Buffer.from(s, 'utf8');
const check = (entry: string, keys: KeyLookup) => checkEntry(bytes(entry), keys, LIMITS);
const code = (fn: () => unknown): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (err) {
    return isSourcemeshError(err) ? err.code : `not ours: ${(err as Error).message}`;
  }
};

const alice = key('alice.admission.test');
const bob = key('bob.admission.test');
const carol = key('carol.admission.test');
const mallory = key('mallory.admission.test');

test('DSSE pre-authentication encoding: the DSSE v1 specification\'s test vector, and its ECDSA P-256 signature verifies over our encoding', () => {
  // secure-systems-lab/dsse protocol.md (version 1.0.0), "Test Vectors".
  const encoded = pae('http://example.com/HelloWorld', bytes('hello world'));
  assert.equal(Buffer.from(encoded).toString('utf8'), 'DSSEv1 29 http://example.com/HelloWorld 11 hello world');
  const coord = (decimal: string) => Buffer.from(BigInt(decimal).toString(16).padStart(64, '0'), 'hex').toString('base64url');
  const publicKey = createPublicKey({
    key: {
      kty: 'EC', crv: 'P-256',
      x: coord('46950820868899156662930047687818585632848591499744589407958293238635476079160'),
      y: coord('5640078356564379163099075877009565129882514886557779369047442380624545832820'),
    },
    format: 'jwk',
  });
  const sig = Buffer.from('A3JqsQGtVsJ2O2xqrI5IcnXip5GToJ3F+FnZ+O88SjtR6rDAajabZKciJTfUiHqJPcIAriEGAHTVeCUjW2JIZA==', 'base64');
  assert.ok(verify('sha256', encoded, { key: publicKey, dsaEncoding: 'ieee-p1363' }, sig));
  // The check can fail: one byte of the encoding changed.
  assert.ok(!verify('sha256', pae('http://example.com/HelloWorld', bytes('hello worle')), { key: publicKey, dsaEncoding: 'ieee-p1363' }, sig));
});

test('entry types: what is checked and what is refused', () => {
  const release = releaseEntry([alice, bob], '1.0');
  const c = check(release, lookup(alice, bob));
  assert.equal(c.type, 'release');
  assert.deepEqual(c.subject, { kind: 'release', project: 'log-test' });
  assert.deepEqual([...c.signers].sort(), [vkey(alice), vkey(bob)].sort());
  // Keys the log does not know are ignored (C2SP signed-note), not guessed at.
  assert.deepEqual(check(release, lookup(alice)).signers, [vkey(alice)]);
  assert.deepEqual(check(release, lookup()).signers, []);
  assert.deepEqual([...check(release, lookup()).named].sort(), [alice.name, bob.name].sort());
  // A known key's signature that does not verify refuses the entry.
  const lines = release.split('\n');
  const tampered = release.replace('version 1.0', 'version 1.1');
  assert.equal(code(() => check(tampered, lookup(alice))), 'E_SIGNATURE');
  // ... and so does a signature by another key under the name and key ID of a known one; under its own
  // key ID it is just an unknown signature.
  const text = `${lines.slice(0, 4).join('\n')}\n`;
  const malloryLine = parseNote(signNote(text, [createSigner(mallory)])).signatures[0]!;
  assert.equal(code(() => check(`${text}\n${formatSignatureLine({ ...malloryLine, name: alice.name, keyId: alice.keyId })}`, lookup(alice))), 'E_SIGNATURE');
  assert.deepEqual(check(`${text}\n${formatSignatureLine({ ...malloryLine, name: alice.name })}`, lookup(alice)).signers, []);
  // Two signature lines by one key: refused rather than verified twice.
  const twice = `${release}${release.split('\n\n')[1]!.split('\n')[0]}\n`;
  assert.equal(code(() => check(twice, lookup(alice, bob))), 'E_FORMAT');
  // Not a statement: bytes, an unsigned note, another note, an unknown first line.
  for (const junk of ['junk', '', 'sourcemesh.release/v1\nname x\nversion 1\nmanifest sha256 ' + '0'.repeat(64) + '\n', 'log.example/x\n1\nAAAA\n\n— x AAAAAAA=\n', 'sourcemesh.release/v2\n']) {
    assert.equal(code(() => check(junk, lookup(alice))), 'E_FORMAT', JSON.stringify(junk.slice(0, 40)));
  }
  assert.equal(code(() => checkEntry(Buffer.alloc(65_536, 0x7b), lookup(), LIMITS)), 'E_FORMAT');
});

test('entry types: rotation statements and DSSE envelopes', () => {
  const genesis = keySetFrom([vkey(alice), vkey(bob), vkey(carol)], 2, 'genesis');
  const at = genesisPosition(genesis);
  const next = keySetFrom([vkey(mallory), vkey(carol)], 1, 'next');
  const rotation = makeRotationStatement(at, next, [createSigner(alice), createSigner(bob)]);
  const c = check(rotation, lookup(alice, bob, carol));
  assert.equal(c.type, 'rotation');
  assert.ok(c.subject.kind === 'rotation');
  assert.equal(c.subject.chain, chainIdOf(genesis));
  assert.equal(c.subject.sequence, 1);
  assert.deepEqual(c.subject.vkeys, next.vkeys);
  assert.equal(c.subject.hash, stepForward(at, { statement: rotation }).hash);

  const envelope = dsseEntry([alice], 'tcc-0.9.27.tar.bz2');
  const d = check(envelope, lookup(alice));
  assert.equal(d.type, 'dsse');
  assert.deepEqual(d.signers, [vkey(alice)]);
  assert.deepEqual(check(envelope, lookup()).signers, []);
  // URL-safe base64 without padding is the same envelope to a DSSE verifier.
  const parsed = JSON.parse(envelope);
  const urlSafe = JSON.stringify({ ...parsed, payload: Buffer.from(parsed.payload, 'base64').toString('base64url'), signatures: parsed.signatures.map((s: { keyid: string; sig: string }) => ({ ...s, sig: Buffer.from(s.sig, 'base64').toString('base64url') })) });
  assert.deepEqual(check(urlSafe, lookup(alice)).signers, [vkey(alice)]);
  // The whole vkey as keyid: only if it is the known key's.
  assert.deepEqual(check(JSON.stringify({ ...parsed, signatures: [{ ...parsed.signatures[0], keyid: vkey(alice) }] }), lookup(alice)).signers, [vkey(alice)]);
  assert.deepEqual(check(JSON.stringify({ ...parsed, signatures: [{ ...parsed.signatures[0], keyid: vkey(alice).replace(/.$/, 'B') }] }), lookup(alice)).signers, []);
  // Refused: a bad signature by a known key, another payload type, a payload that is no in-toto statement.
  const badSig = JSON.stringify({ ...parsed, signatures: [{ ...parsed.signatures[0], sig: Buffer.alloc(64, 1).toString('base64') }] });
  assert.equal(code(() => check(badSig, lookup(alice))), 'E_SIGNATURE');
  assert.equal(code(() => check(JSON.stringify({ ...parsed, payloadType: 'application/json' }), lookup(alice))), 'E_FORMAT');
  assert.equal(code(() => check(JSON.stringify({ ...parsed, payload: Buffer.from('{"_type":"x"}').toString('base64') }), lookup(alice))), 'E_FORMAT');
  assert.equal(code(() => check(JSON.stringify({ ...parsed, extra: 1 }), lookup(alice))), 'E_FORMAT');
  assert.equal(code(() => check(JSON.stringify({ ...parsed, signatures: [] }), lookup(alice))), 'E_FORMAT');
  assert.equal(code(() => check('{"payloadType": ', lookup(alice))), 'E_FORMAT');
});

function checked(subject: CheckedEntry['subject'], signers: SignerKey[]): CheckedEntry {
  return { type: subject.kind, subject, signers: signers.map(vkey), named: signers.map((k) => k.name), describe: 'the entry' };
}

test('the admission decision: admitted keys, projects at their current key set, rotations that follow, any-signed, unsigned', () => {
  const genesis = keySetFrom([vkey(alice), vkey(bob), vkey(carol)], 2, 'genesis');
  const file = { keys: [vkey(mallory)], projects: [{ name: 'tcc', genesis, chain: chainIdOf(genesis) }] };
  const policy = (mode: AdmissionMode) => admissionPolicy(mode, [], file);
  const at = new Map<string, ChainPosition>();
  const pos = (chain: string) => at.get(chain);
  const ok = (d: ReturnType<typeof decide>) => d.ok;

  // An unlisted project: any admitted key.
  assert.ok(ok(decide(checked({ kind: 'release', project: 'other' }, [mallory]), policy('admitted'), pos)));
  assert.ok(!ok(decide(checked({ kind: 'release', project: 'other' }, [alice]), policy('admitted'), pos)));
  assert.ok(!ok(decide(checked({ kind: 'release', project: 'other' }, []), policy('admitted'), pos)));
  // A listed project: a threshold of its current key set, and an admitted key is no substitute.
  assert.ok(!ok(decide(checked({ kind: 'release', project: 'tcc' }, [alice]), policy('admitted'), pos)));
  assert.ok(!ok(decide(checked({ kind: 'release', project: 'tcc' }, [alice, mallory]), policy('admitted'), pos)));
  const yes = decide(checked({ kind: 'release', project: 'tcc' }, [alice, carol]), policy('admitted'), pos);
  assert.ok(yes.ok);
  assert.deepEqual([...yes.charge].sort(), [vkey(alice), vkey(carol)].sort());
  // Under --admit-any-signed as well: the project's rule holds; others need one valid signature.
  assert.ok(!ok(decide(checked({ kind: 'release', project: 'tcc' }, [mallory]), policy('any-signed'), pos)));
  assert.ok(ok(decide(checked({ kind: 'release', project: 'other' }, [key('anyone.test')]), policy('any-signed'), pos)));
  assert.ok(!ok(decide(checked({ kind: 'release', project: 'other' }, []), policy('any-signed'), pos)));
  assert.ok(ok(decide(checked({ kind: 'release', project: 'tcc' }, []), policy('unsigned'), pos)));

  // A rotation of the project's chain must follow the current key set and be signed by its threshold.
  const next = keySetFrom([vkey(key('new1')), vkey(key('new2'))], 2, 'next');
  const statement = makeRotationStatement(genesisPosition(genesis), next, [createSigner(alice), createSigner(bob)]);
  const moved = stepForward(genesisPosition(genesis), { statement });
  const rotation = (sequence: number, previous: string, signers: SignerKey[]) => checked({
    kind: 'rotation', chain: chainIdOf(genesis), sequence, previous, hash: moved.hash, threshold: 2, vkeys: next.vkeys,
  }, signers);
  assert.ok(!ok(decide(rotation(1, chainIdOf(genesis), [alice]), policy('admitted'), pos)));
  assert.ok(!ok(decide(rotation(2, chainIdOf(genesis), [alice, bob]), policy('admitted'), pos)));
  assert.ok(!ok(decide(rotation(1, '0'.repeat(64), [alice, bob]), policy('admitted'), pos)));
  const r = decide(rotation(1, chainIdOf(genesis), [alice, bob]), policy('admitted'), pos);
  assert.ok(r.ok && r.advance !== undefined);
  assert.equal(r.advance.sequence, 1);
  at.set(r.advance.chain, r.advance);
  // Once it is the log's, the old keys no longer release the project, and the same step is not taken twice.
  assert.ok(!ok(decide(checked({ kind: 'release', project: 'tcc' }, [alice, bob]), policy('admitted'), pos)));
  assert.ok(ok(decide(checked({ kind: 'release', project: 'tcc' }, [key('new1'), key('new2')]), policy('admitted'), pos)));
  assert.ok(!ok(decide(rotation(1, chainIdOf(genesis), [alice, bob]), policy('admitted'), pos)));
  // Anything else signed (DSSE): an admitted key.
  assert.ok(ok(decide(checked({ kind: 'signed' }, [mallory]), policy('admitted'), pos)));
  assert.ok(!ok(decide(checked({ kind: 'signed' }, [alice]), policy('admitted'), pos)));
});

test('the admission file: its one format, and one-line refusals of what is wrong in it', () => {
  const genesisKeys = [vkey(alice), vkey(bob), vkey(carol)];
  const good = JSON.stringify({ format: 'sourcemesh.log-admission/v1', keys: [vkey(mallory)], projects: [{ name: 'tcc', threshold: 2, keys: genesisKeys }] });
  const file = parseAdmissionFile(good, 'admit.json');
  assert.deepEqual(file.keys, [vkey(mallory)]);
  assert.equal(file.projects[0]!.chain, chainIdOf(keySetFrom(genesisKeys, 2, 'x')));
  const refused = (text: string, pattern: RegExp) => {
    try {
      parseAdmissionFile(text, 'admit.json');
    } catch (err) {
      assert.ok(isSourcemeshError(err, 'E_INPUT'), String(err));
      assert.match(err.message, pattern);
      assert.ok(!err.message.includes('\n'));
      return;
    }
    assert.fail(`accepted: ${text.slice(0, 80)}`);
  };
  refused('{', /admit\.json: not a log admission file: invalid JSON/);
  refused(JSON.stringify({ format: 'sourcemesh.log-admission/v2' }), /format/);
  refused(JSON.stringify({ format: 'sourcemesh.log-admission/v1', extra: 1 }), /not a log admission file/);
  refused(JSON.stringify({ format: 'sourcemesh.log-admission/v1', keys: ['nonsense'] }), /keys\.0: malformed verifier key/);
  refused(JSON.stringify({ format: 'sourcemesh.log-admission/v1', keys: [vkey(key('w.test', KEY_TYPE_COSIGNATURE_V1))] }), /not an Ed25519 note key/);
  refused(JSON.stringify({ format: 'sourcemesh.log-admission/v1', projects: [{ name: 'tcc', threshold: 4, keys: genesisKeys }] }), /threshold 4/);
  refused(JSON.stringify({ format: 'sourcemesh.log-admission/v1', projects: [{ name: 'tcc', threshold: 1, keys: genesisKeys }, { name: 'tcc', threshold: 2, keys: genesisKeys }] }), /listed twice/);
  refused(JSON.stringify({ format: 'sourcemesh.log-admission/v1', projects: [{ name: ' tcc', threshold: 1, keys: genesisKeys }] }), /white space/);
  refused(JSON.stringify({ format: 'sourcemesh.log-admission/v1', projects: [{ name: 'tcc', threshold: 1, keys: [vkey(alice), vkey(alice)] }] }), /listed twice/);
});

test('quotas: GCRA allows a whole allowance at once, then one unit per window/amount, and says exactly when', () => {
  // 5 per hour: five at once, the sixth after 12 minutes, not a millisecond before.
  let until = 0;
  const t0 = 1_000_000;
  for (let i = 0; i < 5; i++) {
    const r = take(until, t0, 1, 5, HOUR_MS);
    assert.ok(r.ok);
    until = r.until;
  }
  const sixth = take(until, t0, 1, 5, HOUR_MS);
  assert.ok(!sixth.ok);
  assert.equal(Math.round(sixth.retryAfterMs), HOUR_MS / 5);
  assert.ok(!take(until, t0 + HOUR_MS / 5 - 1, 1, 5, HOUR_MS).ok);
  assert.ok(take(until, t0 + HOUR_MS / 5, 1, 5, HOUR_MS).ok);
  // Bytes: an entry as large as the whole daily allowance fits once a day.
  const b = take(0, t0, 1000, 1000, DAY_MS);
  assert.ok(b.ok);
  assert.ok(!take(b.until, t0 + DAY_MS - 1, 1000, 1000, DAY_MS).ok);
  assert.ok(take(b.until, t0 + DAY_MS, 1000, 1000, DAY_MS).ok);
  // More than the whole allowance never fits.
  assert.deepEqual(take(0, t0, 1001, 1000, DAY_MS), { ok: false, retryAfterMs: Infinity });

  // For any arrivals: what is taken over a span D is at most amount + D·amount/window, and retrying when
  // told always succeeds.
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 50 }),
    fc.array(fc.tuple(fc.integer({ min: 0, max: 20 * 60_000 }), fc.integer({ min: 1, max: 3 })), { minLength: 1, maxLength: 300 }),
    (amount, arrivals) => {
      fc.pre(arrivals.every(([, units]) => units <= amount));
      let state = 0;
      let now = 0;
      let taken = 0;
      for (const [gap, units] of arrivals) {
        now += gap;
        const r = take(state, now, units, amount, HOUR_MS);
        if (r.ok) {
          state = r.until;
          taken += units;
        } else {
          assert.ok(r.retryAfterMs > 0);
          const later = take(state, now + r.retryAfterMs, units, amount, HOUR_MS);
          assert.ok(later.ok, 'retrying after Retry-After fails');
        }
      }
      assert.ok(taken <= amount + (now * amount) / HOUR_MS + 1e-6, `${taken} taken over ${now} ms with ${amount}/h`);
    },
  ), { seed: Number(process.env.SOURCEMESH_TEST_SEED ?? 12), numRuns: 200 });
});

test('verifier threads check entries as the calling thread does, with the keys set before each job', async () => {
  const inline = new EntryVerifier({ limits: LIMITS, threads: 0 });
  const pool = new EntryVerifier({ limits: LIMITS, threads: 2 });
  try {
    const entries = [releaseEntry([alice, bob], '1'), releaseEntry([mallory], '2'), dsseEntry([alice], 'x'), 'junk', releaseEntry([alice], '3').replace('version 3', 'version 4')];
    const outcome = async (v: EntryVerifier, e: string) => v.check(bytes(e)).then((c) => ({ signers: [...c.signers].sort(), type: c.type }), (err) => ({ code: err.code as string }));
    for (const v of [inline, pool]) v.setKeys([vkey(alice), vkey(bob)]);
    const a = await Promise.all(entries.map((e) => outcome(inline, e)));
    const b = await Promise.all(entries.map((e) => outcome(pool, e)));
    assert.deepEqual(b, a);
    assert.deepEqual(a.map((o) => ('code' in o ? o.code : o.signers.length)), [2, 0, 1, 'E_FORMAT', 'E_SIGNATURE']);
    // New keys apply to every job sent after setKeys; keys a submitter names count too.
    pool.setKeys([vkey(mallory)]);
    assert.deepEqual((await pool.check(bytes(entries[1]!))).signers, [vkey(mallory)]);
    assert.deepEqual((await pool.check(bytes(entries[0]!))).signers, []);
    assert.deepEqual((await pool.check(bytes(entries[0]!), [vkey(bob), 'not a key'])).signers, [vkey(bob)]);
  } finally {
    await Promise.all([inline.close(), pool.close()]);
  }
});
