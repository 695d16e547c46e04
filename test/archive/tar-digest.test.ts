// tarSha256: the sha256 of a tarball's decompressed tar, for files made by the real gzip, xz and bzip2;
// and verification when a manifest pins sha256, tarSha256 or both.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, readdir, readlink, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { isSourcemeshError } from '../../src/errors.ts';
import { MANIFEST_FORMAT } from '../../src/manifest/distfile.ts';
import { decompressedChunks } from '../../src/compression/decompress.ts';
import { tarDigestOfFile } from '../../src/store/tar-digest.ts';
import { bytes, sha256 } from '../helpers/distfiles.ts';
import { gitIn, makeRepo } from '../helpers/git.ts';
import { startOrigin } from '../helpers/origin.ts';
import { runCli, tempDir } from '../helpers/run.ts';

/** A real tar (GNU tar) of text, random and repetitive files. */
async function makeTar(dir: string, seed: number): Promise<Buffer> {
  const src = path.join(dir, `src-${seed}`);
  execFileSync('mkdir', ['-p', path.join(src, 'sub')]);
  await writeFile(path.join(src, 'random.bin'), bytes(700_000, seed));
  await writeFile(path.join(src, 'sub', 'text.txt'), `line ${seed}\n`.repeat(50_000));
  await writeFile(path.join(src, 'zeros'), Buffer.alloc(1_500_000));
  return execFileSync('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '-C', src, '-cf', '-', '.'], { maxBuffer: 1 << 28 });
}

const compressors: Record<string, string[]> = {
  gz: ['gzip', '-n', '-6', '-c'],
  xz: ['xz', '-T1', '-6', '-c'],
  bz2: ['bzip2', '-9', '-c'],
};

test('tarSha256 is the same for the tar and its gzip, xz and bzip2 files, whatever the chunking', async (t) => {
  const dir = await tempDir(t);
  const tar = await makeTar(dir, 1);
  const tarFile = path.join(dir, 'a.tar');
  await writeFile(tarFile, tar);
  const plain = await tarDigestOfFile(tarFile);
  assert.deepEqual(plain, { tarSha256: sha256(tar), sha256: sha256(tar), compression: 'none', tarBytes: tar.length });
  for (const [ext, argv] of Object.entries(compressors)) {
    const packed = execFileSync(argv[0]!, argv.slice(1), { input: tar, maxBuffer: 1 << 28 });
    const file = path.join(dir, `a.tar.${ext}`);
    await writeFile(file, packed);
    const d = await tarDigestOfFile(file);
    assert.equal(d.tarSha256, sha256(tar), ext);
    assert.equal(d.sha256, sha256(packed), ext);
    assert.equal(d.tarBytes, tar.length);
    // Odd chunk sizes, including 1-byte pieces at the start where the format is sniffed.
    async function* pieces() {
      let i = 0;
      for (const n of [1, 1, 3, 7, 4093]) { yield packed.subarray(i, i + n); i += n; }
      while (i < packed.length) { yield packed.subarray(i, i + 65_537); i += 65_537; }
    }
    const parts: Uint8Array[] = [];
    for await (const c of decompressedChunks(pieces(), ext)) parts.push(c);
    assert.equal(sha256(Buffer.concat(parts)), sha256(tar), `${ext} in odd chunks`);
  }
  // Concatenated bzip2 streams (as pbzip2 writes) are one tar stream.
  const half = Math.floor(tar.length / 2);
  const two = Buffer.concat([execFileSync('bzip2', ['-c'], { input: tar.subarray(0, half) }), execFileSync('bzip2', ['-c'], { input: tar.subarray(half) })]);
  await writeFile(path.join(dir, 'two.tar.bz2'), two);
  assert.equal((await tarDigestOfFile(path.join(dir, 'two.tar.bz2'))).tarSha256, sha256(tar));
});

test('a corrupt or truncated stream is a clear E_ARCHIVE naming the file and the compression', async (t) => {
  const dir = await tempDir(t);
  const tar = await makeTar(dir, 2);
  for (const [ext, argv] of Object.entries(compressors)) {
    const packed = execFileSync(argv[0]!, argv.slice(1), { input: tar, maxBuffer: 1 << 28 });
    const truncated = path.join(dir, `cut.tar.${ext}`);
    await writeFile(truncated, packed.subarray(0, Math.floor(packed.length * 0.6)));
    const corrupt = path.join(dir, `bad.tar.${ext}`);
    const bad = Buffer.from(packed);
    for (let i = 200; i < 260; i++) bad[i]! ^= 0x5a;
    await writeFile(corrupt, bad);
    const kind = { gz: 'gzip', xz: 'xz', bz2: 'bzip2' }[ext];
    for (const file of [truncated, corrupt]) {
      await assert.rejects(tarDigestOfFile(file), (err) => {
        assert.ok(isSourcemeshError(err, 'E_ARCHIVE'), String(err));
        assert.ok(err.message.startsWith(file), err.message);
        assert.match(err.message, new RegExp(`corrupt or truncated ${kind} stream`));
        return true;
      }, file);
    }
  }
});

test('fetch accepts a file pinned by tarSha256 alone in any compression, and refuses another tar', async (t) => {
  const dir = await tempDir(t);
  const tar = await makeTar(dir, 3);
  const other = await makeTar(dir, 4);
  const xz = execFileSync('xz', ['-T1', '-6', '-c'], { input: tar, maxBuffer: 1 << 28 });
  const otherXz = execFileSync('xz', ['-T1', '-c'], { input: other, maxBuffer: 1 << 28 });
  const gz = execFileSync('gzip', ['-n', '-c'], { input: tar, maxBuffer: 1 << 28 });
  const origin = await startOrigin({ '/p.tar.xz': { body: xz }, '/q.tar.xz': { body: otherXz }, '/both.tar.gz': { body: gz } });
  t.after(() => origin.close());
  const manifest = path.join(dir, 'manifest.json');
  await writeFile(manifest, JSON.stringify({
    format: MANIFEST_FORMAT, name: 'tars', distfiles: [
      { name: 'both.tar.gz', sha256: sha256(gz), tarSha256: sha256(tar), urls: [`${origin.url}/both.tar.gz`] },
      { name: 'p.tar.xz', tarSha256: sha256(tar), urls: [`${origin.url}/p.tar.xz`] },
      { name: 'q.tar.xz', tarSha256: sha256(tar), urls: [`${origin.url}/q.tar.xz`] },
    ],
  }));
  const store = path.join(dir, 'store');
  const out = path.join(dir, 'out');
  const r = await runCli(['fetch', manifest, '--store', store, '-o', out, '--json']);
  assert.equal(r.code, 3, r.stderr);
  const report = JSON.parse(r.stdout);
  const [both, p, q] = report.files;
  assert.equal(both.status, 'fetched');
  assert.equal(p.status, 'fetched');
  assert.equal(p.sha256, sha256(xz), 'stored under the sha256 of the bytes that verified');
  assert.deepEqual(await readFile(path.join(out, 'p.tar.xz')), xz);
  assert.equal(q.status, 'failed');
  assert.equal(q.rejected[0].code, 'E_CHECKSUM');
  assert.match(q.rejected[0].message, new RegExp(`whose tar has sha256 ${sha256(other)}, expected tarSha256 ${sha256(tar)}`));

  // Again: present, found under its name and its tar checked, nothing downloaded.
  const requests = origin.log.length;
  const again = await runCli(['fetch', manifest, '--store', store, '-o', out, '--json']);
  assert.deepEqual(JSON.parse(again.stdout).files.slice(0, 2).map((f: any) => f.status), ['present', 'present']);
  assert.equal(origin.log.filter((l: any) => !l.path.startsWith('/q')).length, origin.log.slice(0, requests).filter((l: any) => !l.path.startsWith('/q')).length);
  // The tar's sha256 was recorded when p.tar.xz verified. Records are trusted as store objects are
  // (a store is written only by its owner): one planted for q.tar.xz's bytes makes them pass unopened,
  // which shows that fetch reads the records instead of decompressing again.
  assert.equal(await readlink(path.join(store, 'tars', sha256(xz).slice(0, 2), sha256(xz))), sha256(tar));
  await mkdir(path.join(store, 'tars', sha256(otherXz).slice(0, 2)), { recursive: true });
  await symlink(sha256(tar), path.join(store, 'tars', sha256(otherXz).slice(0, 2), sha256(otherXz)));
  const planted = await runCli(['fetch', manifest, '--store', store, '-o', out, '--json']);
  assert.equal(planted.code, 0, planted.stderr + planted.stdout);
  assert.equal(JSON.parse(planted.stdout).files[2].status, 'fetched');
  // gc drops the records of the objects it removes, and keeps the others.
  const keepManifest = path.join(dir, 'keep.json');
  await writeFile(keepManifest, JSON.stringify({ format: MANIFEST_FORMAT, name: 'keep', distfiles: [{ name: 'p.tar.xz', tarSha256: sha256(tar), urls: [] }] }));
  const gc = await runCli(['store', 'gc', '--store', store, '--keep', keepManifest]);
  assert.equal(gc.code, 0, gc.stderr);
  assert.deepEqual((await readdir(path.join(store, 'tars'), { recursive: true })).filter((n) => n.includes('/')), [`${sha256(xz).slice(0, 2)}/${sha256(xz)}`]);

  // verify checks every pinned hash of a distfiles directory.
  await writeFile(manifest, JSON.stringify({ format: MANIFEST_FORMAT, name: 'tars', distfiles: [
    { name: 'both.tar.gz', sha256: sha256(gz), tarSha256: sha256(tar), urls: [] },
    { name: 'p.tar.xz', tarSha256: sha256(tar), urls: [] },
  ] }));
  const v = await runCli(['verify', out, '-m', manifest, '--json']);
  assert.equal(v.code, 0, v.stdout + v.stderr);

  // A manifest pinning neither is malformed.
  await writeFile(manifest, JSON.stringify({ format: MANIFEST_FORMAT, name: 'x', distfiles: [{ name: 'n.tar', urls: [] }] }));
  const bad = await runCli(['fetch', manifest, '--store', store, '-o', out]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /pins neither sha256 nor tarSha256 \[E_MANIFEST\]/);
});

test('mirror sync regenerates a snapshot pinned by tarSha256 alone with another compressor', async (t) => {
  const dir = await tempDir(t);
  const repo = path.join(dir, 'proj.git');
  const commit = await makeRepo(repo, { 'README': 'tar checksum\n', 'src/a.c': 'int a;\n'.repeat(1000) });
  // Pinned from a gzip snapshot's tar; the mirror makes xz.
  const tar = gitIn(repo, ['archive', '--format=tar', '--prefix=proj-1/', commit]);
  const manifest = path.join(dir, 'manifest.json');
  await writeFile(manifest, JSON.stringify({ format: MANIFEST_FORMAT, name: 'snap', distfiles: [
    { name: 'proj-1.tar.xz', tarSha256: sha256(tar), urls: [], git: { repo, ref: commit, prefix: 'proj-1/', compression: 'xz', level: 6 } },
  ] }));
  const root = path.join(dir, 'mirror');
  const r = await runCli(['mirror', 'sync', manifest, '--root', root, '--json']);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const published = await readFile(path.join(root, 'proj-1.tar.xz'));
  assert.deepEqual(execFileSync('xz', ['-dc'], { input: published }), tar);
  const again = JSON.parse((await runCli(['mirror', 'sync', manifest, '--root', root, '--json'])).stdout);
  assert.deepEqual(again.unchanged, ['proj-1.tar.xz']);
});
