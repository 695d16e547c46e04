// Our strict bencoding (BEP 3): vectors, every non-canonical spelling refused, bounds, and fast-check
// properties: values round-trip, and any input that decodes is exactly the encoding of what it decodes to.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { isSourcemeshError } from '../../src/errors.ts';
import { limitsWith } from '../../src/limits.ts';
import { bdict, decode, decodePrefix, encode, type BValue } from '../../src/torrent/bencode.ts';

const B = (s: string) => Buffer.from(s, 'latin1');
const isFormat = (e: unknown) => isSourcemeshError(e, 'E_FORMAT');

test('BEP 3 vectors decode and encode back', () => {
  const vectors: [string, BValue][] = [
    ['i3e', 3], ['i-3e', -3], ['i0e', 0], ['4:spam', B('spam')], ['0:', B('')],
    ['l4:spam4:eggse', [B('spam'), B('eggs')]], ['le', []], ['de', new Map()],
    ['d3:cow3:moo4:spam4:eggse', bdict([['cow', B('moo')], ['spam', B('eggs')]])],
    ['d4:spaml1:a1:bee', bdict([['spam', [B('a'), B('b')]]])],
    ['i9007199254740991e', Number.MAX_SAFE_INTEGER],
  ];
  for (const [text, value] of vectors) {
    assert.deepEqual(decode(B(text), 'v'), value, text);
    assert.equal(encode(value).toString('latin1'), text);
  }
});

test('dictionary keys are ordered as raw bytes, not as text', () => {
  // 0xe9 (é in latin1) sorts after 'z'; a key with a 0x00 byte sorts before any longer key it prefixes.
  const d = new Map<string, BValue>([['z', 1], ['\u00e9', 2], ['a\u0000', 3], ['a', 4]]);
  assert.equal(encode(d).toString('latin1'), 'd1:ai4e2:a\u0000i3e1:zi1e1:\u00e9i2ee');
  assert.deepEqual(decode(encode(d), 'd'), d);
});

test('every non-canonical or malformed spelling is refused with E_FORMAT naming the input and the offset', () => {
  const bad = [
    'i03e', 'i-0e', 'i-e', 'ie', 'i1', 'i1x', 'i99999999999999999e', 'i9007199254740992e', '03:abc', '4:abc', '-1:a', '3abc',
    'd1:bi1e1:ai2ee', 'd1:ai1e1:ai2ee', 'di1ei2ee', 'l', 'd', 'li1e', 'x', '', 'i1ei2e', 'd1:a', 'l4:spam',
  ];
  for (const text of bad) {
    assert.throws(() => decode(B(text), 'input.torrent'), (e: unknown) => isFormat(e) && /input\.torrent: bad bencoding at byte \d+/.test((e as Error).message), JSON.stringify(text));
  }
});

test('depth and value counts are bounded before anything is built', () => {
  const limits = limitsWith({ bencodeDepth: 8, bencodeItems: 100 });
  assert.doesNotThrow(() => decode(B('l'.repeat(8) + 'e'.repeat(8)), 'd', limits));
  assert.throws(() => decode(B('l'.repeat(9) + 'e'.repeat(9)), 'd', limits), (e: unknown) => isFormat(e) && /deeper than 8/.test((e as Error).message));
  assert.throws(() => decode(B(`l${'i1e'.repeat(100)}e`), 'd', limits), (e: unknown) => isFormat(e) && /more than 100 values/.test((e as Error).message));
  // A million nested lists: the default depth bound answers at once, no stack overflow.
  assert.throws(() => decode(B('l'.repeat(1_000_000)), 'deep'), isFormat);
  // A string length far past the input is refused without allocating it.
  assert.throws(() => decode(B('99999999999999999999:x'), 'big'), (e: unknown) => isFormat(e) && /longer than the input/.test((e as Error).message));
});

test('decodePrefix stops after the first value (BEP 9 messages carry bytes after theirs)', () => {
  const r = decodePrefix(B('d8:msg_typei1e5:piecei0eeRAW'), 'm');
  assert.equal(r.end, 'd8:msg_typei1e5:piecei0ee'.length);
});

const value: fc.Arbitrary<BValue> = fc.letrec<{ v: BValue }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.maxSafeInteger(),
    fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)),
    fc.array(tie('v'), { maxLength: 5 }),
    fc.array(fc.tuple(fc.uint8Array({ maxLength: 6 }).map((a) => Buffer.from(a).toString('latin1')), tie('v')), { maxLength: 5 }).map((es) => new Map(es)),
  ),
})).v;

test('property: any value round-trips through encode and decode', () => {
  fc.assert(fc.property(value, (v) => {
    const bytes = encode(v);
    assert.deepEqual(decode(bytes, 'p'), v);
    assert.ok(encode(decode(bytes, 'p')).equals(bytes));
  }), { numRuns: 2000 });
});

test('property: whatever decodes is canonical (re-encoding gives the same bytes), and nothing else escapes E_FORMAT', () => {
  const check = (bytes: Buffer) => {
    let v: BValue;
    try {
      v = decode(bytes, 'fuzz');
    } catch (e) {
      assert.ok(isFormat(e), `not E_FORMAT: ${String(e)}`);
      return;
    }
    assert.ok(encode(v).equals(bytes), `non-canonical input accepted: ${bytes.toString('latin1')}`);
  };
  // Random bytes from bencode's alphabet, and valid encodings with one byte changed, inserted or removed.
  const alphabet = fc.constantFrom(...'ilde0123456789:-ab'.split('')).map((c) => c.charCodeAt(0));
  fc.assert(fc.property(fc.array(alphabet, { maxLength: 40 }), (a) => check(Buffer.from(a))), { numRuns: 5000 });
  fc.assert(fc.property(value, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('set', 'insert', 'delete'), (v, at, b, how) => {
    const bytes = encode(v);
    const i = at % (bytes.length + 1);
    const mutated = how === 'set' && i < bytes.length ? Buffer.concat([bytes.subarray(0, i), Buffer.from([b]), bytes.subarray(i + 1)])
      : how === 'insert' ? Buffer.concat([bytes.subarray(0, i), Buffer.from([b]), bytes.subarray(i)])
      : Buffer.concat([bytes.subarray(0, i), bytes.subarray(i + 1)]);
    check(mutated);
  }), { numRuns: 5000 });
});
