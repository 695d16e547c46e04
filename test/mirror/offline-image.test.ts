// `sourcemesh pack`: directory, deterministic tar (read back by GNU tar), builder-hex0 source disks.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, readdir, writeFile, cp, chmod } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { bytes, distfile, sha256, writeManifest } from '../helpers/distfiles.ts';
import { startOrigin } from '../helpers/origin.ts';
import { LIVE_BOOTSTRAP_STEPS, runCli, tempDir } from '../helpers/run.ts';

const files = [
  { name: 'alpha-1.0.tar.gz', body: bytes(10_000, 31) },
  { name: 'beta-2.1.tar.xz', body: bytes(7_777, 32) },
  { name: 'gamma.txt', body: Buffer.from('unicode data\n') },
];

async function filledStore(t: any) {
  const dir = await tempDir(t);
  const origin = await startOrigin(Object.fromEntries(files.map((f) => [`/${f.name}`, { body: f.body }])));
  t.after(() => origin.close());
  const manifest = await writeManifest(dir, files.map((f) => distfile(f.name, f.body, [`${origin.url}/${f.name}`])));
  const env = { SOURCEMESH_STORE: path.join(dir, 'store') };
  assert.equal((await runCli(['fetch', manifest, '-o', path.join(dir, 'distfiles')], { env })).code, 0);
  return { dir, manifest, env };
}

/** Parse a builder-hex0 source disk: "src SIZE PATH\n" then SIZE bytes. */
function parseHex0(disk: Buffer): { path: string; body?: Buffer }[] {
  const out = [];
  let at = 0;
  while (at < disk.length) {
    const nl = disk.indexOf(0x0a, at);
    const [word, size, p] = disk.subarray(at, nl).toString().split(' ');
    assert.equal(word, 'src');
    at = nl + 1;
    const n = Number(size);
    out.push(n === 0 && !p!.includes('.') ? { path: p! } : { path: p!, body: disk.subarray(at, at + n) });
    at += n;
  }
  return out;
}

test('tar: deterministic, read back by GNU tar with the exact bytes', async (t) => {
  const s = await filledStore(t);
  const out = path.join(s.dir, 'distfiles.tar');
  const r = await runCli(['pack', s.manifest, '--format', 'tar', '-o', out], { env: s.env });
  assert.equal(r.code, 0, r.stderr);
  const listing = execFileSync('tar', ['-tvf', out]).toString();
  assert.match(listing, /^-rw-r--r-- 0\/0 +10000 1970-01-01 00:00 alpha-1\.0\.tar\.gz$/m);
  const x = path.join(s.dir, 'x');
  await mkdir(x);
  execFileSync('tar', ['-xf', out, '-C', x]);
  for (const f of files) assert.deepEqual(await readFile(path.join(x, f.name)), f.body);
  const first = await readFile(out);
  assert.equal(first.length % 10240, 0);
  const again = path.join(s.dir, 'again.tar');
  await runCli(['pack', s.manifest, '--format', 'tar', '-o', again], { env: s.env });
  assert.equal(sha256(await readFile(again)), sha256(first), 'same bytes every time');
});

test('hex0-disk: src lines and bytes as builder-hex0 reads them; split by --max-disk-bytes', async (t) => {
  const s = await filledStore(t);
  const out = path.join(s.dir, 'disk.img');
  assert.equal((await runCli(['pack', s.manifest, '--format', 'hex0-disk', '-o', out], { env: s.env })).code, 0);
  const entries = parseHex0(await readFile(out));
  assert.deepEqual(entries.slice(0, 2), [{ path: '/external' }, { path: '/external/distfiles' }]);
  for (const f of files) assert.deepEqual(entries.find((e) => e.path === `/external/distfiles/${f.name}`)?.body, f.body);

  const r = await runCli(['pack', s.manifest, '--format', 'hex0-disk', '-o', path.join(s.dir, 'split.img'), '--max-disk-bytes', '12000', '--json'], { env: s.env });
  assert.equal(r.code, 0, r.stderr);
  const images = JSON.parse(r.stdout).images;
  assert.deepEqual(images.map((i: any) => path.basename(i.path)), ['split.img.1', 'split.img.2']);
  for (const img of images) assert.ok(img.bytes <= 12000);
  const all = [...parseHex0(await readFile(images[0].path)), ...parseHex0(await readFile(images[1].path))].filter((e) => e.body);
  assert.deepEqual(all.map((e) => e.path.split('/').pop()).sort(), files.map((f) => f.name).sort());

  const tooSmall = await runCli(['pack', s.manifest, '--format', 'tar', '-o', path.join(s.dir, 'no.tar'), '--max-disk-bytes', '5000'], { env: s.env });
  assert.equal(tooSmall.code, 2);
  assert.match(tooSmall.stderr, /alpha-1\.0\.tar\.gz \(10000 bytes\) does not fit on any image/);
  assert.deepEqual((await readdir(s.dir)).filter((n) => n.startsWith('no.tar')), []);
});

test('dir format, missing objects refused by name, a damaged store object caught', async (t) => {
  const s = await filledStore(t);
  const out = path.join(s.dir, 'usb');
  assert.equal((await runCli(['pack', s.manifest, '--format', 'dir', '-o', out], { env: s.env })).code, 0);
  assert.deepEqual((await readdir(out)).sort(), files.map((f) => f.name).sort());

  const other = await runCli(['pack', s.manifest, '--format', 'dir', '-o', out, '--store', path.join(s.dir, 'empty')]);
  assert.equal(other.code, 2);
  assert.match(other.stderr, /3 distfile\(s\) not in the store .* \(run sourcemesh fetch first\): alpha-1\.0\.tar\.gz/);

  const obj = path.join(s.env.SOURCEMESH_STORE, 'objects/sha256', sha256(files[1]!.body).slice(0, 2), sha256(files[1]!.body));
  await chmod(obj, 0o644);
  await writeFile(obj, 'rotten');
  const r = await runCli(['pack', s.manifest, '--format', 'tar', '-o', path.join(s.dir, 'rot.tar')], { env: s.env });
  assert.equal(r.code, 3);
  assert.match(r.stderr, /beta-2\.1\.tar\.xz: the store object .* has sha256 [0-9a-f]{64}, expected/);
  assert.deepEqual((await readdir(s.dir)).filter((n) => n.startsWith('rot.tar')), [], 'no partial image under any name');
});

test('--before-network keeps only the files of steps built before the network is up', async (t) => {
  const s = await filledStore(t);
  const steps = path.join(s.dir, 'steps');
  await cp(LIVE_BOOTSTRAP_STEPS, steps, { recursive: true });
  // A steps tree whose first step (before "improve: ...network...") needs alpha, and a late step beta.
  const manifestText = await readFile(path.join(steps, 'manifest'), 'utf8');
  const firstBuild = /^build: (\S+)/m.exec(manifestText)![1]!;
  const lastBuild = [...manifestText.matchAll(/^build: (\S+)/gm)].at(-1)![1]!;
  const m = JSON.parse(await readFile(s.manifest, 'utf8'));
  await mkdir(path.join(steps, firstBuild), { recursive: true });
  await writeFile(path.join(steps, firstBuild, 'sources'), `f http://x/alpha-1.0.tar.gz ${m.distfiles[0].sha256}\n`);
  await mkdir(path.join(steps, lastBuild), { recursive: true });
  await writeFile(path.join(steps, lastBuild, 'sources'), `f http://x/beta-2.1.tar.xz ${m.distfiles[1].sha256}\n`);
  const r = await runCli(['pack', s.manifest, '--format', 'tar', '-o', path.join(s.dir, 'early.tar'), '--before-network', steps, '--json'], { env: s.env });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout).images[0].files, ['alpha-1.0.tar.gz']);
});
