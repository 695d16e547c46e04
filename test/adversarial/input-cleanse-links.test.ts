// Break 8 of issue 11: `cleanse` kept a symlink escape. `pkg/link -> /etc` followed by `pkg/link/x`
// passed (GNU tar extracting the output writes x into /etc), while hard links to absolute or `..`
// targets were refused. The rule (docs/FORMATS.md, "Cleanse recipe"): no entry and no hard link target
// goes through a symbolic link of the archive, and no link of either kind points out of the tree.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { cleanseTarChunks, type CleanseReport } from '../../src/archive/cleanse.ts';
import { paxRecord, ustarHeader } from '../../src/archive/tar/header.ts';
import { isSourcemeshError } from '../../src/errors.ts';
import { limitsWith } from '../../src/limits.ts';
import { runCli, tempDir } from '../helpers/run.ts';

const FILE = 0x30;
const HARDLINK = 0x31;
const SYMLINK = 0x32;
const DIR = 0x35;

interface Entry { name: string; type?: number; link?: string; data?: Buffer; pax?: Buffer[]; longLink?: string }

/** A tar stream written header by header, for what no honest tar program writes. */
function craft(entries: Entry[]): Buffer {
  const parts: Buffer[] = [];
  const padded = (b: Buffer) => [b, Buffer.alloc((512 - (b.length % 512)) % 512)];
  for (const e of entries) {
    if (e.pax) {
      const payload = Buffer.concat(e.pax);
      parts.push(ustarHeader({ name: Buffer.from('pax'), mode: 0o644, size: payload.length, mtime: 0, type: 0x78 }), ...padded(payload));
    }
    if (e.longLink !== undefined) {
      const payload = Buffer.from(e.longLink + '\0', 'latin1');
      parts.push(ustarHeader({ name: Buffer.from('././@LongLink'), mode: 0o644, size: payload.length, mtime: 0, type: 0x4b }), ...padded(payload));
    }
    const data = e.data ?? Buffer.alloc(0);
    parts.push(ustarHeader({ name: Buffer.from(e.name, 'latin1'), mode: 0o644, size: data.length, mtime: 0, type: e.type ?? FILE, linkname: e.link === undefined ? undefined : Buffer.from(e.link, 'latin1') }), ...padded(data));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

async function cleanse(tar: Buffer, patterns = ['nothing'], limits = limitsWith()): Promise<{ out: Buffer; report: CleanseReport }> {
  const report: CleanseReport = { kept: 0, deleted: [], unused: [] };
  const chunks: Buffer[] = [];
  async function* one() { yield tar; }
  for await (const c of cleanseTarChunks(one(), patterns, 't.tar', report, limits)) chunks.push(c);
  return { out: Buffer.concat(chunks), report };
}

const refused = (tar: Buffer, re: RegExp, patterns?: string[]) => assert.rejects(cleanse(tar, patterns), (err: unknown) => {
  assert.ok(isSourcemeshError(err, 'E_ARCHIVE'), String(err));
  assert.match(err.message, /^t\.tar: /);
  assert.match(err.message, re);
  return true;
});

const x = Buffer.from('x\n');

test('break 8: an entry below a symlink is refused by the CLI, and GNU tar -P shows why (it writes through the link)', async (t) => {
  const dir = await tempDir(t);
  const outside = path.join(dir, 'outside');
  await mkdir(outside);
  const tar = craft([{ name: 'pkg/', type: DIR }, { name: 'pkg/link', type: SYMLINK, link: outside }, { name: 'pkg/link/x', data: x }]);
  // What the attack does: extracting this archive puts x outside the directory it is extracted into
  // (GNU tar defers absolute and ".." links unless -P, its --absolute-names; other extractors don't).
  const victim = path.join(dir, 'victim');
  await mkdir(victim);
  execFileSync('tar', ['-x', '-P', '-C', victim], { input: tar });
  assert.deepEqual(await readdir(outside), ['x'], 'GNU tar -P follows the link');

  const input = path.join(dir, 'in.tar.gz');
  await writeFile(input, execFileSync('gzip', ['-n'], { input: tar }));
  const out = path.join(dir, 'out.tar.gz');
  const r = await runCli(['cleanse', input, '--delete', 'pkg/nothing', '-o', out]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /\[E_ARCHIVE\]/);
  assert.ok(r.stderr.includes(input), r.stderr);
  // The link itself is refused first (absolute); with a relative link, the path through it is (below).
  assert.match(r.stderr, /symbolic link target of pkg\/link ".*outside" is an absolute path/);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.deepEqual((await readdir(dir)).sort(), ['in.tar.gz', 'outside', 'victim']);
});

test('every way of going through a symlink of the archive is refused, deleted or not', async () => {
  const inside = { name: 'pkg/link', type: SYMLINK, link: 'sub' };
  // Through a link whose target is harmless: the path still is not what it says.
  await refused(craft([inside, { name: 'pkg/link/x', data: x }]), /goes through the symbolic link "pkg\/link"/);
  // Spelled with "./" and doubled slashes.
  await refused(craft([{ name: './pkg/link', type: SYMLINK, link: 'sub' }, { name: 'pkg//link/./x', data: x }]), /symbolic link "\.\/pkg\/link"/);
  // A directory entry below the link, and a link below a link.
  await refused(craft([inside, { name: 'pkg/link/d/', type: DIR }]), /goes through/);
  await refused(craft([inside, { name: 'pkg/link/l2', type: SYMLINK, link: 'y' }]), /goes through/);
  // A hard link whose target goes through the link (tar would link to the file the symlink leads to).
  await refused(craft([inside, { name: 'pkg/h', type: HARDLINK, link: 'pkg/link/passwd' }]), /hard link target of pkg\/h .*goes through the symbolic link "pkg\/link"/);
  // Deleting the link or the entry does not make the input honest: the whole input is refused.
  await refused(craft([inside, { name: 'pkg/link/x', data: x }]), /goes through/, ['pkg/link']);
  await refused(craft([inside, { name: 'pkg/link/x', data: x }]), /goes through/, ['pkg/link/x']);
  // A pax path.
  await refused(craft([inside, { name: 'pkg/ok', data: x, pax: [paxRecord('path', Buffer.from('pkg/link/x'))] }]), /goes through/);
});

test('a symlink pointing out of the tree is refused as a hard link is: absolute, or climbing above the root', async () => {
  await refused(craft([{ name: 'pkg/abs', type: SYMLINK, link: '/etc/passwd' }]), /symbolic link target of pkg\/abs .*absolute/);
  await refused(craft([{ name: 'pkg/up', type: SYMLINK, link: '../../etc' }]), /symbolic link target of pkg\/up .*out of the archive/);
  await refused(craft([{ name: 'top', type: SYMLINK, link: '..' }]), /out of the archive/);
  // A ".." after other components can climb through another link: refused whatever precedes it.
  await refused(craft([{ name: 'a/b/c/l', type: SYMLINK, link: '../../..' }, { name: 'y', type: SYMLINK, link: 'a/b/c/l/../..' }]), /symbolic link target of y .*"\.\." after/);
  // pax linkpath and GNU long link name.
  await refused(craft([{ name: 'pkg/p', type: SYMLINK, link: 'ok', pax: [paxRecord('linkpath', Buffer.from('/etc'))] }]), /absolute/);
  await refused(craft([{ name: 'pkg/k', type: SYMLINK, link: 'ok', longLink: '../../../../etc' }]), /out of the archive/);
  await refused(craft([{ name: 'pkg/n', type: SYMLINK, link: '' }]), /empty/);
  // Hard links as before.
  await refused(craft([{ name: 'pkg/h', type: HARDLINK, link: '/etc/passwd' }]), /hard link target of pkg\/h .*absolute/);
  await refused(craft([{ name: 'pkg/h', type: HARDLINK, link: 'pkg/../../x' }]), /hard link target of pkg\/h .*"\.\."/);
});

test('honest links pass and are kept byte for byte', async () => {
  const tar = craft([
    { name: 'pkg/', type: DIR },
    { name: 'pkg/COPYING', data: x },
    { name: 'pkg/doc/', type: DIR },
    { name: 'pkg/doc/COPYING', type: SYMLINK, link: '../COPYING' },
    { name: 'pkg/doc/up', type: SYMLINK, link: '../../pkg/COPYING' },
    { name: 'pkg/src/link.c', type: SYMLINK, link: './main.c' },
    { name: 'pkg/src/main.c', data: x },
    { name: 'pkg/hard.c', type: HARDLINK, link: 'pkg/src/main.c' },
    // A name that only begins like a link's path is not below it.
    { name: 'pkg/doc/COPYING.old', data: x },
    { name: 'pkg/doc/COPYING-dir/x', data: x },
  ]);
  const { out, report } = await cleanse(tar);
  assert.equal(report.kept, 10);
  assert.deepEqual(out.subarray(0, tar.length - 1024), tar.subarray(0, tar.length - 1024));
});

test('the symlinks remembered are bounded (tarLinkPathBytes)', async () => {
  const links = Array.from({ length: 40 }, (_, i) => ({ name: `pkg/l${i}`, type: SYMLINK, link: 'f' }));
  await cleanse(craft(links), ['nothing'], limitsWith({ tarLinkPathBytes: 1000 }));
  await assert.rejects(cleanse(craft(links), ['nothing'], limitsWith({ tarLinkPathBytes: 100 })), (err: unknown) => isSourcemeshError(err, 'E_ARCHIVE') && /symbolic links/.test(err.message));
});
