// The signed inventory (`sourcemesh.inventory/v1`) and the node key: build, sign, parse strictly.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import {
  buildInventory, formatGenerated, generatedSeconds, INVENTORY_PATH, nodeKeyFiles, openNodeKey, parseInventory, writeInventory,
} from '../../src/mirror/inventory.ts';
import { readSignerKeyFile } from '../../src/trust/key-file.ts';
import { createSigner, formatVerifierKey, KEY_TYPE_ED25519, openNote, parseVerifierKey, signerKeyFromSeed, signNote } from '../../src/trust/note.ts';
import { tempDir } from '../helpers/run.ts';

const seed = (label: string) => createHash('sha256').update(label).digest();
const key = signerKeyFromSeed('mirror.example.org', KEY_TYPE_ED25519, seed('node'));
const other = signerKeyFromSeed('mirror.example.org', KEY_TYPE_ED25519, seed('other'));
const hex = (c: string) => c.repeat(64);
const files = [
  { name: 'zlib-1.3.tar.gz', size: 1_500_000, sha256: hex('c') },
  { name: 'bash-2.05b.tar.gz', size: 1_956_216, sha256: hex('a') },
  { name: 'gcc-4.7.4.tar.bz2', size: 82_000_000, sha256: hex('b') },
];
const when = new Date('2026-11-22T12:00:00.750Z');

test('an inventory is one line of JSON, files sorted by name, signed by the node key; parse gives it back', () => {
  const note = buildInventory(files, key, when);
  const vkey = formatVerifierKey(key);
  const [text] = note.split('\n\n');
  assert.equal(text, JSON.stringify({ format: 'sourcemesh.inventory/v1', node: vkey, generated: '2026-11-22T12:00:00Z', files: [files[1], files[2], files[0]] }));
  assert.match(note, /\n\n\u2014 mirror\.example\.org [A-Za-z0-9+/]+=*\n$/);
  const inv = parseInventory(note, vkey);
  assert.deepEqual(inv.files.map((f) => f.name), ['bash-2.05b.tar.gz', 'gcc-4.7.4.tar.bz2', 'zlib-1.3.tar.gz']);
  assert.equal(inv.node, vkey);
  assert.equal(generatedSeconds(inv.generated), Math.floor(when.getTime() / 1000));
  // The same note opens with the generic C2SP verifier too.
  assert.equal(openNote(note, [{ ...parseVerifierKey(vkey), verify: () => ({}) }]).verified.length, 1);
  assert.deepEqual(parseInventory(buildInventory([], key, when), vkey).files, []);
});

test('parseInventory refuses other keys, tampering, and every non-canonical or unsafe listing', () => {
  const vkey = formatVerifierKey(key);
  const note = buildInventory(files, key, when);
  assert.throws(() => parseInventory(note, formatVerifierKey(other)), { code: 'E_SIGNATURE' });
  assert.throws(() => parseInventory(note.replace('"size":1956216', '"size":1956217'), vkey), { code: 'E_SIGNATURE' });
  const signed = (text: string) => signNote(text, [createSigner(key)]);
  const good = JSON.parse(note.split('\n')[0]!);
  const variants: [string, unknown][] = [
    ['pretty-printed', null],
    ['unknown field', { ...good, extra: 1 }],
    ['node of another key', { ...good, node: formatVerifierKey(other) }],
    ['unsorted', { ...good, files: [...good.files].reverse() }],
    ['duplicate', { ...good, files: [good.files[0], good.files[0]] }],
    ['hidden name', { ...good, files: [{ name: '.sourcemesh', size: 1, sha256: hex('a') }] }],
    ['name with a slash', { ...good, files: [{ name: '../etc/passwd', size: 1, sha256: hex('a') }] }],
    ['upper-case hex', { ...good, files: [{ name: 'a', size: 1, sha256: hex('A') }] }],
    ['negative size', { ...good, files: [{ name: 'a', size: -1, sha256: hex('a') }] }],
    ['fractional size', { ...good, files: [{ name: 'a', size: 1.5, sha256: hex('a') }] }],
    ['date with milliseconds', { ...good, generated: '2026-11-22T12:00:00.000Z' }],
    ['wrong format', { ...good, format: 'sourcemesh.inventory/v2' }],
  ];
  for (const [why, obj] of variants) {
    const text = obj === null ? JSON.stringify(good, null, 1).replace(/\n/g, ' ') + '\n' : JSON.stringify(obj) + '\n';
    assert.throws(() => parseInventory(signed(text), vkey), { code: 'E_FORMAT' }, why);
  }
  assert.throws(() => parseInventory(signed('line one\nline two\n'), vkey), { code: 'E_FORMAT' });
  assert.throws(() => parseInventory('not a note', vkey), { code: 'E_FORMAT' });
  assert.throws(() => buildInventory([files[0]!, files[0]!], key, when), { code: 'E_INPUT' });
  assert.throws(() => buildInventory([{ name: 'a/b', size: 1, sha256: hex('a') }], key, when), { code: 'E_INPUT' });
});

test('generated is RFC 3339 UTC in whole seconds', () => {
  assert.equal(formatGenerated(when), '2026-11-22T12:00:00Z');
  assert.equal(generatedSeconds('2026-11-22T12:00:00Z'), 1795348800);
  for (const bad of ['2026-11-22T12:00:00+00:00', '2026-11-22 12:00:00Z', '2026-02-30T00:00:00Z', '2026-11-22T12:00:00.5Z']) assert.equal(generatedSeconds(bad), undefined, bad);
});

test('writeInventory publishes atomically under .well-known/sourcemesh/', async (t) => {
  const root = await tempDir(t);
  const note = buildInventory(files, key, when);
  const file = await writeInventory(root, note);
  assert.equal(file, path.join(root, INVENTORY_PATH));
  assert.equal(await readFile(file, 'utf8'), note);
});

test('the node key is created once, mode 0600, with its vkey beside it; concurrent starts agree', async (t) => {
  const dir = path.join(await tempDir(t), '.sourcemesh');
  const paths = nodeKeyFiles(dir);
  const [a, b] = await Promise.all([openNodeKey(paths, 'mirror.example.org'), openNodeKey(paths, 'mirror.example.org')]);
  assert.deepEqual(Buffer.from(a.key.seed), Buffer.from(b.key.seed));
  assert.equal([a.created, b.created].filter(Boolean).length, 1);
  assert.equal((await stat(paths.key)).mode & 0o777, 0o600);
  assert.equal(await readFile(paths.pub, 'utf8'), formatVerifierKey(a.key) + '\n');
  const again = await openNodeKey(paths, 'ignored-name');
  assert.equal(again.created, false);
  assert.equal(again.key.name, 'mirror.example.org');
  assert.equal((await readSignerKeyFile(paths.key)).keyId, a.key.keyId);
  await writeFile(paths.key, 'PRIVATE+KEY+garbage\n');
  await assert.rejects(openNodeKey(paths, 'x'), { code: 'E_INPUT' });
  await assert.rejects(readSignerKeyFile(path.join(dir, 'missing')), { code: 'E_INPUT' });
});
