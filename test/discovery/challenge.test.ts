// The discovery challenge's pure part: a node's answer verifies for exactly the nonce and host:port it was
// asked for, under exactly its key; anything else, and any bytes at all, are refused without a crash.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { answerChallenge, checkChallengeAnswer, hostPort, isNonce, newNonce } from '../../src/discovery/challenge.ts';
import { isSourcemeshError } from '../../src/errors.ts';
import { parseTarget } from '../../src/mirror/server.ts';
import { KEY_TYPE_ED25519, signerKeyFromSeed } from '../../src/trust/note.ts';

const node = signerKeyFromSeed('node.example', KEY_TYPE_ED25519, Buffer.alloc(32, 7));
const other = signerKeyFromSeed('node.example', KEY_TYPE_ED25519, Buffer.alloc(32, 8));
const nonceArb = fc.uint8Array({ minLength: 16, maxLength: 32 }).map((b) => Buffer.from(b).toString('hex'));
const whereArb = fc.tuple(fc.ipV4(), fc.integer({ min: 1, max: 65535 })).map(([a, p]) => hostPort(a, p));

test('an answer verifies for its nonce, address and key only', () => {
  fc.assert(fc.property(nonceArb, nonceArb, whereArb, whereArb, (n1, n2, w1, w2) => {
    const answer = Buffer.from(answerChallenge(node, n1, w1));
    checkChallengeAnswer(answer, node, n1, w1, 'u');
    const refused = (fn: () => void) => assert.throws(fn, (e) => isSourcemeshError(e, 'E_SIGNATURE'));
    if (n2 !== n1) refused(() => checkChallengeAnswer(answer, node, n2, w1, 'u'));
    if (w2 !== w1) refused(() => checkChallengeAnswer(answer, node, n1, w2, 'u'));
    refused(() => checkChallengeAnswer(answer, other, n1, w1, 'u'));
  }), { numRuns: 100 });
});

test('any bytes as an answer are refused with E_SIGNATURE, never another error', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), (b) => {
    assert.throws(() => checkChallengeAnswer(b, node, 'a'.repeat(32), '10.0.0.1:80', 'u'), (e) => isSourcemeshError(e, 'E_SIGNATURE'));
  }), { numRuns: 300 });
});

test('nonces and addresses as signed', () => {
  assert.ok(isNonce(newNonce()));
  for (const bad of ['', 'A'.repeat(32), 'a'.repeat(31), 'a'.repeat(65), `${'a'.repeat(32)}\n`]) assert.equal(isNonce(bad), false, bad);
  assert.throws(() => answerChallenge(node, 'x', '10.0.0.1:80'), (e) => isSourcemeshError(e, 'E_USAGE'));
  assert.equal(hostPort('::ffff:10.0.0.1', 8080), '10.0.0.1:8080');
  assert.equal(hostPort('fe80::1%eth0', 80), '[fe80::1]:80');
  assert.equal(hostPort('10.0.0.1', 80), '10.0.0.1:80');
});

test('serve\'s request target for the challenge: the nonce is the whole query, anything else 400', () => {
  const n = 'ab'.repeat(16);
  assert.deepEqual(parseTarget(`/.well-known/sourcemesh/challenge?nonce=${n}`, 4096), { kind: 'challenge', nonce: n });
  for (const bad of ['/.well-known/sourcemesh/challenge', `/.well-known/sourcemesh/challenge?nonce=${n}&x=1`, '/.well-known/sourcemesh/challenge?nonce=ZZ', `/.well-known/sourcemesh/challenge?x=1&nonce=${n}`]) {
    assert.equal(parseTarget(bad, 4096).kind, 'refused', bad);
  }
});
