// `sourcemesh key generate` through the real CLI: key files, modes, no silent overwrite.
import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { createSigner, createVerifier, formatVerifierKey, KEY_TYPE_COSIGNATURE_V1, KEY_TYPE_ED25519, openNote, parseSignerKey, parseVerifierKey, signNote } from '../../../src/trust/note.ts';
import { runCli, tempDir } from '../../helpers/run.ts';

test('key generate writes a 0600 signer key, its vkey in KEYFILE.pub and on stdout', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'log.key');
  const r = await runCli(['key', 'generate', 'log.example.org/main', '-o', file]);
  assert.equal(r.code, 0, r.stderr);
  const vkey = r.stdout.trim();
  assert.equal((await stat(file)).mode & 0o777, 0o600);
  assert.equal(await readFile(`${file}.pub`, 'utf8'), `${vkey}\n`);
  const signer = parseSignerKey((await readFile(file, 'utf8')).trim());
  assert.equal(signer.type, KEY_TYPE_ED25519);
  assert.equal(signer.name, 'log.example.org/main');
  assert.equal(formatVerifierKey(signer), vkey);
  // The key signs, the vkey verifies.
  const note = signNote('hello\n', [createSigner(signer)]);
  assert.equal(openNote(note, [createVerifier(parseVerifierKey(vkey))]).verified.length, 1);

  const w = await runCli(['key', 'generate', 'witness.example.org', '--type', 'cosignature', '-o', path.join(dir, 'w.key'), '--json']);
  assert.equal(w.code, 0, w.stderr);
  const json = JSON.parse(w.stdout);
  assert.equal(json.type, 'cosignature');
  assert.equal(parseVerifierKey(json.vkey).type, KEY_TYPE_COSIGNATURE_V1);
  assert.equal(parseSignerKey((await readFile(json.keyFile, 'utf8')).trim()).type, KEY_TYPE_COSIGNATURE_V1);
});

test('key generate refuses to overwrite a key unless --force, and refuses bad names and types', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'k');
  assert.equal((await runCli(['key', 'generate', 'a.example', '-o', file])).code, 0);
  const before = await readFile(file, 'utf8');
  const again = await runCli(['key', 'generate', 'a.example', '-o', file]);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /exists; refusing to overwrite.*\[E_INPUT\]/);
  assert.equal(await readFile(file, 'utf8'), before);
  // Only the .pub exists: still refused, and no private key left behind.
  const other = path.join(dir, 'other');
  await writeFile(`${other}.pub`, 'something\n');
  assert.equal((await runCli(['key', 'generate', 'b.example', '-o', other])).code, 2);
  await assert.rejects(stat(other), { code: 'ENOENT' });
  const forced = await runCli(['key', 'generate', 'a.example', '-o', file, '--force']);
  assert.equal(forced.code, 0, forced.stderr);
  assert.notEqual(await readFile(file, 'utf8'), before);
  assert.equal((await stat(file)).mode & 0o777, 0o600);
  assert.equal(await readFile(`${file}.pub`, 'utf8'), forced.stdout);
  for (const args of [['has space'], ['plus+sign'], [''], ['ok.example', '--type', 'rsa']]) {
    const r = await runCli(['key', 'generate', args[0]!, '-o', path.join(dir, 'bad'), ...args.slice(1)]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /\[E_USAGE\]/);
  }
  await assert.rejects(stat(path.join(dir, 'bad')), { code: 'ENOENT' });
});
