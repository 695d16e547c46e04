import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { limitsWith } from '../../src/limits.ts';
import {
  computeKeyId, cosignatureMessage, createSigner, createVerifier, formatNote, formatSignatureLine, formatSignerKey, formatVerifierKey,
  KEY_TYPE_COSIGNATURE_V1, KEY_TYPE_ED25519, openNote, parseNote, parseSignerKey, parseVerifierKey, signerKeyFromSeed, signNote,
} from '../../src/trust/note.ts';

const vectors = JSON.parse(readFileSync(new URL('./vectors/trust-formats.json', import.meta.url), 'utf8'));
const seed = (label: string) => createHash('sha256').update(label).digest();
const logKey = signerKeyFromSeed('sourcemesh.example/log', KEY_TYPE_ED25519, seed('log'));
const otherKey = signerKeyFromSeed('sourcemesh.example/other', KEY_TYPE_ED25519, seed('other'));
const witnessKey = signerKeyFromSeed('witness.example/w1', KEY_TYPE_COSIGNATURE_V1, seed('w1'));
const clock = (t: number) => () => t;

test('C2SP signed-note spec example: the vkey parses and verifies the example note', () => {
  const v = vectors.signedNote.specVkeyExample;
  const key = parseVerifierKey(v.vkey);
  assert.equal(key.name, 'example.com/foo');
  assert.equal(key.keyId, 0x530d903a);
  assert.equal(key.type, KEY_TYPE_ED25519);
  assert.equal(formatVerifierKey(key), v.vkey);
  const opened = openNote(v.note, [createVerifier(key)]);
  assert.equal(opened.text, v.text);
  assert.equal(opened.verified.length, 1);
  assert.equal(opened.unknown.length, 0);
});

test('C2SP signed-note spec format example: text up to the last blank line, one 4+64-byte signature', () => {
  const v = vectors.signedNote.specFormatExample;
  const parsed = parseNote(v.note);
  assert.equal(parsed.text, v.text);
  assert.equal(parsed.signatures.length, 1);
  assert.equal(parsed.signatures[0]!.name, v.signerName);
  assert.equal(parsed.signatures[0]!.keyId.toString(16).padStart(8, '0'), v.keyId);
  assert.equal(parsed.signatures[0]!.signature.length, 64);
  // No key of ours signed it: rejected, as the spec requires.
  assert.throws(() => openNote(v.note, [createVerifier(logKey)]), { code: 'E_SIGNATURE' });
});

test('Go sumdb/note package example: our signer key parser, vkey and signature match Go byte for byte', () => {
  const v = vectors.signedNote.goPackageExample;
  const key = parseSignerKey(v.skey);
  assert.equal(formatVerifierKey(key), v.vkey);
  assert.equal(formatSignerKey(key), v.skey);
  assert.equal(signNote(v.text, [createSigner(key)]), v.note);
  assert.equal(openNote(v.note, [createVerifier(parseVerifierKey(v.vkey))]).text, v.text);
});

test('C2SP tlog-cosignature spec example: framing of the 0x04 signature and the signed message', () => {
  const v = vectors.cosignature.specExample;
  const parsed = parseNote(v.note);
  assert.equal(parsed.signatures.length, 2);
  const [logSig, cosig] = parsed.signatures as [typeof parsed.signatures[0], typeof parsed.signatures[0]];
  assert.equal(logSig.name, 'example.com/behind-the-sofa');
  assert.equal(logSig.keyId.toString(16).padStart(8, '0'), vectors.checkpoint.specExample.logKeyId);
  assert.equal(logSig.signature.length, 64);
  assert.equal(cosig.name, v.cosignerName);
  assert.equal(cosig.keyId.toString(16).padStart(8, '0'), v.keyId);
  // timestamped_signature: u64 big-endian timestamp, then 64 bytes of Ed25519 signature.
  assert.equal(cosig.signature.length, 8 + 64);
  assert.equal(Buffer.from(cosig.signature).readBigUInt64BE(0), BigInt(v.timestamp));
  // The signed message is exactly the spec's: header, time line, checkpoint body.
  assert.equal(Buffer.from(cosignatureMessage(parsed.text, v.timestamp)).toString('utf8'), v.signedMessage);
  // Signing that message with a cosigner key and our note code gives a line of the same shape.
  const line = formatSignatureLine({ name: v.cosignerName, keyId: Number.parseInt(v.keyId, 16), signature: cosig.signature });
  assert.ok(v.note.endsWith(line));
});

test('cosignatures: signed with a pinned clock, verified with the timestamp, key ID over type 0x04', () => {
  const text = 'example.com/log\n5\nq3/YiZ6q0I5kmdXIfLhtYJ2vgO1RZJZmfsANjAfJdMU=\n';
  const logged = signNote(text, [createSigner(logKey)]);
  const note = signNote(text, [createSigner(witnessKey, { clock: clock(1_700_000_123) })], parseNote(logged).signatures);
  const verifiers = [createVerifier(logKey), createVerifier(witnessKey)];
  const opened = openNote(note, verifiers);
  assert.deepEqual(opened.verified.map((s) => [s.name, s.timestamp]), [['sourcemesh.example/log', undefined], ['witness.example/w1', 1_700_000_123]]);
  // The key ID commits to the type: the same key as an Ed25519 note key has another ID.
  assert.equal(witnessKey.keyId, computeKeyId(witnessKey.name, 0x04, witnessKey.publicKey));
  assert.notEqual(witnessKey.keyId, computeKeyId(witnessKey.name, 0x01, witnessKey.publicKey));
  const vkey = formatVerifierKey(witnessKey);
  assert.equal(Buffer.from(vkey.split('+')[2]!, 'base64')[0], 0x04);
  assert.deepEqual(parseVerifierKey(vkey), { name: witnessKey.name, keyId: witnessKey.keyId, type: 0x04, publicKey: witnessKey.publicKey });
  assert.equal(formatSignerKey(parseSignerKey(formatSignerKey(witnessKey))), formatSignerKey(witnessKey));

  // The signature is over the time line too: another timestamp with the same signature bytes fails.
  const sig = Buffer.from(opened.verified[1]!.signature);
  sig.writeBigUInt64BE(1_700_000_124n, 0);
  const forged = formatNote(text, [opened.verified[0]!, { ...opened.verified[1]!, signature: sig }]);
  assert.throws(() => openNote(forged, verifiers), { code: 'E_SIGNATURE' });
  // A timestamp above 2^63-1 is invalid whatever the signature.
  sig.writeBigUInt64BE(2n ** 63n, 0);
  assert.throws(() => openNote(formatNote(text, [{ ...opened.verified[1]!, signature: sig }]), verifiers), { code: 'E_SIGNATURE' });
  // An Ed25519 verifier for the same name and public key has another key ID, so it ignores the cosignature.
  const asEd25519 = createVerifier({ name: witnessKey.name, type: 0x01, publicKey: witnessKey.publicKey, keyId: computeKeyId(witnessKey.name, 0x01, witnessKey.publicKey) });
  assert.throws(() => openNote(formatNote(text, [opened.verified[1]!]), [asEd25519]), { code: 'E_SIGNATURE' });
  // A cosigner needs a clock, and the clock must give POSIX seconds.
  assert.throws(() => createSigner(witnessKey), { code: 'E_INTERNAL' });
  assert.throws(() => signNote(text, [createSigner(witnessKey, { clock: clock(1.5) })]), { code: 'E_INTERNAL' });
});

test('unknown signatures are ignored; a bad signature from a known key rejects the note', () => {
  const text = 'release\n';
  const good = signNote(text, [createSigner(logKey), createSigner(otherKey)]);
  const sigs = parseNote(good).signatures;
  const [logSig, otherSig] = sigs as [typeof sigs[0], typeof sigs[0]];
  // Same name as a known key but another key ID, and the known key ID under another name: both unknown.
  const sameName = { ...otherSig, name: logKey.name };
  const sameId = { ...otherSig, keyId: logKey.keyId };
  const note = formatNote(text, [sameName, sameId, logSig]);
  const opened = openNote(note, [createVerifier(logKey)]);
  assert.equal(opened.verified.length, 1);
  assert.equal(opened.unknown.length, 2);
  // A known key whose signature does not verify: the whole note is refused, even with another good one.
  const broken = { ...otherSig, signature: Buffer.from(otherSig.signature).fill(7, 0, 1) };
  assert.throws(() => openNote(formatNote(text, [logSig, broken]), [createVerifier(logKey), createVerifier(otherKey)]), { code: 'E_SIGNATURE' });
  // Only unknown signatures: refused.
  assert.throws(() => openNote(good, [createVerifier(witnessKey)]), { code: 'E_SIGNATURE' });
  // An unknown signer's name is not held to our key name limit: the note's size bounds it.
  const longName = { ...otherSig, name: `${'n'.repeat(300)}.example` };
  assert.equal(openNote(formatNote(text, [longName, logSig]), [createVerifier(logKey)]).unknown[0]!.name, longName.name);
  assert.throws(() => parseVerifierKey(formatVerifierKey({ ...otherKey, name: longName.name })), { code: 'E_FORMAT' });
  // A repeated signature line counts once.
  assert.equal(openNote(formatNote(text, [logSig, logSig]), [createVerifier(logKey)]).verified.length, 1);
  // Two verifiers with one name and key ID are a configuration error.
  assert.throws(() => openNote(good, [createVerifier(logKey), createVerifier(logKey)]), { code: 'E_INPUT' });
});

test('signing replaces an existing signature by the same key and keeps the others first', () => {
  const text = 'x\n';
  const first = signNote(text, [createSigner(logKey), createSigner(otherKey)]);
  const again = signNote(text, [createSigner(logKey)], parseNote(first).signatures);
  assert.deepEqual(parseNote(again).signatures.map((s) => s.name), [otherKey.name, logKey.name]);
  assert.equal(openNote(again, [createVerifier(logKey), createVerifier(otherKey)]).verified.length, 2);
});

test('malformed notes are refused with E_FORMAT', () => {
  const text = 'hello\n';
  const good = signNote(text, [createSigner(logKey)]);
  const line = good.slice(text.length + 1);
  const cases: Array<[string, string | Uint8Array]> = [
    ['no blank line', `${text}${line}`],
    ['no signature lines', `${text}\n`],
    ['no final newline', good.slice(0, -1)],
    ['carriage return', good.replace('hello', 'hel\rlo')],
    ['tab', good.replace('hello', 'hel\tlo')],
    ['NUL', good.replace('hello', 'hel\0lo')],
    ['invalid UTF-8', Buffer.concat([Buffer.from([0xff]), Buffer.from(good)])],
    ['UTF-16 surrogate bytes', Buffer.concat([Buffer.from([0xed, 0xa0, 0x80]), Buffer.from(good)])],
    ['hyphen for em dash', good.replace('\u2014', '-')],
    ['no space after the dash', good.replace('\u2014 ', '\u2014')],
    ['no space before the signature', good.replace(`${logKey.name} `, logKey.name)],
    ['a plus in the name', good.replace(logKey.name, 'a+b')],
    ['a non-breaking space in the name', good.replace(logKey.name, 'a\u00a0b')],
    ['an empty name', good.replace(logKey.name, '')],
    ['URL-safe base64', `${text}\n\u2014 ${logKey.name} ${line.slice(`\u2014 ${logKey.name} `.length).replace(/[+/]/g, '-').replace(/^./, '_')}`],
    ['missing padding', good.replace(/=\n$/, '\n')],
    ['extra padding', good.replace(/\n$/, '==\n')],
    ['a signature of 4 bytes', `${text}\n\u2014 ${logKey.name} AAAAAA==\n`],
  ];
  for (const [what, note] of cases) {
    assert.throws(() => openNote(note, [createVerifier(logKey)]), { code: 'E_FORMAT' }, what);
  }
  // A blank line among the signatures makes the lines before it part of the text: no longer signed.
  assert.throws(() => openNote(`${good}\n${line}`, [createVerifier(logKey)]), { code: 'E_SIGNATURE' });
  // Non-canonical base64 (unused bits set) decodes to the same bytes in lenient decoders: refused.
  const sig = line.slice(`\u2014 ${logKey.name} `.length, -1);
  const last = sig.at(-2)!;
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const twisted = sig.slice(0, -2) + alphabet[alphabet.indexOf(last) ^ 1] + '=';
  assert.deepEqual(Buffer.from(twisted, 'base64'), Buffer.from(sig, 'base64'));
  assert.throws(() => openNote(good.replace(sig, twisted), [createVerifier(logKey)]), { code: 'E_FORMAT' });
});

test('note limits: size and signature count are checked before any signature', () => {
  const text = 'hello\n';
  const signers = Array.from({ length: 16 }, (_, i) => createSigner(signerKeyFromSeed(`k${i}.example`, 1, seed(`k${i}`))));
  // C2SP signed-note: verifiers MUST accept at least 16 signatures.
  const sixteen = signNote(text, signers);
  assert.equal(openNote(sixteen, [createVerifier(signerKeyFromSeed('k3.example', 1, seed('k3')))]).unknown.length, 15);
  assert.throws(() => parseNote(sixteen, limitsWith({ noteSignatures: 15 })), { code: 'E_FORMAT' });
  assert.throws(() => parseNote(sixteen, limitsWith({ noteBytes: sixteen.length - 1 })), { code: 'E_FORMAT' });
  assert.throws(() => parseNote(Buffer.alloc(300 * 1024, 0x61)), { code: 'E_FORMAT' });
  assert.throws(() => parseNote('a'.repeat(300 * 1024)), { code: 'E_FORMAT' });
  // We never sign what we would refuse.
  assert.throws(() => signNote(text, signers, [], limitsWith({ noteSignatures: 4 })), { code: 'E_FORMAT' });
});

test('note text is checked before signing', () => {
  for (const text of ['no newline', 'a\rb\n', 'a\u0000\n', 'lone \ud800 surrogate\n']) {
    assert.throws(() => signNote(text, [createSigner(logKey)]), { code: 'E_FORMAT' }, JSON.stringify(text));
  }
  assert.throws(() => signNote('x\n', []), { code: 'E_FORMAT' });
  assert.throws(() => signerKeyFromSeed('bad name', 1, seed('x')), { code: 'E_FORMAT' });
  assert.throws(() => signerKeyFromSeed('ok', 1, Buffer.alloc(31)), { code: 'E_FORMAT' });
  assert.throws(() => signerKeyFromSeed('ok', 2, seed('x')), { code: 'E_UNSUPPORTED' });
});

test('vkeys: strict parsing', () => {
  const vkey = formatVerifierKey(logKey);
  const [name, id, key] = vkey.split('+') as [string, string, string];
  const raw = Buffer.from(key, 'base64');
  const withType = (type: number) => Buffer.concat([Buffer.from([type]), raw.subarray(1)]).toString('base64');
  const format: Array<[string, string]> = [
    ['empty', ''],
    ['two parts', `${name}+${id}`],
    ['uppercase key ID', `${name}+${/[a-f]/.test(id) ? id.toUpperCase() : `${id.slice(0, 7)}G`}+${key}`],
    ['7-digit key ID', `${name}+${id.slice(1)}+${key}`],
    ['wrong key ID', `${name}+${(logKey.keyId ^ 1).toString(16).padStart(8, '0')}+${key}`],
    ['another name', `other+${id}+${key}`],
    ['space in name', `a b+${id}+${key}`],
    ['short key', `${name}+${id}+${raw.subarray(0, 32).toString('base64')}`],
    ['long key', `${name}+${id}+${Buffer.concat([raw, Buffer.from([0])]).toString('base64')}`],
    ['bad base64', `${name}+${id}+${key.slice(0, -1)}`],
    ['huge', `${name}+${id}+${'A'.repeat(5000)}`],
  ];
  for (const [what, text] of format) assert.throws(() => parseVerifierKey(text), { code: 'E_FORMAT' }, what);
  assert.throws(() => parseVerifierKey(`${name}+${id}+${withType(2)}`), { code: 'E_UNSUPPORTED' });
  assert.equal(formatVerifierKey(parseVerifierKey(vkey)), vkey);
});

test('signer keys: strict parsing, and errors never echo the key', () => {
  const skey = formatSignerKey(logKey);
  assert.ok(skey.startsWith('PRIVATE+KEY+sourcemesh.example/log+'));
  const secret = skey.split('+')[4]!;
  for (const text of [skey.replace('PRIVATE', 'PUBLIC'), skey.replace(/\+[0-9a-f]{8}\+/, '+00000000+'), skey.slice(0, -4), `${formatVerifierKey(logKey)}`]) {
    assert.throws(() => parseSignerKey(text), (err: any) => err.code === 'E_FORMAT' && !err.message.includes(secret) && !JSON.stringify(err.details).includes(secret));
  }
  const back = parseSignerKey(skey);
  assert.deepEqual(back.seed, logKey.seed);
  assert.deepEqual(back.publicKey, logKey.publicKey);
});
