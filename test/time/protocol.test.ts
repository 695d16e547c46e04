// The Roughtime codec and exchange against published bytes:
//   - RFC 10049 Appendix B (from draft-ietf-ntp-roughtime, github.com/ietf-wg-ntp/draft-roughtime at
//     6157257b8ff6, test/fixtures/roughtime/rfc10049-appendix-b-malfeasance.json, the base64 lines joined):
//     three version-1 requests and responses chained by nonce. Our buildRequest makes each request byte
//     for byte from its nonce and key (VER, SRV, NONC, TYPE, ZZZZ, 1024 bytes), every response verifies,
//     every nonce is H(previous response || rand), and the causal-order breaks are found.
//   - roughenough (github.com/int08h/roughenough at 7534d165c1ca, crates/roughenough-protocol/testdata,
//     rfc-request.071039e5 and rfc-response.071039e5; the key is in its README): a draft-14 request and a
//     server's response (version 0x8000000c), verified, and decoded then re-encoded to the same bytes.
//   - our own batches: every response's PATH and INDX lead to ROOT; a tampered one is refused.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { generateKeyPairSync, randomBytes, sign as cryptoSign } from 'node:crypto';
import { isSourcemeshError } from '../../src/errors.ts';
import { signerKeyFromSeed, KEY_TYPE_COSIGNATURE_V1 } from '../../src/trust/note.ts';
import { checkProof } from '../../src/time/proof.ts';
import { buildRequest, chainedNonce, delegate, merkleBatch, parseRequest, respondBatch, verifyResponse } from '../../src/time/protocol.ts';
import { decodeMessage, decodePacket, encodeMessage, encodePacket, TAG, tagName } from '../../src/time/wire.ts';
import { ROOT } from '../helpers/run.ts';

const FIXTURES = path.join(ROOT, 'test/fixtures/roughtime');
const appendixB = readFileSync(path.join(FIXTURES, 'rfc10049-appendix-b-malfeasance.json'), 'utf8');
const report = JSON.parse(appendixB) as { responses: { rand?: string; publicKey: string; request: string; response: string }[] };
const b64 = (s: string) => Buffer.from(s, 'base64');

test('RFC 10049 Appendix B: our requests are its requests byte for byte; its chain verifies and shows the liar', () => {
  let previous: Buffer | undefined;
  for (const [i, r] of report.responses.entries()) {
    const request = b64(r.request);
    const parsed = parseRequest(request);
    assert.deepEqual(parsed.versions, [1]);
    // The layout: "ROUGHTIM", length 1024, 5 tags in ascending order, offsets 4, 36, 68, 72.
    assert.equal(request.subarray(0, 8).toString('latin1'), 'ROUGHTIM');
    assert.equal(request.readUInt32LE(8), 1024);
    const message = decodePacket(request, 'request');
    assert.deepEqual([...decodeMessage(message, 'request').keys()].map(tagName), ['VER', 'SRV', 'NONC', 'TYPE', 'ZZZZ']);
    assert.deepEqual([1, 2, 3, 4].map((k) => message.readUInt32LE(4 * k)), [4, 36, 68, 72]);
    assert.ok(buildRequest(parsed.nonce, { publicKey: b64(r.publicKey) }).equals(request), `request ${i} rebuilt byte for byte`);
    verifyResponse(request, b64(r.response), b64(r.publicKey));
    if (previous !== undefined) assert.ok(chainedNonce(previous, b64(r.rand!)).equals(parsed.nonce), `nonce ${i} is H(previous response || rand)`);
    previous = b64(r.response);
  }
  const checked = checkProof(appendixB, 'appendix B');
  assert.deepEqual(checked.responses.map((r) => Number(r.midpoint)), [1773685571, 1773599171, 1773599171]);
  // The data: the first server (FnDy...) is 86,400 s ahead of the other two, which agree; it breaks
  // causal order with both. (The appendix's prose names the third key, lRhH...; its bytes say otherwise.)
  assert.deepEqual(checked.breaks.map((b) => [b.earlier, b.later]), [[0, 1], [0, 2]]);
});

test('a proof with a tampered signature, a broken chain or a missing rand is refused, naming the response', () => {
  const tampered = structuredClone(report);
  const resp = b64(tampered.responses[1]!.response);
  resp[resp.length - 200] ^= 1;
  tampered.responses[1]!.response = resp.toString('base64');
  assert.throws(() => checkProof(JSON.stringify(tampered), 'p'), (e) => isSourcemeshError(e) && /response 1/.test(e.message));
  const rechained = structuredClone(report);
  rechained.responses[2]!.rand = randomBytes(32).toString('base64');
  assert.throws(() => checkProof(JSON.stringify(rechained), 'p'), (e) => isSourcemeshError(e, 'E_PROOF') && /response 2: its nonce is not H/.test(e.message));
  const unranded = structuredClone(report);
  delete unranded.responses[1]!.rand;
  assert.throws(() => checkProof(JSON.stringify(unranded), 'p'), (e) => isSourcemeshError(e, 'E_PROOF'));
  assert.throws(() => checkProof('{"responses": []}', 'p'), (e) => isSourcemeshError(e, 'E_FORMAT'));
});

test('roughenough\'s draft request and response: verified, and decoded and re-encoded to the same bytes', () => {
  const request = readFileSync(path.join(FIXTURES, 'roughenough-rfc-request.071039e5'));
  const response = readFileSync(path.join(FIXTURES, 'roughenough-rfc-response.071039e5'));
  const v = verifyResponse(request, response, b64('AW5uAoTSTDfG5NfY1bTh08GUnOqlRb+HVhbJ3ODJvsE='));
  assert.equal(v.midpoint, 0x682f8402n);
  assert.equal(v.radius, 5);
  assert.equal(v.version, 0x8000000c);
  for (const packet of [request, response]) {
    const m = decodeMessage(decodePacket(packet, 'p'), 'p');
    assert.ok(encodePacket(encodeMessage(m)).equals(packet));
  }
  const m = decodeMessage(decodePacket(response, 'p'), 'p');
  assert.deepEqual([...m.keys()].map(tagName), ['SIG', 'NONC', 'TYPE', 'PATH', 'SREP', 'CERT', 'INDX']);
  assert.deepEqual([...decodeMessage(m.get(TAG.SREP)!, 'SREP').keys()].map(tagName), ['VER', 'RADI', 'MIDP', 'VERS', 'ROOT']);
  // Another key, or one flipped bit anywhere in a signed part, and it is refused.
  assert.throws(() => verifyResponse(request, response, randomBytes(32)), (e) => isSourcemeshError(e));
  for (let at = 12; at < response.length; at += 7) {
    const bad = Buffer.from(response);
    bad[at] ^= 0x10;
    let ok = false;
    try {
      verifyResponse(request, bad, b64('AW5uAoTSTDfG5NfY1bTh08GUnOqlRb+HVhbJ3ODJvsE='));
      ok = true;
    } catch (err) {
      assert.ok(isSourcemeshError(err), String(err));
    }
    // Every byte is signed, or is the nonce, INDX or the framing that the checks compare.
    assert.equal(ok, false, `a flipped bit at ${at} was accepted`);
  }
});

function server() {
  const longTerm = signerKeyFromSeed('w.test', KEY_TYPE_COSIGNATURE_V1, randomBytes(32));
  const pair = generateKeyPairSync('ed25519');
  const online = { publicKey: Buffer.from(pair.publicKey.export({ format: 'jwk' }).x!, 'base64url'), sign: (m: Uint8Array) => cryptoSign(null, m, pair.privateKey) };
  return { longTerm, delegation: delegate(longTerm.seed, online, 1000n, 2000n) };
}

test('a batch of n requests under one signature: each response proves its request is in the tree', () => {
  const { longTerm, delegation } = server();
  for (const n of [1, 2, 3, 5, 8, 64]) {
    const requests = Array.from({ length: n }, () => {
      const nonce = randomBytes(32);
      return { packet: buildRequest(nonce, { publicKey: longTerm.publicKey }), nonce };
    });
    const responses = respondBatch(requests, delegation, { midpoint: 1500n, radius: 3 });
    const depth = Math.ceil(Math.log2(n));
    responses.forEach((r, i) => {
      const v = verifyResponse(requests[i]!.packet, r, longTerm.publicKey);
      assert.equal(v.midpoint, 1500n);
      const m = decodeMessage(decodePacket(r, 'r'), 'r');
      assert.equal(m.get(TAG.PATH)!.length, 32 * depth);
      assert.equal(m.get(TAG.INDX)!.readUInt32LE(0), i);
      assert.ok(r.length <= requests[i]!.packet.length, 'never larger than the request');
    });
    if (n > 1) {
      // Another request's response does not prove this one.
      assert.throws(() => verifyResponse(requests[0]!.packet, responses[1]!, longTerm.publicKey), (e) => isSourcemeshError(e, 'E_PROOF'));
    }
  }
  assert.equal(merkleBatch([Buffer.from('x')]).paths[0]!.length, 0);
  // MIDP outside the delegation's MINT..MAXT.
  const nonce = randomBytes(32);
  const req = buildRequest(nonce);
  const late = respondBatch([{ packet: req, nonce }], delegation, { midpoint: 2001n, radius: 3 })[0]!;
  assert.throws(() => verifyResponse(req, late, longTerm.publicKey), (e) => isSourcemeshError(e, 'E_SIGNATURE') && /outside the delegation/.test(e.message));
});

test('hostile messages: short, huge tag counts, unsorted tags, bad offsets, random bytes: E_FORMAT, never anything else', () => {
  const refuse = (bytes: Buffer, why: RegExp) => assert.throws(() => decodeMessage(bytes, 'm'), (e) => isSourcemeshError(e, 'E_FORMAT') && why.test(e.message));
  refuse(Buffer.alloc(0), /at least 4/);
  refuse(Buffer.alloc(6), /multiple of 4/);
  refuse(Buffer.from([0, 0, 0, 0]), /no tags/);
  refuse(Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]), /4294967295 tags/);
  refuse(Buffer.from([40, 0, 0, 0, 0, 0, 0, 0]), /header of 40 tags needs 320 bytes/);
  const two = encodeMessage([[TAG.NONC, Buffer.alloc(4)], [TAG.VER, Buffer.alloc(4)]]);
  const swapped = Buffer.from(two);
  swapped.writeUInt32LE(TAG.NONC, 8);
  swapped.writeUInt32LE(TAG.VER, 12);
  refuse(swapped, /strictly ascending/);
  const dup = Buffer.from(two);
  dup.writeUInt32LE(TAG.VER, 12);
  refuse(dup, /strictly ascending/);
  const odd = Buffer.from(two);
  odd.writeUInt32LE(2, 4);
  refuse(odd, /multiple of 4/);
  const far = Buffer.from(two);
  far.writeUInt32LE(4096, 4);
  refuse(far, /outside/);
  assert.throws(() => decodePacket(Buffer.from('ROUGHTIM\x10\0\0\0', 'latin1'), 'p'), (e) => isSourcemeshError(e, 'E_FORMAT') && /16-byte message/.test(e.message));
  assert.throws(() => decodePacket(Buffer.alloc(5000), 'p'), (e) => isSourcemeshError(e, 'E_FORMAT') && /at most 4096/.test(e.message));

  const valid = buildRequest(randomBytes(32), { publicKey: randomBytes(32) });
  fc.assert(fc.property(fc.array(fc.tuple(fc.nat(valid.length - 1), fc.nat(255)), { maxLength: 8 }), fc.uint8Array({ maxLength: 64 }), (edits, tail) => {
    const b = Buffer.from(valid);
    for (const [at, byte] of edits) b[at] = byte;
    for (const packet of [b, Buffer.concat([b.subarray(0, 12 + (tail.length * 4) % 1000), Buffer.from(tail)])]) {
      try {
        parseRequest(packet);
      } catch (err) {
        assert.ok(isSourcemeshError(err, 'E_FORMAT'), String(err));
      }
    }
  }), { numRuns: 2000 });
});
