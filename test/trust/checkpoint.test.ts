import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { limitsWith } from '../../src/limits.ts';
import { formatCheckpoint, openCheckpoint, parseCheckpoint } from '../../src/trust/checkpoint.ts';
import { EMPTY_TREE_HASH } from '../../src/trust/merkle.ts';
import { createSigner, createVerifier, KEY_TYPE_ED25519, parseNote, signerKeyFromSeed, signNote } from '../../src/trust/note.ts';

const vectors = JSON.parse(readFileSync(new URL('./vectors/trust-formats.json', import.meta.url), 'utf8'));
const root = createHash('sha256').update('a root').digest();
const rootB64 = root.toString('base64');

test('C2SP tlog-checkpoint spec example parses and formats back to the same text', () => {
  const v = vectors.checkpoint.specExample;
  const { text } = parseNote(v.note);
  const cp = parseCheckpoint(text);
  assert.equal(cp.origin, v.origin);
  assert.equal(cp.size, v.size);
  assert.equal(Buffer.from(cp.rootHash).toString('base64'), v.root);
  assert.deepEqual(cp.extensions, []);
  assert.equal(formatCheckpoint(cp), text);
});

test('checkpoints round-trip exactly, with extension lines', () => {
  const cp = { origin: 'sourcemesh.example/log', size: 123456789, rootHash: root, extensions: ['ext one', 'ext — two'] };
  const text = formatCheckpoint(cp);
  assert.equal(text, `sourcemesh.example/log\n123456789\n${rootB64}\next one\next — two\n`);
  assert.deepEqual({ ...parseCheckpoint(text), rootHash: root }, cp);
  assert.equal(formatCheckpoint({ origin: 'o', size: 0, rootHash: EMPTY_TREE_HASH, extensions: [] }), `o\n0\n${Buffer.from(EMPTY_TREE_HASH).toString('base64')}\n`);
});

test('malformed checkpoints are refused with E_FORMAT', () => {
  const cases: Array<[string, string]> = [
    ['two lines', `o\n1\n`],
    ['no final newline', `o\n1\n${rootB64}`],
    ['empty origin', `\n1\n${rootB64}\n`],
    ['leading zero', `o\n01\n${rootB64}\n`],
    ['plus sign', `o\n+1\n${rootB64}\n`],
    ['negative', `o\n-1\n${rootB64}\n`],
    ['space', `o\n 1\n${rootB64}\n`],
    ['decimal point', `o\n1.0\n${rootB64}\n`],
    ['exponent', `o\n1e3\n${rootB64}\n`],
    ['hex', `o\n0x10\n${rootB64}\n`],
    ['beyond 2^53', `o\n9007199254740993\n${rootB64}\n`],
    ['empty size', `o\n\n${rootB64}\n`],
    ['31-byte root', `o\n1\n${root.subarray(1).toString('base64')}\n`],
    ['33-byte root', `o\n1\n${Buffer.concat([root, root.subarray(0, 1)]).toString('base64')}\n`],
    ['unpadded root', `o\n1\n${rootB64.replace('=', '')}\n`],
    ['hex root', `o\n1\n${root.toString('hex')}\n`],
    ['URL-safe root', `o\n1\n${rootB64.slice(0, -2)}_=\n`],
    ['empty extension line', `o\n1\n${rootB64}\n\next\n`],
    ['carriage return', `o\r\n1\n${rootB64}\n`],
    ['size 0 with another root', `o\n0\n${rootB64}\n`],
  ];
  for (const [what, text] of cases) assert.throws(() => parseCheckpoint(text), { code: 'E_FORMAT' }, what);
  const many = `o\n1\n${rootB64}\n${'x\n'.repeat(17)}`;
  assert.throws(() => parseCheckpoint(many), { code: 'E_FORMAT' });
  assert.equal(parseCheckpoint(many, limitsWith({ checkpointExtensionLines: 17 })).extensions.length, 17);
  assert.throws(() => parseCheckpoint(`${'o'.repeat(257)}\n1\n${rootB64}\n`), { code: 'E_FORMAT' });
  // Formatting refuses what would not parse back to the same checkpoint.
  assert.throws(() => formatCheckpoint({ origin: 'a\nb', size: 1, rootHash: root, extensions: [] }), { code: 'E_FORMAT' });
  assert.throws(() => formatCheckpoint({ origin: 'o', size: 1, rootHash: root, extensions: [''] }), { code: 'E_FORMAT' });
  assert.throws(() => formatCheckpoint({ origin: 'o', size: 1.5, rootHash: root, extensions: [] }), { code: 'E_FORMAT' });
});

test('openCheckpoint verifies the log signature then parses', () => {
  const log = signerKeyFromSeed('sourcemesh.example/log', KEY_TYPE_ED25519, createHash('sha256').update('log').digest());
  const other = signerKeyFromSeed('sourcemesh.example/log', KEY_TYPE_ED25519, createHash('sha256').update('other').digest());
  const note = signNote(formatCheckpoint({ origin: log.name, size: 42, rootHash: root, extensions: [] }), [createSigner(log)]);
  const { checkpoint, note: opened } = openCheckpoint(note, [createVerifier(log)]);
  assert.equal(checkpoint.size, 42);
  assert.equal(opened.verified[0]!.name, log.name);
  assert.throws(() => openCheckpoint(note, [createVerifier(other)]), { code: 'E_SIGNATURE' });
  // A signed note whose text is not a checkpoint.
  assert.throws(() => openCheckpoint(signNote('not a checkpoint\n', [createSigner(log)]), [createVerifier(log)]), { code: 'E_FORMAT' });
});
