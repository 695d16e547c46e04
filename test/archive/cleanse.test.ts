// `sourcemesh cleanse` against GNU tar's own `--delete`, with real tar, gzip, xz and bzip2 files; hostile
// tarballs; and the manifest's `cleanse` field in fetch and mirror sync.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { MANIFEST_FORMAT } from '../../src/manifest/distfile.ts';
import { deletedBy } from '../../src/archive/cleanse.ts';
import { paxRecord, ustarHeader } from '../../src/archive/tar/header.ts';
import { bytes, sha256 } from '../helpers/distfiles.ts';
import { startOrigin } from '../helpers/origin.ts';
import { runCli, tempDir } from '../helpers/run.ts';

/** A source tree with long names (pax and GNU), unicode, symlinks, hard links, empty dirs. */
async function makeTree(dir: string): Promise<string> {
  const root = path.join(dir, 'tree');
  const top = path.join(root, 'proj-1.0');
  const long = `${'l'.repeat(120)}/${'m'.repeat(110)}`;
  for (const d of ['doc', 'src/gen', 'empty', long, 'po']) await mkdir(path.join(top, d), { recursive: true });
  await writeFile(path.join(top, 'configure'), '#!/bin/sh\n# generated\n'.repeat(500));
  await writeFile(path.join(top, 'configure.ac'), 'AC_INIT\n');
  await writeFile(path.join(top, 'doc', 'manual.info'), 'info\n'.repeat(3000));
  await writeFile(path.join(top, 'doc', 'manual.texi'), '@node Top\n');
  await writeFile(path.join(top, 'src', 'main.c'), 'int main(void) { return 0; }\n');
  await writeFile(path.join(top, 'src', 'gen', 'parse.c'), '/* bison output */\n'.repeat(4000));
  await writeFile(path.join(top, 'src', 'blob.bin'), bytes(200_000, 5));
  await writeFile(path.join(top, long, 'deep.info'), 'deep\n');
  await writeFile(path.join(top, long, 'keep.txt'), 'keep\n');
  await writeFile(path.join(top, 'po', 'général.po'), 'msgid ""\n');
  await writeFile(path.join(top, 'po', 'fr.gmo'), bytes(3000, 6));
  execFileSync('ln', ['-s', 'main.c', path.join(top, 'src', 'link.c')]);
  execFileSync('ln', [path.join(top, 'configure.ac'), path.join(top, 'hard.ac')]);
  return root;
}

function tarOf(root: string, format: 'gnu' | 'pax' | 'ustar'): Buffer {
  return execFileSync('tar', [`--format=${format}`, '--sort=name', '--mtime=@1600000000', '--owner=0', '--group=0', '--numeric-owner', '-C', root, '-cf', '-', 'proj-1.0'], { maxBuffer: 1 << 28 });
}

/** Without the zero blocks that end it: the kept entries' bytes. */
function entriesPart(tar: Buffer): Buffer {
  let end = tar.length;
  while (end >= 512 && tar.subarray(end - 512, end).every((b) => b === 0)) end -= 512;
  return tar.subarray(0, end);
}

test('glob semantics: paths, parents, ** and a leading ./', () => {
  assert.equal(deletedBy(['**/*.info'], 'proj/doc/a.info'), '**/*.info');
  assert.equal(deletedBy(['*.info'], 'proj/doc/a.info'), undefined, '* does not cross /');
  assert.equal(deletedBy(['proj/doc'], 'proj/doc/a.info'), 'proj/doc', 'a directory deletes its contents');
  assert.equal(deletedBy(['proj/doc/'], './proj/doc/'), 'proj/doc/');
  assert.equal(deletedBy(['proj/do'], 'proj/doc/a'), undefined);
  assert.equal(deletedBy(['*/configure'], 'proj/configure'), '*/configure');
  assert.equal(deletedBy(['*/configure'], 'proj/sub/configure'), undefined);
  assert.equal(deletedBy(['proj/po/*.gmo'], 'proj/po/fr.gmo'), 'proj/po/*.gmo');
});

test('cleanse keeps every other entry byte for byte, as GNU tar --delete does, from gzip, xz, bzip2 and plain input', async (t) => {
  const dir = await tempDir(t);
  const root = await makeTree(dir);
  const patterns = ['**/*.info', 'proj-1.0/configure', 'proj-1.0/src/gen', '**/*.gmo'];
  const members = ['proj-1.0/configure', 'proj-1.0/doc/manual.info', `proj-1.0/${'l'.repeat(120)}/${'m'.repeat(110)}/deep.info`, 'proj-1.0/src/gen', 'proj-1.0/po/fr.gmo'];
  for (const format of ['gnu', 'pax', 'ustar'] as const) {
    if (format === 'ustar') continue; // ustar cannot hold the long path
    const tar = tarOf(root, format);
    const reference = path.join(dir, `ref-${format}.tar`);
    await writeFile(reference, tar);
    execFileSync('tar', ['--delete', '-f', reference, ...members]);
    const expected = entriesPart(await readFile(reference));
    const results = new Set<string>();
    for (const [ext, argv] of [['tar', undefined], ['tar.gz', ['gzip', '-n', '-9']], ['tar.xz', ['xz', '-T1']], ['tar.bz2', ['bzip2']]] as const) {
      const input = path.join(dir, `in-${format}.${ext}`);
      const packed = argv ? execFileSync(argv[0], argv.slice(1), { input: tar, maxBuffer: 1 << 28 }) : tar;
      await writeFile(input, packed);
      const out = path.join(dir, `out-${format}-${ext}.tar.gz`);
      const recipeFile = path.join(dir, `recipe-${format}-${ext}.json`);
      const r = await runCli(['cleanse', input, '--delete', ...patterns, '-o', out, '--recipe', recipeFile, '--json']);
      assert.equal(r.code, 0, r.stderr);
      const outBytes = await readFile(out);
      const cleansedTar = execFileSync('gzip', ['-dc'], { input: outBytes, maxBuffer: 1 << 28 });
      assert.deepEqual(entriesPart(cleansedTar), expected, `${format} ${ext}: the kept entries' bytes`);
      assert.equal(cleansedTar.length % 10240, 0);
      // Our gzip is GNU gzip -n -6, byte for byte.
      assert.deepEqual(outBytes, execFileSync('gzip', ['-n', '-6'], { input: cleansedTar, maxBuffer: 1 << 28 }));
      const recipe = JSON.parse(await readFile(recipeFile, 'utf8'));
      assert.deepEqual(recipe, { format: 'sourcemesh.cleanse/v1', from: sha256(packed), delete: patterns, result: sha256(outBytes) });
      const report = JSON.parse(r.stdout);
      assert.deepEqual(report.deleted.sort(), [...members.slice(0, 2), members[2], members[4], 'proj-1.0/src/gen/', 'proj-1.0/src/gen/parse.c'].sort());
      results.add(recipe.result);
    }
    // The result depends on the tar alone, not on how the input was compressed.
    assert.equal(results.size, 1, format);
  }
  // Replaying the recipe gives the same bytes; GNU tar extracts the result.
  const input = path.join(dir, 'in-pax.tar.xz');
  const replay = path.join(dir, 'replay.tar.gz');
  const recipe = JSON.parse(await readFile(path.join(dir, 'recipe-pax-tar.xz.json'), 'utf8'));
  assert.equal((await runCli(['cleanse', input, '--delete', ...recipe.delete, '-o', replay])).code, 0);
  assert.equal(sha256(await readFile(replay)), recipe.result);
  const x = path.join(dir, 'x');
  await mkdir(x);
  execFileSync('tar', ['-xzf', replay, '-C', x]);
  assert.equal(await readFile(path.join(x, 'proj-1.0/src/main.c'), 'utf8'), 'int main(void) { return 0; }\n');
  assert.deepEqual((await readdir(path.join(x, 'proj-1.0/doc'))), ['manual.texi']);
});

/** A tar stream from (header fields, data) entries, with our own header writer. */
function craft(entries: { name: string; data?: Buffer; type?: number; size?: number; pax?: Buffer[] }[], end = true): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    if (e.pax) {
      const payload = Buffer.concat(e.pax);
      parts.push(ustarHeader({ name: Buffer.from('pax'), mode: 0o644, size: payload.length, mtime: 0, type: 0x78 }), payload, Buffer.alloc((512 - (payload.length % 512)) % 512));
    }
    const data = e.data ?? Buffer.alloc(0);
    parts.push(ustarHeader({ name: Buffer.from(e.name, 'latin1'), mode: 0o644, size: e.size ?? data.length, mtime: 0, type: e.type ?? 0x30 }), data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  if (end) parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

test('hostile tarballs: a clear E_ARCHIVE error and no output file', async (t) => {
  const dir = await tempDir(t);
  const ok = craft([{ name: 'p/a', data: Buffer.from('a') }]);
  const badChecksum = Buffer.from(ok);
  badChecksum[10] = 0x41;
  const cases: [string, Buffer, RegExp][] = [
    ['dotdot', craft([{ name: 'p/../../etc/passwd', data: Buffer.from('x') }]), /has a "\.\." component/],
    ['absolute', craft([{ name: '/etc/passwd', data: Buffer.from('x') }]), /is an absolute path/],
    ['pax-dotdot', craft([{ name: 'p/ok', data: Buffer.from('x'), pax: [paxRecord('path', Buffer.from('../up'))] }]), /has a "\.\." component/],
    ['pax-nul', craft([{ name: 'p/ok', data: Buffer.from('x'), pax: [paxRecord('path', Buffer.from('p/a\0b'))] }]), /NUL byte/],
    ['pax-malformed', craft([{ name: 'p/ok', pax: [Buffer.from('99 path=x\n')] }]), /malformed pax/],
    ['huge-pax-size', craft([{ name: 'p/ok', pax: [paxRecord('size', Buffer.from('99999999999999999999'))] }]), /bad pax size/],
    ['absurd-size', craft([{ name: 'p/big', size: 0o77777777777, data: Buffer.from('x') }]), /truncated tar/],
    ['truncated-data', craft([{ name: 'p/a', data: bytes(5000) }]).subarray(0, 2048), /truncated tar/],
    ['no-end', craft([{ name: 'p/a', data: Buffer.from('a') }], false), /no end-of-archive/],
    ['checksum', badChecksum, /bad tar header checksum/],
    ['not-a-tar', Buffer.from('hello, this is not a tarball at all\n'.repeat(40)), /bad tar header checksum/],
  ];
  for (const [name, tar, why] of cases) {
    const input = path.join(dir, `${name}.tar.gz`);
    await writeFile(input, execFileSync('gzip', ['-n'], { input: tar }));
    const out = path.join(dir, `${name}-out.tar.gz`);
    const r = await runCli(['cleanse', input, '--delete', 'p/nothing', '-o', out]);
    assert.equal(r.code, 2, `${name}: ${r.stderr}`);
    assert.match(r.stderr, /\[E_ARCHIVE\]/, name);
    assert.match(r.stderr, why, name);
    assert.ok(r.stderr.includes(input), `${name}: names the input: ${r.stderr}`);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
  // A truncated compressed stream, and options that are not deletion.
  const cut = path.join(dir, 'cut.tar.xz');
  await writeFile(cut, execFileSync('xz', ['-T1'], { input: craft([{ name: 'p/a', data: bytes(300_000) }]) }).subarray(0, 20_000));
  const r = await runCli(['cleanse', cut, '--delete', 'x', '-o', path.join(dir, 'cut-out.tar.gz')]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /corrupt or truncated xz stream/);
  const neg = await runCli(['cleanse', cut, '--delete', '!keep', '-o', path.join(dir, 'n.tar.gz')]);
  assert.equal(neg.code, 2);
  assert.match(neg.stderr, /E_UNSUPPORTED/);
  const other = await runCli(['cleanse', cut, '--add', 'x', '-o', path.join(dir, 'n.tar.gz')]);
  assert.equal(other.code, 2);
  assert.deepEqual((await readdir(dir)).filter((n) => n.includes('out') || n.startsWith('n.') || n.includes('.tmp')), []);
});

test('fetch and mirror sync make a distfile from its cleanse recipe, verified against its sha256', async (t) => {
  const dir = await tempDir(t);
  const root = await makeTree(dir);
  const original = execFileSync('gzip', ['-n'], { input: tarOf(root, 'pax'), maxBuffer: 1 << 28 });
  await writeFile(path.join(dir, 'orig.tar.gz'), original);
  const cleansedFile = path.join(dir, 'cleansed.tar.gz');
  const c = await runCli(['cleanse', path.join(dir, 'orig.tar.gz'), '--delete', '**/*.info', 'proj-1.0/src/gen', '-o', cleansedFile, '--json']);
  assert.equal(c.code, 0, c.stderr);
  const cleansed = await readFile(cleansedFile);
  const origin = await startOrigin({ '/proj-1.0.tar.gz': { body: original } });
  t.after(() => origin.close());
  const manifestFor = async (pin: string) => {
    const file = path.join(dir, 'manifest.json');
    await writeFile(file, JSON.stringify({ format: MANIFEST_FORMAT, name: 'cleansed', distfiles: [
      { name: 'proj-1.0-clean.tar.gz', sha256: pin, urls: [`${origin.url}/proj-1.0.tar.gz`], cleanse: { from: sha256(original), delete: ['**/*.info', 'proj-1.0/src/gen'] } },
    ] }));
    return file;
  };
  const manifest = await manifestFor(sha256(cleansed));
  const out = path.join(dir, 'distfiles');
  const r = await runCli(['fetch', manifest, '--store', path.join(dir, 'store'), '-o', out, '--json']);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const f = JSON.parse(r.stdout).files[0];
  assert.equal(f.status, 'fetched');
  assert.match(f.source, /^cleanse of http:/);
  assert.deepEqual(await readFile(path.join(out, 'proj-1.0-clean.tar.gz')), cleansed);

  const sync = await runCli(['mirror', 'sync', manifest, '--root', path.join(dir, 'mirror'), '--json']);
  assert.equal(sync.code, 0, sync.stderr + sync.stdout);
  assert.deepEqual(await readFile(path.join(dir, 'mirror', 'proj-1.0-clean.tar.gz')), cleansed);

  // A pin the recipe does not produce: a verification failure, nothing exported.
  const wrong = await manifestFor(sha256(Buffer.from('something else')));
  const bad = await runCli(['fetch', wrong, '--store', path.join(dir, 'store2'), '-o', path.join(dir, 'd2'), '--json']);
  assert.equal(bad.code, 3, bad.stderr);
  assert.equal(JSON.parse(bad.stdout).files[0].error.code, 'E_CHECKSUM');
  assert.deepEqual(await readdir(path.join(dir, 'd2')).catch(() => []), []);
});
