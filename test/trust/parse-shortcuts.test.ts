// The shortcuts the log's verifier threads take when parsing entries (src/trust/log/verifier.ts: every
// µs there is a µs of every admitted append): each checked against the plain definition it replaces.
//   decodeBase64: canonical iff re-encoding the bytes gives the text back (RFC 4648 §3.5), decided from the
//     unused bits of the last character instead of encoding again;
//   parseNote of bytes: the text's bytes are the input's up to the last blank line, not the text encoded again.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { decodeBase64 } from '../../src/trust/base64.ts';
import { createSigner, KEY_TYPE_ED25519, parseNote, signerKeyFromSeed, signNote } from '../../src/trust/note.ts';

const RUNS = { numRuns: 500, seed: Number(process.env.SOURCEMESH_TEST_SEED ?? 7) };
const DIGITS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** The definition: standard alphabet, padded, and the bytes encode back to the same text. */
function byDefinition(text: string): Buffer | undefined {
  if (text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(text)) return undefined;
  const bytes = Buffer.from(text, 'base64');
  return bytes.toString('base64') === text ? bytes : undefined;
}

test('decodeBase64 takes exactly the canonical spellings: every last character before one and two padding characters', () => {
  let refused = 0;
  for (const last of DIGITS) {
    for (const text of [`QUJDQ${last}==`, `QUJDQU${last}=`, `A${last}==`, `AA${last}=`]) {
      assert.deepEqual(decodeBase64(text), byDefinition(text), text);
      if (byDefinition(text) === undefined) refused++;
    }
  }
  // What can fail: 60 of 64 characters leave bits set before "==", 48 before "=".
  assert.equal(refused, 2 * 60 + 2 * 48);
  assert.equal(decodeBase64('QR=='), undefined);
  assert.deepEqual(decodeBase64('QQ=='), Buffer.from([0x41]));
});

test('decodeBase64 agrees with the definition on random text near base64', () => {
  const near = fc.string({ unit: fc.constantFrom(...DIGITS, '=', '-', '_', ' ', '\n'), maxLength: 24 });
  const encoded = fc.uint8Array({ maxLength: 20 }).map((b) => Buffer.from(b).toString('base64'));
  const tweaked = fc.tuple(encoded, fc.nat(), fc.constantFrom(...DIGITS, '=')).map(([t, at, c]) => (t.length === 0 ? t : t.slice(0, at % t.length) + c + t.slice((at % t.length) + 1)));
  fc.assert(fc.property(fc.oneof(near, encoded, tweaked), (text) => {
    assert.deepEqual(decodeBase64(text), byDefinition(text));
  }), RUNS);
});

test('parseNote of bytes: textBytes are the text encoded in UTF-8, blank lines and multi-byte characters included', () => {
  const signer = createSigner(signerKeyFromSeed('parse.test/key', KEY_TYPE_ED25519, Buffer.alloc(32, 7)));
  const line = fc.string({ unit: fc.constantFrom('a', 'é', '—', '😀', ' ', '\uFEFF', 'z'), maxLength: 12 });
  fc.assert(fc.property(fc.array(line, { minLength: 1, maxLength: 5 }), (lines) => {
    const text = `${lines.join('\n')}\n`;
    const note = signNote(text, [signer]);
    const parsed = parseNote(Buffer.from(note, 'utf8'));
    assert.equal(parsed.text, text);
    assert.deepEqual(Buffer.from(parsed.textBytes), Buffer.from(text, 'utf8'));
    assert.deepEqual(Buffer.from(parseNote(note).textBytes), Buffer.from(text, 'utf8'));
  }), RUNS);
});
