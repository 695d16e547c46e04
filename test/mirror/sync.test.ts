// `sourcemesh mirror sync` against real upstreams on loopback and real git repositories.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { bytes, distfile, sha256, writeManifest } from '../helpers/distfiles.ts';
import { commitFiles, gitArchiveGzip, gitIn, makeRepo } from '../helpers/git.ts';
import { parseInventory } from '../../src/mirror/inventory.ts';
import { startOrigin } from '../helpers/origin.ts';
import { CLI, ROOT, runCli, tempDir } from '../helpers/run.ts';

const A = bytes(120_000, 21);
const B = bytes(80_000, 22);

async function setup(t: any) {
  const dir = await tempDir(t);
  const origin = await startOrigin({ '/a.tar.gz': { body: A }, '/b.tar.xz': { body: B } });
  t.after(() => origin.close());
  const repo = path.join(dir, 'upstream', 'proj.git');
  const commit = await makeRepo(repo, { 'README': 'hello\n', 'src/main.c': 'int main(void) { return 0; }\n', 'tools/run.sh': '#!/bin/sh\necho hi\n' });
  const snapshot = gitArchiveGzip(repo, 'proj-1.0/', commit);
  const root = path.join(dir, 'mirror');
  const sync = (manifest: string, ...args: string[]) => runCli(['mirror', 'sync', manifest, '--root', root, '--json', ...args]);
  return { dir, origin, repo, commit, snapshot, root, sync };
}

test('sync publishes URL files and locally generated git snapshots, verified; a second run only re-verifies', async (t) => {
  const s = await setup(t);
  const m = await writeManifest(s.dir, [
    distfile('a.tar.gz', A, [`${s.origin.url}/a.tar.gz`]),
    distfile('b.tar.xz', B, [`${s.origin.url}/b.tar.xz`]),
    distfile('proj-1.0.tar.gz', s.snapshot, [], { git: { repo: s.repo, ref: s.commit.slice(0, 10), prefix: 'proj-1.0/', compression: 'gzip-n', level: 6 } }),
  ]);
  const r = await s.sync(m);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.equal(report.added.length, 3);
  assert.match(report.added.find((f: any) => f.name === 'proj-1.0.tar.gz').source, /^git .*proj\.git /);
  assert.deepEqual(await readFile(path.join(s.root, 'proj-1.0.tar.gz')), s.snapshot);
  assert.deepEqual(await readFile(path.join(s.root, 'a.tar.gz')), A);
  const requests = s.origin.log.length;

  // The signed inventory lists every published file with the hash sync verified, under the node key.
  const vkey = (await readFile(path.join(s.root, '.sourcemesh', 'node.pub'), 'utf8')).trim();
  const inv = parseInventory(await readFile(path.join(s.root, '.well-known', 'sourcemesh', 'inventory')), vkey);
  assert.deepEqual(inv.files, [
    { name: 'a.tar.gz', size: A.length, sha256: sha256(A) },
    { name: 'b.tar.xz', size: B.length, sha256: sha256(B) },
    { name: 'proj-1.0.tar.gz', size: s.snapshot.length, sha256: sha256(s.snapshot) },
  ]);
  assert.equal(report.inventory.files, 3);

  await writeFile(path.join(s.root, 'extra.txt'), 'not in the manifest\n');
  const again = JSON.parse((await s.sync(m)).stdout);
  assert.deepEqual(again.unchanged.sort(), ['a.tar.gz', 'b.tar.xz', 'proj-1.0.tar.gz']);
  assert.equal(again.added.length, 0);
  assert.equal(s.origin.log.length, requests, 'nothing fetched again');
  // Whatever else the root serves is listed too, as `serve` would list it; the key is the same one.
  const inv2 = parseInventory(await readFile(path.join(s.root, '.well-known', 'sourcemesh', 'inventory')), vkey);
  assert.deepEqual(inv2.files.map((f) => f.name), ['a.tar.gz', 'b.tar.xz', 'extra.txt', 'proj-1.0.tar.gz']);
  assert.equal(inv2.files[2]!.sha256, sha256(Buffer.from('not in the manifest\n')));
});

test('a new upstream commit is fetched into the existing clone and generated', async (t) => {
  const s = await setup(t);
  const m1 = await writeManifest(s.dir, [distfile('proj-1.0.tar.gz', s.snapshot, [], { git: { repo: s.repo, ref: s.commit, prefix: 'proj-1.0/', compression: 'gzip-n', level: 6 } })]);
  assert.equal((await s.sync(m1)).code, 0);
  const next = await commitFiles(s.repo, { 'NEWS': 'v1.1\n' }, 'v1.1');
  const snap2 = gitArchiveGzip(s.repo, 'proj-1.1/', next, 9);
  const m2 = await writeManifest(s.dir, [distfile('proj-1.1.tar.gz', snap2, [], { git: { repo: s.repo, ref: next.slice(0, 8), prefix: 'proj-1.1/', compression: 'gzip-n', level: 9 } })]);
  const r = await s.sync(m2);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await readFile(path.join(s.root, 'proj-1.1.tar.gz')), snap2);
});

test('an upstream serving a wrong file: nothing published, the source named, exit 3', async (t) => {
  const s = await setup(t);
  s.origin.routes.set('/a.tar.gz', { body: A, behaviour: { kind: 'wrong-bytes' } });
  const m = await writeManifest(s.dir, [distfile('a.tar.gz', A, [`${s.origin.url}/a.tar.gz`])]);
  const r = await s.sync(m);
  assert.equal(r.code, 3, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.equal(report.failed[0].rejected[0].code, 'E_CHECKSUM');
  assert.equal(report.failed[0].rejected[0].source, `${s.origin.url}/a.tar.gz`);
  assert.deepEqual((await readdir(s.root)).filter((n) => !n.startsWith('.')), []);
});

test('a published file that no longer matches is quarantined, reported and fetched again', async (t) => {
  const s = await setup(t);
  const m = await writeManifest(s.dir, [distfile('a.tar.gz', A, [`${s.origin.url}/a.tar.gz`])]);
  assert.equal((await s.sync(m)).code, 0);
  // Tamper in place (the published file is a read-only hard link into the mirror's store).
  const file = path.join(s.root, 'a.tar.gz');
  await chmod(file, 0o644);
  const bad = Buffer.from(A);
  bad[5]! ^= 0xff;
  await writeFile(file, bad);
  const r = await s.sync(m);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.equal(report.quarantined.length, 1);
  assert.equal(report.quarantined[0].actual, sha256(bad));
  assert.deepEqual(await readFile(report.quarantined[0].movedTo), bad);
  assert.equal(report.added.length, 1, 'fetched again from upstream, not re-published from the tampered store object');
  assert.deepEqual(await readFile(file), A);
  const human = await runCli(['mirror', 'sync', m, '--root', s.root]);
  assert.match(human.stderr, /1 unchanged, 0 quarantined, 0 failed/);
});

test('--max-bytes refuses before writing anything, naming what does not fit', async (t) => {
  const s = await setup(t);
  const m = await writeManifest(s.dir, [distfile('a.tar.gz', A, [`${s.origin.url}/a.tar.gz`]), distfile('b.tar.xz', B, [`${s.origin.url}/b.tar.xz`], { size: B.length })]);
  const r = await runCli(['mirror', 'sync', m, '--root', s.root, '--max-bytes', '150K']);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /--max-bytes 153600: 1 file\(s\) do not fit after 120000 bytes: b\.tar\.xz \(80000 bytes\) \[E_DISK_FULL\]/);
  assert.deepEqual((await readdir(s.root)).filter((n) => !n.startsWith('.')), []);
  assert.equal(s.origin.log.filter((l) => l.path === '/a.tar.gz').length, 1, 'only a HEAD for the unknown size');
  assert.equal((await runCli(['mirror', 'sync', m, '--root', s.root, '--max-bytes', 'lots'])).code, 2);
});

test('--interval repeats until interrupted, then exits 0', async (t) => {
  const s = await setup(t);
  const m = await writeManifest(s.dir, [distfile('a.tar.gz', A, [`${s.origin.url}/a.tar.gz`])]);
  const child = spawn(process.execPath, [CLI, 'mirror', 'sync', m, '--root', s.root, '--interval', '300ms'], { cwd: ROOT, env: { ...process.env, CI: '1' } });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
  const deadline = Date.now() + 20_000;
  while ((err.match(/^sync /gm) ?? []).length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  child.kill('SIGTERM');
  assert.equal(await closed, 0, err);
  assert.ok((err.match(/^sync /gm) ?? []).length >= 3, err);
  const delays = [...err.matchAll(/next sync in (\d+) ms/g)].map((x) => Number(x[1]));
  assert.ok(delays.length >= 2, err);
  assert.ok(delays.every((d) => d >= 240 - 6 && d <= 360 + 6), `jittered ±20%: ${delays}`);
  assert.ok((await stat(path.join(s.root, 'a.tar.gz'))).isFile());
});

test('sync publishes BEP 52 piece layers beside large files, matching libtorrent-compatible roots', async (t) => {
  const s = await setup(t);
  const big = bytes(3 * 1024 * 1024 + 5, 23);
  s.origin.routes.set('/big.bin', { body: big });
  const { pieceMapOfFile } = await import('../../src/fetch/piece-map.ts');
  const tmp = path.join(s.dir, 'big.bin');
  await writeFile(tmp, big);
  const map = await pieceMapOfFile(tmp, 1 << 20);
  const m = await writeManifest(s.dir, [distfile('big.bin', big, [`${s.origin.url}/big.bin`], { merkleRoot: map.root.toString('hex') })]);
  const r = await s.sync(m);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await readFile(path.join(s.root, 'sha256', `${sha256(big)}.pieces`)), Buffer.concat(map.layer));
  const wrong = await writeManifest(s.dir, [distfile('big.bin', big, [`${s.origin.url}/big.bin`], { merkleRoot: 'ab'.repeat(32) })]);
  await (await import('node:fs/promises')).rm(path.join(s.root, 'sha256'), { recursive: true });
  const bad = await s.sync(wrong);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /big\.bin: its verified bytes have merkle root [0-9a-f]{64}, the manifest says abab/);
});

test('a sync that makes a large xz snapshot prints no warning (issue 11: MaxListenersExceededWarning on every run)', async (t) => {
  const s = await setup(t);
  // Big blobs come out of the archiver in large chunks, each a wait for 'drain' on xz's stdin: before the
  // fix a listener stayed per wait, and Node warned after ten.
  const files: Record<string, Buffer> = {};
  for (let i = 0; i < 40; i++) files[`data/f${i}.bin`] = bytes(100_000, 100 + i);
  const repo = path.join(s.dir, 'upstream', 'big');
  const commit = await makeRepo(repo, files);
  const tar = gitIn(repo, ['archive', '--format=tar', '--prefix=big-1.0/', commit]);
  const m = await writeManifest(s.dir, [
    { name: 'big-1.0.tar.xz', tarSha256: sha256(tar), urls: [], git: { repo, ref: commit, prefix: 'big-1.0/', compression: 'xz', level: 0 } },
    distfile('a.tar.gz', A, [`${s.origin.url}/a.tar.gz`]),
  ]);
  const r = await runCli(['mirror', 'sync', m, '--root', s.root]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /sync .*: 2 added/);
  assert.doesNotMatch(r.stderr, /Warning|\(node:\d+\)/);
});
