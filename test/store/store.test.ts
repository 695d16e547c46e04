// The store and distfiles-directory commands, and what happens when the disk says no.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { bytes, distfile, sha256, writeManifest } from '../helpers/distfiles.ts';
import { startOrigin } from '../helpers/origin.ts';
import { runCli, tempDir } from '../helpers/run.ts';
import { mountTmpfs } from '../helpers/tmpfs.ts';

const A = bytes(50_000, 5);
const B = bytes(60_000, 6);

async function fetched(t: any) {
  const dir = await tempDir(t);
  const origin = await startOrigin({ '/a': { body: A }, '/b': { body: B } });
  t.after(() => origin.close());
  const manifest = await writeManifest(dir, [distfile('a.tar.gz', A, [`${origin.url}/a`]), distfile('b.tar.gz', B, [`${origin.url}/b`])]);
  const env = { SOURCEMESH_STORE: path.join(dir, 'store') };
  const out = path.join(dir, 'distfiles');
  const r = await runCli(['fetch', manifest, '-o', out], { env });
  assert.equal(r.code, 0, r.stderr);
  return { dir, origin, manifest, env, out };
}

test('verify reports missing, mismatched and extra files; exit 3 until the directory is right', async (t) => {
  const s = await fetched(t);
  const ok = await runCli(['verify', s.out, '--manifest', s.manifest]);
  assert.equal(ok.code, 0, ok.stdout);
  assert.match(ok.stdout, /2 ok, 0 mismatched, 0 missing, 0 extra/);

  // Break the directory: replace one file (not in place: it is a hard link to the store), drop one, add one.
  await execFileSync('rm', [path.join(s.out, 'a.tar.gz'), path.join(s.out, 'b.tar.gz')]);
  await writeFile(path.join(s.out, 'a.tar.gz'), Buffer.concat([A.subarray(1), Buffer.from('x')]));
  await writeFile(path.join(s.out, 'stray.txt'), 'hi');
  const bad = await runCli(['verify', s.out, '--manifest', s.manifest, '--json']);
  assert.equal(bad.code, 3);
  const r = JSON.parse(bad.stdout);
  assert.deepEqual(r.missing, ['b.tar.gz']);
  assert.deepEqual(r.extra, ['stray.txt']);
  assert.equal(r.mismatched[0].name, 'a.tar.gz');
  assert.equal(r.mismatched[0].expected, sha256(A));

  // fetch repairs it from the store without the network: the wrong file is replaced atomically.
  await s.origin.close();
  const repair = await runCli(['fetch', s.manifest, '-o', s.out, '--offline'], { env: s.env });
  assert.equal(repair.code, 0, repair.stderr);
  const extraOnly = await runCli(['verify', s.out, '--manifest', s.manifest]);
  assert.equal(extraOnly.code, 0, 'an extra file is reported, not a failure');
  assert.match(extraOnly.stdout, /^EXTRA +stray\.txt$/m);
  const again = JSON.parse((await runCli(['verify', s.out, '--manifest', s.manifest, '--json'])).stdout);
  assert.deepEqual([again.missing, again.mismatched, again.ok], [[], [], ['a.tar.gz', 'b.tar.gz']]);
});

test('store list, path and gc --keep', async (t) => {
  const s = await fetched(t);
  const list = JSON.parse((await runCli(['store', 'list', '--json'], { env: s.env })).stdout);
  assert.deepEqual(list.objects.map((o: { sha256: string }) => o.sha256).sort(), [sha256(A), sha256(B)].sort());
  assert.equal(list.bytes, A.length + B.length);

  const p = await runCli(['store', 'path', sha256(A)], { env: s.env });
  assert.equal(p.code, 0);
  assert.deepEqual(await readFile(p.stdout.trim()), A);
  const missing = await runCli(['store', 'path', 'f'.repeat(64)], { env: s.env });
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /not in the store/);
  assert.equal((await runCli(['store', 'path', 'nothex'], { env: s.env })).code, 2);

  // Keep only a.tar.gz's manifest: b's object goes, stale temp files and dead locks go too.
  const keepDir = path.join(s.dir, 'keep');
  await mkdir(keepDir);
  const keep = await writeManifest(keepDir, [distfile('a.tar.gz', A, [])]);
  await writeFile(path.join(s.env.SOURCEMESH_STORE, 'locks', `${sha256(B)}.lock`), `999999 ${os.hostname()}\n`);
  await writeFile(path.join(s.env.SOURCEMESH_STORE, 'tmp', `${sha256(A)}.999999-aa.part`), 'x');
  const gc = JSON.parse((await runCli(['store', 'gc', '--keep', keep, '--json'], { env: s.env })).stdout);
  assert.deepEqual(gc.removedObjects, [sha256(B)]);
  assert.equal(gc.removedTemp, 3, 'the dead lock, the dead partial and the name left pointing at nothing');
  assert.deepEqual(await readdir(path.join(s.env.SOURCEMESH_STORE, 'locks')), []);
  assert.deepEqual(await readdir(path.join(s.env.SOURCEMESH_STORE, 'names')), ['a.tar.gz']);
  const after = JSON.parse((await runCli(['store', 'list', '--json'], { env: s.env })).stdout);
  assert.equal(after.count, 1);
});

test('disk full: one clear line, exit 1, nothing under a final name', async (t) => {
  const dir = await tempDir(t);
  const big = bytes(3_000_000, 7);
  const origin = await startOrigin({ '/big': { body: big } });
  t.after(() => origin.close());
  const manifest = await writeManifest(dir, [distfile('big.tar.gz', big, [`${origin.url}/big`])]);
  const small = await mountTmpfs(t, 'size=1m');
  const r = await runCli(['fetch', manifest, '-o', path.join(small, 'out'), '--store', path.join(small, 'store')]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^failed +big\.tar\.gz: .*no space left on device/m);
  assert.deepEqual(await readdir(path.join(small, 'out')), []);
  assert.deepEqual(await readdir(path.join(small, 'store', 'objects', 'sha256')), []);
});

test('a read-only output directory: one clear line naming it, exit 1', async (t) => {
  const dir = await tempDir(t);
  const origin = await startOrigin({ '/a': { body: A } });
  t.after(() => origin.close());
  const manifest = await writeManifest(dir, [distfile('a.tar.gz', A, [`${origin.url}/a`])]);
  const ro = await mountTmpfs(t, 'ro,size=1m');
  const r = await runCli(['fetch', manifest, '-o', ro, '--store', path.join(dir, 'store')]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`a\\.tar\\.gz: ${ro}/a\\.tar\\.gz: cannot export: EROFS: read-only file system`));
  const r2 = await runCli(['fetch', manifest, '-o', path.join(dir, 'out'), '--store', path.join(ro, 'store')]);
  assert.equal(r2.code, 1);
  assert.match(r2.stderr, /store .*: cannot create .*: EROFS: read-only file system \[E_PERMISSION\]/);
  assert.equal(r2.stderr.trim().split('\n').length, 1);
});
