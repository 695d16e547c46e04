// Small input files are read whole, and the size stat reports is no bound: a character device such as
// /dev/zero (size 0, endless), a FIFO (size 0) or a file that grows. Each such input (a manifest, a
// live-bootstrap sources file, a key, an admission file, a TLS certificate) is read through
// src/fs/bounded-read.ts: past its limit one line and exit 2, never unbounded memory; a FIFO holding a
// good manifest works (the old loader read its first 64 bytes to guess the kind, then read the rest).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { readBoundedFile } from '../../src/fs/bounded-read.ts';
import { readSignerKeyFile } from '../../src/trust/key-file.ts';
import { bytes, distfile, writeManifest } from '../helpers/distfiles.ts';
import { runCli, tempDir } from '../helpers/run.ts';

const oneLine = (s: string) => assert.equal(s.trim().split('\n').length, 1, s);

test('a manifest that is /dev/zero is refused at the manifest limit: E_MANIFEST, one line, exit 2', async (t) => {
  const dir = await tempDir(t);
  const r = await runCli(['verify', '-m', '/dev/zero', dir], { timeoutMs: 60_000 });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /\/dev\/zero: the manifest is larger than 67108864 bytes \(its limit\).*\[E_MANIFEST\]/);
  oneLine(r.stderr);
});

test('a manifest given through a FIFO (<(...)) is read whole, once', async (t) => {
  const dir = await tempDir(t);
  const body = bytes(1000, 3);
  const m = await writeManifest(dir, [distfile('a.bin', body, ['http://127.0.0.1:9/a.bin'])]);
  const out = path.join(dir, 'out');
  await mkdir(out);
  await writeFile(path.join(out, 'a.bin'), body);
  const fifo = path.join(dir, 'manifest.fifo');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0, 'mkfifo');
  const text = await readFile(m);
  // The writer opens the FIFO once and writes the manifest in small pieces, as a pipe would deliver it.
  const writer = createWriteStream(fifo);
  const fed = (async () => {
    for (let i = 0; i < text.length; i += 7) if (!writer.write(text.subarray(i, i + 7))) await new Promise<void>((r) => writer.once('drain', () => r()));
    writer.end();
  })();
  const r = await runCli(['verify', '-m', fifo, out], { timeoutMs: 60_000 });
  await fed;
  assert.equal(r.code, 0, r.stderr + r.stdout);
});

test('a live-bootstrap sources file that is /dev/zero (in a steps/ tree) is refused: E_MANIFEST, exit 2', async (t) => {
  const dir = await tempDir(t);
  const steps = path.join(dir, 'steps');
  await mkdir(path.join(steps, 'a'), { recursive: true });
  await writeFile(path.join(steps, 'manifest'), 'build: a\n');
  await symlink('/dev/zero', path.join(steps, 'a', 'sources'));
  const r = await runCli(['verify', '-m', steps, dir], { timeoutMs: 60_000 });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /a\/sources: the sources file is larger than.*\[E_MANIFEST\]/);
  oneLine(r.stderr);
});

test('a mirror list (--mirror-list) that is /dev/zero: E_INPUT, one line, exit 2', async (t) => {
  const dir = await tempDir(t);
  const m = await writeManifest(dir, [distfile('a.bin', bytes(10, 1), [])]);
  const r = await runCli(['fetch', m, '-o', path.join(dir, 'out'), '--mirror-list', '/dev/zero', '--policy', 'mirrors-only'], { env: { SOURCEMESH_STORE: path.join(dir, 'store') }, timeoutMs: 60_000 });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /\/dev\/zero: the mirror list \(--mirror-list\) is larger than.*\[E_INPUT\]/);
  oneLine(r.stderr);
});

test('key files, admission files and TLS certificates that are /dev/zero: E_INPUT, one line, exit 2', async (t) => {
  const dir = await tempDir(t);
  await assert.rejects(readSignerKeyFile('/dev/zero'), /the key is larger than 4096 bytes/);
  const witness = await runCli(['witness', 'serve', '--state', path.join(dir, 'w'), '--key', '/dev/zero', '--listen', '127.0.0.1:0', '--log', 'x+01234567+AQ'], { timeoutMs: 60_000 });
  assert.equal(witness.code, 2, witness.stderr);
  assert.match(witness.stderr, /\/dev\/zero: the key is larger than 4096 bytes.*\[E_INPUT\]/);
  oneLine(witness.stderr);
  const key = path.join(dir, 'log.key');
  const gen = await runCli(['key', 'generate', 'log.example/test', '-o', key]);
  assert.equal(gen.code, 0, gen.stderr);
  const log = await runCli(['log', 'serve', '--root', path.join(dir, 'log'), '--key', key, '--listen', '127.0.0.1:0', '--admit-file', '/dev/zero'], { timeoutMs: 60_000 });
  assert.equal(log.code, 2, log.stderr);
  assert.match(log.stderr, /\/dev\/zero: the admission file is larger than.*\[E_INPUT\]/);
  oneLine(log.stderr);
  const serve = await runCli(['serve', '--root', dir, '--listen', '127.0.0.1:0', '--tls-cert', '/dev/zero', '--tls-key', '/dev/zero'], { timeoutMs: 60_000 });
  assert.equal(serve.code, 2, serve.stderr);
  assert.match(serve.stderr, /\/dev\/zero: the TLS certificate \(--tls-cert\) is larger than.*\[E_INPUT\]/);
  // serve first reports the node key it made for the root; the error is one line of its own.
  assert.equal(serve.stderr.split('\n').filter((l) => /error/.test(l)).length, 1, serve.stderr);
});

test('readBoundedFile: a missing file or a directory is E_INPUT; a file of exactly the limit is read', async (t) => {
  const dir = await tempDir(t);
  await assert.rejects(readBoundedFile(path.join(dir, 'missing'), 10, 'thing'), (err: NodeJS.ErrnoException) => err.code === 'E_INPUT' && /missing: cannot read the thing: ENOENT/.test(err.message));
  await assert.rejects(readBoundedFile(dir, 10, 'thing'), (err: NodeJS.ErrnoException) => err.code === 'E_INPUT' && /EISDIR/.test(err.message));
  await writeFile(path.join(dir, 'ten'), '0123456789');
  assert.equal(await readBoundedFile(path.join(dir, 'ten'), 10, 'thing'), '0123456789');
  await assert.rejects(readBoundedFile(path.join(dir, 'ten'), 9, 'thing'), (err: NodeJS.ErrnoException) => err.code === 'E_FORMAT');
});
