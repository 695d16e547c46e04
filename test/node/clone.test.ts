// node clone: a new node made from a running one while a bounded client loop keeps downloading from
// the source: no request of the loop fails, the clone's signed inventory lists exactly the source's
// files, its keys are its own, the same services are switched on.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { request } from 'undici';
import { loadConfig } from '../../src/node/config.ts';
import { INVENTORY_PATH, parseInventory } from '../../src/mirror/inventory.ts';
import { bytes, distfile, sha256, writeManifest } from '../helpers/distfiles.ts';
import { startOrigin } from '../helpers/origin.ts';
import { runCli, tempDir, waitFor } from '../helpers/run.ts';
import { makeNode, startNode } from './node-process.ts';

test('node clone from the panel while the source serves under a client loop: no failed request, the same inventory, new keys, same services', { timeout: 180_000 }, async (t) => {
  const dir = await tempDir(t, 'sourcemesh-clone-');
  const files = Array.from({ length: 8 }, (_, i) => bytes(200_000 + i * 150_000, 10 + i));
  const origin = await startOrigin(Object.fromEntries(files.map((b, i) => [`/d${i}.tar.gz`, { body: b }])));
  t.after(() => origin.close());
  const manifest = await writeManifest(dir, files.map((b, i) => distfile(`d${i}.tar.gz`, b, [`${origin.url}/d${i}.tar.gz`])));
  const src = await makeNode(path.join(dir, 'source'), (c) => {
    c.services.mirrorSync.enabled = true;
    c.services.mirrorSync.manifest = manifest;
    c.services.serve.enabled = true;
    c.services.serve.rate = 0; // the loop and the clone share 127.0.0.1: this test is about downtime, not rate limits
  });
  const n = await startNode(t, src);
  const panel = await n.panelUrl();
  const serveUrl = await n.serviceUrl('serve');
  const vkey = (await readFile(path.join(src.dir, 'keys', 'node.pub'), 'utf8')).trim();
  // Wait until the source's serve publishes every file (mirror sync's first run, then serve's reload).
  await waitFor('the source inventory with every file', async () => {
    const r = await request(`${serveUrl}/${INVENTORY_PATH}`).catch(() => undefined);
    if (!r || r.statusCode !== 200) return (await r?.body.dump(), false);
    return parseInventory(Buffer.from(await r.body.arrayBuffer()), vkey).files.length === files.length;
  }, { timeoutMs: 60_000, everyMs: 100 });

  // The bounded client loop: two clients downloading and checking files until the clone ends.
  const want = new Map(files.map((b, i) => [`d${i}.tar.gz`, sha256(b)]));
  let done = false;
  let ok = 0;
  const failures: string[] = [];
  const client = async (k: number) => {
    for (let i = 0; !done && i < 20_000; i++) {
      const name = `d${(i + k) % files.length}.tar.gz`;
      try {
        const r = await request(`${serveUrl}/${name}`, { headersTimeout: 10_000, bodyTimeout: 10_000 });
        const h = createHash('sha256');
        for await (const chunk of r.body) h.update(chunk);
        if (r.statusCode !== 200 || h.digest('hex') !== want.get(name)) failures.push(`${name}: ${r.statusCode}`);
        else ok++;
      } catch (err) {
        failures.push(`${name}: ${(err as Error).message}`);
      }
    }
  };
  const loop = Promise.all([client(0), client(3)]);

  const tokenFile = path.join(dir, 'token');
  await writeFile(tokenFile, `${src.token}\n`, { mode: 0o600 });
  const wrong = path.join(dir, 'wrong');
  await writeFile(wrong, 'nope\n');
  const refused = await runCli(['node', 'clone', panel, '--to', path.join(dir, 'never'), '--token-file', wrong]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /HTTP 401.*\[E_HTTP\]/);

  const okBefore = ok;
  const r = await runCli(['node', 'clone', panel, '--to', path.join(dir, 'clone'), '--token-file', tokenFile, '--json'], { timeoutMs: 120_000 });
  done = true;
  await loop;
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.files, files.length);
  assert.deepEqual(failures, [], 'no request of the loop failed');
  assert.ok(ok > okBefore, `the loop kept being served during the clone (${ok - okBefore} downloads)`);

  // The clone's own signed inventory: the same files, signed by its own, new key.
  const cloneDir = path.join(dir, 'clone');
  const cloneVkey = (await readFile(path.join(cloneDir, 'keys', 'node.pub'), 'utf8')).trim();
  assert.notEqual(cloneVkey, vkey);
  assert.notEqual(await readFile(path.join(cloneDir, 'keys', 'node.key'), 'utf8'), await readFile(path.join(src.dir, 'keys', 'node.key'), 'utf8'));
  for (const k of ['log.key', 'witness.key']) assert.notEqual(await readFile(path.join(cloneDir, 'keys', k), 'utf8'), await readFile(path.join(src.dir, 'keys', k), 'utf8'), k);
  const srcInv = parseInventory(await readFile(path.join(src.dir, 'mirror', INVENTORY_PATH)), vkey);
  const cloneInv = parseInventory(await readFile(path.join(cloneDir, 'mirror', INVENTORY_PATH)), cloneVkey);
  assert.deepEqual(cloneInv.files, srcInv.files);
  assert.throws(() => parseInventory(Buffer.from(cloneInv.note.text + '\n'), vkey), 'the clone\'s inventory is not signed by the source key');
  // Same services on; the manifest came along.
  const [sc, cc] = [await loadConfig(src.dir), await loadConfig(cloneDir)];
  for (const s of ['serve', 'mirrorSync', 'seed', 'logServe', 'witnessServe'] as const) assert.equal(cc.services[s].enabled, sc.services[s].enabled, s);
  assert.equal(cc.services.mirrorSync.manifest, 'manifest.json');
  assert.deepEqual(await readFile(path.join(cloneDir, 'manifest.json')), await readFile(manifest));
  assert.notEqual(cc.name, sc.name);

  // And the clone runs: its serve serves the files.
  const c2 = await startNode(t, { dir: cloneDir, token: out.token }, ['--no-panel']);
  const cloneServe = await c2.serviceUrl('serve');
  const got = await request(`${cloneServe}/d5.tar.gz`);
  const h = createHash('sha256');
  for await (const chunk of got.body) h.update(chunk);
  assert.equal(h.digest('hex'), want.get('d5.tar.gz'));

  // From the source's directory: the same, with its serve named.
  const fromDir = await runCli(['node', 'clone', src.dir, '--to', path.join(dir, 'clone2'), '--serve', serveUrl, '--json'], { timeoutMs: 120_000 });
  assert.equal(fromDir.code, 0, fromDir.stderr);
  assert.deepEqual(parseInventory(await readFile(path.join(dir, 'clone2', 'mirror', INVENTORY_PATH)), (await readFile(path.join(dir, 'clone2', 'keys', 'node.pub'), 'utf8')).trim()).files, srcInv.files);
  // A serve that is not the source's (its inventory signed by another key) is refused before any file.
  const impostor = await runCli(['node', 'clone', src.dir, '--to', path.join(dir, 'clone3'), '--serve', cloneServe]);
  assert.equal(impostor.code, 3, impostor.stderr);
  assert.match(impostor.stderr, /\[E_SIGNATURE\]/);
  assert.ok(!existsSync(path.join(dir, 'clone3')), 'nothing made');
  await c2.stop();
  await n.stop();
});
