// Break 1 of issue 11: a server could crash `fetch` (and `mirror sync`, on the same transport). undici
// 7.30.2 paused its HTTP/1.1 parser under backpressure and then asserted, from the socket's 'end'
// handler, that it was not paused: a body ended by FIN while the reader was not keeping up killed the
// process with an uncaught AssertionError, and the lock and the partial of the download stayed behind.
// The fix is undici >= 8.14.0 (nodejs/undici#5474); these tests keep the attack, and prove that a run
// that dies abruptly leaves nothing that blocks the next one.
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { bytes, distfile, writeManifest } from '../helpers/distfiles.ts';
import { runCli, tempDir } from '../helpers/run.ts';
import { closeDelimitedHead, startRawServer } from './fetch-raw-server.ts';

// Around undici's body high-water mark (64 KiB): the last chunk of the body is the one that pauses the
// parser, so the FIN right behind it finds it paused.
const SIZES = [65_536, 65_537, 100_000, 131_072, 200_000, 1_000_000];

test('bodies without a length, ended by FIN while the parser is paused: fetch completes, no crash', async (t) => {
  const dir = await tempDir(t);
  const files = SIZES.map((size, i) => ({ name: `f${i}.tar`, body: bytes(size, 7 + i) }));
  const server = await startRawServer((req) => {
    const f = files.find((x) => `/${x.name}` === req.path);
    return { bytes: f ? [closeDelimitedHead(), f.body] : [Buffer.from('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n')] };
  });
  t.after(() => server.close());
  const manifest = await writeManifest(dir, files.map((f) => distfile(f.name, f.body, [`${server.url}/${f.name}`])));
  const store = path.join(dir, 'store');
  const out = path.join(dir, 'out');
  const r = await runCli(['fetch', manifest, '-o', out, '--jobs', '3'], { env: { SOURCEMESH_STORE: store }, timeoutMs: 120_000 });
  assert.doesNotMatch(r.stderr, /AssertionError|internal error|\n\s+at /, r.stderr);
  assert.equal(r.code, 0, r.stderr);
  for (const f of files) assert.deepEqual(await readFile(path.join(out, f.name)), f.body, f.name);
  assert.deepEqual(await readdir(path.join(store, 'locks')), []);
  assert.deepEqual(await readdir(path.join(store, 'tmp')), []);
});

test('an endless body without a length is cut at the pinned size, the next source serves the file; no crash', async (t) => {
  const dir = await tempDir(t);
  const body = bytes(500_000, 31);
  let sent = 0;
  let closedByClient = false;
  // Sends 64 KiB chunks as fast as the client takes them, for ever (here: until 256 MiB, then FIN).
  const endless = await startRawServer((_req, _nth, sock) => {
    sock.on('close', () => (closedByClient = sent < 256 << 20));
    const chunk = bytes(65_536, 32);
    const more = () => {
      while (!sock.destroyed && sent < 256 << 20) {
        sent += chunk.length;
        if (!sock.write(chunk)) return void sock.once('drain', more);
      }
      sock.end();
    };
    setImmediate(more);
    return { bytes: [closeDelimitedHead()], keepOpen: true };
  });
  t.after(() => endless.close());
  const honest = await startRawServer(() => ({ bytes: [closeDelimitedHead(), body] }));
  t.after(() => honest.close());
  const manifest = await writeManifest(dir, [distfile('f.tar', body, [`${endless.url}/f.tar`, `${honest.url}/f.tar`], { size: body.length })]);
  const r = await runCli(['fetch', manifest, '-o', path.join(dir, 'out'), '--json'], { env: { SOURCEMESH_STORE: path.join(dir, 'store') }, timeoutMs: 120_000 });
  assert.doesNotMatch(r.stderr, /AssertionError|internal error|\n\s+at /, r.stderr);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await readFile(path.join(dir, 'out', 'f.tar')), body);
  const [file] = JSON.parse(r.stdout).files;
  assert.equal(file.rejected[0].code, 'E_SIZE');
  assert.ok(closedByClient, `the client hung up on the endless body (${sent} bytes sent)`);
  assert.ok(sent < 64 << 20, `${sent} bytes sent before the client hung up`);
});

