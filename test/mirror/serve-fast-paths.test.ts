// serve's fast paths for the common request (issue 21, per-request cost): they must answer exactly
// as the general code does. parseTarget's shortcut for `/NAME` against the general parse, on targets
// built from the characters that matter (dots, slashes, percent signs, query marks, backslashes, bytes
// outside visible ASCII) and at the lengths where the 255-byte name limit and maxBytes bite.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { parseTarget, parseTargetGeneral } from '../../src/mirror/server.ts';

const chars = fc.constantFrom('a', 'Z', '0', '.', '-', '_', '~', '+', '#', '/', '%', '2', 'e', 'f', '?', '=', '\\', ' ', '\u007f', '\u0000', 'é', '\u202e', '*', ':');

test('parseTarget: the /NAME shortcut answers as the general parse does', () => {
  fc.assert(fc.property(fc.string({ unit: chars, maxLength: 24 }), fc.boolean(), (s, slash) => {
    const raw = slash ? `/${s}` : s;
    assert.deepEqual(parseTarget(raw, 2048), parseTargetGeneral(raw, 2048));
  }), { numRuns: 20_000 });
  // Around the name length limit (255 bytes) and a small maxBytes.
  fc.assert(fc.property(fc.integer({ min: 250, max: 260 }), fc.constantFrom('a', '.', '%41', '?'), fc.integer({ min: 1, max: 300 }), (n, tail, maxBytes) => {
    const raw = `/${'a'.repeat(n)}${tail}`;
    assert.deepEqual(parseTarget(raw, maxBytes), parseTargetGeneral(raw, maxBytes));
  }), { numRuns: 2000 });
});

test('parseTarget: the shortcut is taken for plain names and refuses nothing the general parse serves', () => {
  assert.deepEqual(parseTarget('/small-4k.bin', 2048), { kind: 'name', name: 'small-4k.bin' });
  assert.deepEqual(parseTarget(`/${'a'.repeat(255)}`, 2048), { kind: 'name', name: 'a'.repeat(255) });
  assert.equal(parseTarget(`/${'a'.repeat(256)}`, 2048).kind, 'refused');
  assert.equal(parseTarget('/.hidden', 2048).kind, 'refused');
  assert.equal(parseTarget('/a-b', 3).kind, 'refused');
});
