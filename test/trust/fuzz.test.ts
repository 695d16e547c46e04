// Property tests over hostile input for every trust parser and verifier: malformed, mutated and
// oversized input gets a SourcemeshError with the expected code, never an acceptance of something
// changed, never another exception. Runs are bounded (numRuns) to keep the suite fast.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { formatCheckpoint, parseCheckpoint } from '../../src/trust/checkpoint.ts';
import { EMPTY_TREE_HASH, type Hash, leafHash, parseProofLines, proveConsistency, proveInclusion, verifyConsistency, verifyInclusion } from '../../src/trust/merkle.ts';
import {
  createSigner, createVerifier, formatSignerKey, formatVerifierKey, KEY_TYPE_COSIGNATURE_V1, KEY_TYPE_ED25519, openNote, parseNote,
  parseSignerKey, parseVerifierKey, signerKeyFromSeed, signNote,
} from '../../src/trust/note.ts';
import { entryBundlePath, formatEntryBundle, parseEntryBundle, parseTile, parseTilePath, TileHashReader, tilePath } from '../../src/trust/tiles.ts';
import { MemoryHashStore } from './reference-tree.ts';
import { outcome, outcomeAsync } from '../helpers/outcome.ts';

const RUNS = { numRuns: 300 };
const seed = (label: string) => createHash('sha256').update(label).digest();
const log = signerKeyFromSeed('fuzz.example/log', KEY_TYPE_ED25519, seed('log'));
const witness = signerKeyFromSeed('fuzz.example/w', KEY_TYPE_COSIGNATURE_V1, seed('w'));
const verifiers = [createVerifier(log), createVerifier(witness)];
const CHECKPOINT = formatCheckpoint({ origin: log.name, size: 12, rootHash: seed('root'), extensions: [] });
const NOTE = signNote(CHECKPOINT, [createSigner(log), createSigner(witness, { clock: () => 1_700_000_000 })]);

/** Byte-level mutations of a valid input: flips, insertions, deletions, truncations, duplications. */
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('repeat' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 80 }) }),
);

type Mutation = { kind: 'flip'; at: number; bit: number } | { kind: 'insert'; at: number; byte: number } | { kind: 'delete' | 'repeat'; at: number; count: number } | { kind: 'truncate'; at: number };

function mutate(input: Uint8Array, m: Mutation): Buffer {
  const b = Buffer.from(input);
  const at = b.length === 0 ? 0 : m.at % b.length;
  switch (m.kind) {
    case 'flip': b[at] = b[at]! ^ (1 << m.bit); return b;
    case 'insert': return Buffer.concat([b.subarray(0, at), Buffer.from([m.byte]), b.subarray(at)]);
    case 'delete': return Buffer.concat([b.subarray(0, at), b.subarray(at + m.count)]);
    case 'truncate': return b.subarray(0, at);
    case 'repeat': return Buffer.concat([b.subarray(0, at), b.subarray(at, at + m.count), b.subarray(at)]);
  }
}

test('notes: arbitrary bytes are parsed or refused with E_FORMAT', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
    outcome(() => parseNote(bytes), ['E_FORMAT']);
    outcome(() => openNote(bytes, verifiers), ['E_FORMAT', 'E_SIGNATURE']);
  }), RUNS);
  // Text built from the note alphabet reaches the signature-line rules.
  const piece = fc.constantFrom('\n', '\n\n', '\u2014 ', '\u2014', ' ', 'fuzz.example/log', '+', 'AAAA', 'AAAAAA==', '=', 'é', '\r', '\u00a0');
  fc.assert(fc.property(fc.array(piece, { maxLength: 40 }), (pieces) => {
    outcome(() => openNote(pieces.join(''), verifiers), ['E_FORMAT', 'E_SIGNATURE']);
  }), RUNS);
});

test('notes: a mutated signed note is refused, or is the same note', () => {
  const original = parseNote(NOTE);
  fc.assert(fc.property(fc.array(mutation, { minLength: 1, maxLength: 3 }), (ms) => {
    let bytes: Buffer = Buffer.from(NOTE);
    for (const m of ms) bytes = mutate(bytes, m);
    const opened = outcome(() => openNote(bytes, verifiers), ['E_FORMAT', 'E_SIGNATURE']);
    if (opened !== undefined) {
      // Accepted: the signed text is unchanged and every verified signature is one we made.
      assert.equal(opened.text, original.text);
      for (const s of opened.verified) {
        assert.ok(original.signatures.some((o) => o.keyId === s.keyId && o.name === s.name && Buffer.from(o.signature).equals(Buffer.from(s.signature))));
      }
    }
  }), { numRuns: 1000 });
});

test('notes: oversized input is refused before any work', () => {
  fc.assert(fc.property(fc.integer({ min: 256 * 1024 + 1, max: 2 * 1024 * 1024 }), (size) => {
    assert.throws(() => parseNote(Buffer.alloc(size, 0x41)), { code: 'E_FORMAT' });
  }), { numRuns: 10 });
  fc.assert(fc.property(fc.integer({ min: 65, max: 200 }), (count) => {
    const line = NOTE.slice(CHECKPOINT.length + 1).split('\n')[0]!;
    assert.throws(() => parseNote(`${CHECKPOINT}\n${`${line}\n`.repeat(count)}`), { code: 'E_FORMAT' });
  }), { numRuns: 10 });
});

test('vkeys and signer keys: arbitrary and mutated text is refused, or reads back as itself', () => {
  const vkey = formatVerifierKey(witness);
  const skey = formatSignerKey(log);
  fc.assert(fc.property(fc.string({ maxLength: 200 }), (text) => {
    outcome(() => parseVerifierKey(text), ['E_FORMAT', 'E_UNSUPPORTED']);
    outcome(() => parseSignerKey(text), ['E_FORMAT', 'E_UNSUPPORTED']);
  }), RUNS);
  fc.assert(fc.property(fc.array(mutation, { minLength: 1, maxLength: 2 }), (ms) => {
    let v: Buffer = Buffer.from(vkey);
    let s: Buffer = Buffer.from(skey);
    for (const m of ms) {
      v = mutate(v, m);
      s = mutate(s, m);
    }
    const parsedV = outcome(() => parseVerifierKey(v.toString('utf8')), ['E_FORMAT', 'E_UNSUPPORTED']);
    if (parsedV !== undefined) assert.equal(formatVerifierKey(parsedV), v.toString('utf8'));
    const parsedS = outcome(() => parseSignerKey(s.toString('utf8')), ['E_FORMAT', 'E_UNSUPPORTED']);
    if (parsedS !== undefined) assert.equal(formatSignerKey(parsedS), s.toString('utf8'));
  }), { numRuns: 500 });
});

test('checkpoints: accepted text always formats back to itself', () => {
  const line = fc.oneof(
    fc.string({ maxLength: 30 }),
    fc.constantFrom('0', '1', '01', '9007199254740991', '9007199254740992', '-0', '+5', Buffer.from(EMPTY_TREE_HASH).toString('base64'), seed('x').toString('base64'), seed('x').toString('base64url')),
  );
  fc.assert(fc.property(fc.array(line, { maxLength: 6 }), fc.boolean(), (lines, newline) => {
    const text = lines.join('\n') + (newline ? '\n' : '');
    const cp = outcome(() => parseCheckpoint(text), ['E_FORMAT']);
    if (cp !== undefined) assert.equal(formatCheckpoint(cp), text);
  }), { numRuns: 1000 });
  fc.assert(fc.property(fc.array(mutation, { minLength: 1, maxLength: 3 }), (ms) => {
    let bytes: Buffer = Buffer.from(CHECKPOINT);
    for (const m of ms) bytes = mutate(bytes, m);
    const text = bytes.toString('utf8');
    const cp = outcome(() => parseCheckpoint(text), ['E_FORMAT']);
    if (cp !== undefined) assert.equal(formatCheckpoint(cp), text);
  }), { numRuns: 500 });
});

test('proofs: hostile sizes, indexes and hashes are refused with E_FORMAT or E_PROOF, never accepted', async () => {
  const store = new MemoryHashStore();
  const leaves: Hash[] = [];
  for (let i = 0; i < 200; i++) {
    store.append(Buffer.from(`leaf ${i}`));
    leaves.push(leafHash(Buffer.from(`leaf ${i}`)));
  }
  const root = store.range.root();
  const hash = fc.oneof(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 40 }), fc.constant(root));
  const number = fc.oneof(fc.integer({ min: -5, max: 400 }), fc.constantFrom(2 ** 53, 2 ** 53 - 1, 0.5, Number.NaN, Infinity, -0));
  fc.assert(fc.property(number, number, hash, fc.array(hash, { maxLength: 70 }), hash, (index, size, leaf, proof, r) => {
    outcome(() => verifyInclusion(index, size, leaf, proof, r), ['E_FORMAT', 'E_PROOF']);
    outcome(() => verifyConsistency(index, size, leaf, r, proof), ['E_FORMAT', 'E_PROOF']);
  }), { numRuns: 1000 });
  // Real proofs with one element or one parameter changed are never accepted.
  const cases: Array<{ index: number; proof: Hash[]; old: number; oldRoot: Hash; cproof: Hash[] }> = [];
  for (let k = 0; k < 20; k++) {
    const index = (k * 37) % 200;
    const old = 1 + ((k * 53) % 199);
    const oldStore = new MemoryHashStore();
    for (let i = 0; i < old; i++) oldStore.append(Buffer.from(`leaf ${i}`));
    cases.push({ index, proof: await proveInclusion(index, 200, store), old, oldRoot: oldStore.range.root(), cproof: await proveConsistency(old, 200, store) });
  }
  fc.assert(fc.property(fc.nat(19), fc.nat(), fc.nat(255), fc.integer({ min: 1, max: 255 }), (c, at, byte, xor) => {
    const { index, proof, old, oldRoot, cproof } = cases[c]!;
    const bad = proof.map((h) => Buffer.from(h));
    bad[at % bad.length]![byte % 32] ^= xor;
    assert.throws(() => verifyInclusion(index, 200, leaves[index]!, bad, root), { code: 'E_PROOF' });
    if (cproof.length > 0) {
      const cbad = cproof.map((h) => Buffer.from(h));
      cbad[at % cbad.length]![byte % 32] ^= xor;
      assert.throws(() => verifyConsistency(old, 200, oldRoot, root, cbad), { code: 'E_PROOF' });
    }
    verifyInclusion(index, 200, leaves[index]!, proof, root);
    verifyConsistency(old, 200, oldRoot, root, cproof);
  }), RUNS);
  fc.assert(fc.property(fc.array(fc.string({ maxLength: 60 }), { maxLength: 70 }), (lines) => {
    outcome(() => parseProofLines(lines), ['E_FORMAT']);
  }), RUNS);
});

test('tile paths: accepted paths are canonical', () => {
  const part = fc.constantFrom('tile', 'entries', '0', '1', '63', '64', '000', '001', 'x001', 'x000', '999', '.p', '256', '255', '/', '.', 'x');
  fc.assert(fc.property(fc.oneof(fc.string({ maxLength: 60 }), fc.array(part, { maxLength: 12 }).map((p) => p.join(''))), (path) => {
    const parsed = outcome(() => parseTilePath(path), ['E_FORMAT']);
    if (parsed !== undefined) assert.equal(parsed.kind === 'entries' ? entryBundlePath(parsed) : tilePath(parsed), path);
  }), { numRuns: 1000 });
  fc.assert(fc.property(fc.integer({ min: 0, max: 63 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), fc.integer({ min: 1, max: 256 }), (level, index, width) => {
    assert.deepEqual(parseTilePath(tilePath({ level, index, width })), { kind: 'tile', level, index, width });
  }), RUNS);
});

test('tiles and entry bundles: arbitrary bytes are refused with E_FORMAT or read back exactly', async () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 2000 }), fc.integer({ min: -1, max: 300 }), (bytes, width) => {
    outcome(() => parseTile(bytes, width), ['E_FORMAT']);
    const entries = outcome(() => parseEntryBundle(bytes, width), ['E_FORMAT']);
    if (entries !== undefined) assert.deepEqual(Buffer.from(formatEntryBundle(entries)), Buffer.from(bytes));
  }), { numRuns: 1000 });
  // A tile source returning arbitrary bytes: an error or a hash, never a crash.
  await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 1, max: 70_000 }), async (bytes, size) => {
    const reader = new TileHashReader(size, () => bytes);
    await outcomeAsync(() => proveInclusion(size - 1, size, reader), ['E_FORMAT']);
  }), RUNS);
});
