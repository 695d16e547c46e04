// `sourcemesh serve --local`: the store a real `sourcemesh fetch` filled, served to an isolated build
// machine, which fetches everything from it (and only from it) and verifies it.
import assert from 'node:assert/strict';
import { readFile, readdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { parseInventory } from '../../src/mirror/inventory.ts';
import { bytes, distfile, sha256, writeManifest } from '../helpers/distfiles.ts';
import { startOrigin } from '../helpers/origin.ts';
import { runCli, tempDir } from '../helpers/run.ts';
import { curlHead, eventually, startServe, tool } from './serve-process.ts';

const A = bytes(2_500_000, 31);
const B = bytes(70_000, 32);
const C = bytes(9_000, 33);

test('serve --local: a fetched store by name and by sha256, a signed inventory, and a build machine fetching from it', async (t) => {
  const dir = await tempDir(t);
  const origin = await startOrigin({ '/a.tar.gz': { body: A }, '/b.tar.xz': { body: B } });
  t.after(() => origin.close());
  const store = path.join(dir, 'store');
  const manifest = await writeManifest(dir, [distfile('a.tar.gz', A, [`${origin.url}/a.tar.gz`]), distfile('b.tar.xz', B, [`${origin.url}/b.tar.xz`])]);
  const fetched = await runCli(['fetch', manifest, '-o', path.join(dir, 'distfiles'), '--json'], { env: { SOURCEMESH_STORE: store } });
  assert.equal(fetched.code, 0, fetched.stderr);
  // fetch keeps STORE/names/NAME; write them here if this fetch predates that.
  const names = await readdir(path.join(store, 'names')).catch(() => [] as string[]);
  for (const [name, body] of [['a.tar.gz', A], ['b.tar.xz', B]] as const) {
    if (!names.includes(name)) await symlink(path.join('..', 'objects', 'sha256', sha256(body).slice(0, 2), sha256(body)), path.join(store, 'names', name));
  }
  // Hostile names: a link out of the store, one to the node key, one through objects/ back out.
  const outside = path.join(dir, 'secret');
  await writeFile(outside, 'secret outside the store\n');
  await symlink(outside, path.join(store, 'names', 'escape'));
  await symlink('../node.key', path.join(store, 'names', 'key'));
  await symlink('../objects/../../secret', path.join(store, 'names', 'dotdot'));

  // The default store is $SOURCEMESH_STORE, as for every other command.
  const server = await startServe(t, ['--local', '--no-access-log'], { SOURCEMESH_STORE: store });
  const url = server.url;
  assert.equal(server.first.files, 2);
  assert.deepEqual((await tool('curl', ['-sS', '--fail', `${url}/a.tar.gz`])).stdout, A);
  assert.deepEqual((await tool('curl', ['-sS', '--fail', `${url}/sha256/${sha256(B)}`])).stdout, B);
  const r = await curlHead(['-r', '1000-1999', '-o', '/dev/null', `${url}/a.tar.gz`]);
  assert.equal(r.status, 206);
  assert.equal(r.headers.etag, `"${sha256(A)}"`);
  for (const p of ['/escape', '/key', '/dotdot', '/node.key', '/names/a.tar.gz', '/objects/sha256', `/sha256/${sha256(await readFile(outside))}`, '/../secret']) {
    const s = await tool('curl', ['-sS', '--path-as-is', '-o', '/dev/null', '-w', '%{http_code}', `${url}${p}`]);
    assert.match(s.stdout.toString(), /^40[04]$/, p);
  }
  assert.match(server.stderr(), /not serving "escape": a name that does not lead to a stored object/);

  // The inventory is signed with STORE/node.key; its vkey is in STORE/node.pub.
  const vkey = (await readFile(path.join(store, 'node.pub'), 'utf8')).trim();
  const inv = parseInventory((await tool('curl', ['-sS', '--fail', `${url}/.well-known/sourcemesh/inventory`])).stdout, vkey);
  assert.deepEqual(inv.files, [{ name: 'a.tar.gz', size: A.length, sha256: sha256(A) }, { name: 'b.tar.xz', size: B.length, sha256: sha256(B) }]);

  // The isolated build machine: its own empty store, the local mirror as its only source.
  const vm = path.join(dir, 'vm');
  const vmManifest = await writeManifest(path.join(dir), [distfile('a.tar.gz', A, ['https://upstream.invalid/a.tar.gz']), distfile('b.tar.xz', B, ['https://upstream.invalid/b.tar.xz'])], 'vm');
  const got = await runCli(['fetch', vmManifest, '-o', path.join(vm, 'distfiles'), '--mirror', url, '--policy', 'mirrors-only', '--json'], { env: { SOURCEMESH_STORE: path.join(vm, 'store') } });
  assert.equal(got.code, 0, got.stderr);
  assert.deepEqual(await readFile(path.join(vm, 'distfiles', 'a.tar.gz')), A);
  assert.deepEqual(await readFile(path.join(vm, 'distfiles', 'b.tar.xz')), B);

  // A later fetch into the served store is picked up without a restart (names/ is watched).
  origin.routes.set('/c.tar', { body: C });
  const more = await writeManifest(path.join(dir), [distfile('c.tar', C, [`${origin.url}/c.tar`])], 'more');
  assert.equal((await runCli(['fetch', more, '-o', path.join(dir, 'distfiles')], { env: { SOURCEMESH_STORE: store } })).code, 0);
  if (!(await readdir(path.join(store, 'names'))).includes('c.tar')) await symlink(path.join('..', 'objects', 'sha256', sha256(C).slice(0, 2), sha256(C)), path.join(store, 'names', 'c.tar'));
  await eventually(async () => (await tool('curl', ['-sS', '--fail', `${url}/c.tar`])).stdout.equals(C));
  assert.equal((await server.stop()).code, 0);
});

test('serve --local with no store is one clear line and exit 2', async (t) => {
  const dir = await tempDir(t);
  const r = await runCli(['serve', '--local', path.join(dir, 'nothing'), '--listen', '127.0.0.1:0']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--local .*nothing: not a directory \(run `sourcemesh fetch` first\)/);
});
