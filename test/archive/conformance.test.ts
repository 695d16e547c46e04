// Conformance: our tar is byte-identical to `git archive --format=tar [--prefix P] REF` on repositories built
// with the real git (see git-fixture.ts), covering what docs/GIT-ARCHIVE.md lists.

import assert from 'node:assert/strict';
import { readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { useReusedHandle } from '../../src/archive/git/inflate.ts';
import {
  assertSameArchive, commitAll, git, gitText, initRepo, makeRepo, tempRoot, writeFiles,
} from './git-fixture.ts';

const root = tempRoot();
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const repoDir = (name: string) => path.join(root, `${n++}-${name}`);

/** Deterministic pseudo-random bytes (xorshift), so that every run builds the same repositories. */
function pseudoRandom(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

function textLines(lines: number, seed: number): string {
  let s = '';
  for (let i = 0; i < lines; i++) s += `line ${i} of file ${seed}: ${'lorem ipsum dolor sit amet '.repeat((i * 7 + seed) % 5)}\n`;
  return s;
}

describe('git archive conformance: layout', () => {
  test('files, executables, symlinks, nested and empty files, with and without prefixes', async () => {
    const dir = repoDir('basic');
    makeRepo(dir, {
      'README': 'hello\n',
      'empty': '',
      'bin/run.sh': { content: '#!/bin/sh\necho hi\n', exec: true },
      'a/b/c/d/deep.txt': 'deep\n',
      'a/sibling': 'x',
      'link': { symlink: 'README' },
      'a/b/uplink': { symlink: '../../README' },
      'dangling': { symlink: 'nowhere/at/all' },
      'z-last': 'z',
      'a.b': 'dot',
      'a-b': 'dash',
    });
    for (const prefix of [undefined, 'P/', 'proj-1.0/', 'nested/dir/', 'noslash-', 'P//', '']) {
      await assertSameArchive(dir, 'HEAD', prefix);
    }
  });

  test('empty trees are absent, directories written before their first file, submodules as directories', async () => {
    const dir = repoDir('dirs');
    initRepo(dir);
    writeFiles(dir, { 'keep/file': 'k', 'x/y/z/file': 'deep', 'only-sub/.placeholder': '' });
    git(dir, ['add', '-A']);
    const sub = gitText(dir, ['hash-object', '-t', 'commit', '--literally', '-w', '--stdin'], { input: 'tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor a <a> 1 +0000\ncommitter a <a> 1 +0000\n\nsub\n' });
    git(dir, ['update-index', '--add', '--cacheinfo', `160000,${sub},submodule`]);
    git(dir, ['update-index', '--add', '--cacheinfo', `160000,${sub},deep/er/sub`]);
    git(dir, ['rm', '-q', '--cached', 'only-sub/.placeholder']);
    git(dir, ['update-index', '--add', '--cacheinfo', `160000,${sub},only-sub/module`]);
    // An empty tree and a tree holding only empty trees, through mktree.
    const empty = gitText(dir, ['mktree'], { input: '' });
    const holder = gitText(dir, ['mktree'], { input: `040000 tree ${empty}\tinner\n` });
    const tree = gitText(dir, ['write-tree']);
    const listing = gitText(dir, ['ls-tree', tree]);
    const withEmpty = gitText(dir, ['mktree'], { input: `${listing}\n040000 tree ${empty}\tempty-dir\n040000 tree ${holder}\tholder\n` });
    const commit = gitText(dir, ['commit-tree', withEmpty, '-m', 'empty trees']);
    await assertSameArchive(dir, commit, 'P/');
    await assertSameArchive(dir, commit);
  });

  test('long paths: 100/101 bytes, prefix splits up to 155, unsplittable names, long directories and prefixes', async () => {
    const dir = repoDir('long');
    const files: Record<string, string> = {};
    for (const len of [99, 100, 101, 102, 154, 155, 156, 157, 200, 255]) {
      files['f'.repeat(len)] = `name of ${len}\n`;
      files[`d/${'g'.repeat(len - 2)}`] = `nested name of ${len}\n`;
    }
    // prefix part exactly at the 154/155 boundary, name part at the 100 boundary
    for (const plen of [150, 153, 154, 155, 156]) {
      for (const nlen of [99, 100, 101]) {
        const dirPart = `${'p'.repeat(plen - 10)}/${'q'.repeat(8)}`;
        files[`${dirPart.slice(0, plen)}/${'n'.repeat(nlen)}`] = `${plen}/${nlen}`;
      }
    }
    files[`${'a'.repeat(60)}/${'b'.repeat(60)}/${'c'.repeat(60)}/${'d'.repeat(60)}/file`] = 'many levels\n';
    files[`${'x'.repeat(120)}/short`] = 'long directory\n';
    files[`${'y'.repeat(90)}/${'z'.repeat(9)}/`.slice(0, -1) + '/w'] = 'dir name ending near 100\n';
    files['long-link'] = { symlink: 't'.repeat(101) } as never;
    files['link-100'] = { symlink: 'u'.repeat(100) } as never;
    files[`${'v'.repeat(110)}-link`] = { symlink: 'w'.repeat(150) } as never;
    makeRepo(dir, files as never);
    for (const prefix of [undefined, 'P/', `${'L'.repeat(99)}/`, `${'M'.repeat(120)}/`, `${'N'.repeat(200)}/`]) {
      await assertSameArchive(dir, 'HEAD', prefix);
    }
  });

  test('unicode, spaces, quotes, control characters and glob characters in names', async () => {
    const dir = repoDir('names');
    makeRepo(dir, {
      'héllo wörld.txt': 'utf-8\n',
      '日本語/ファイル.txt': 'japanese\n',
      'emoji-😀.md': 'emoji\n',
      'with space/and "quotes"': 'q\n',
      "it's": 'apostrophe\n',
      'back\\slash': 'bs\n',
      'tab\there': 'tab\n',
      'new\nline': 'newline\n',
      '*star?[x]': 'glob\n',
      '-dash': 'dash\n',
      '#hash': 'hash\n',
      [`${'é'.repeat(60)}/${'ü'.repeat(40)}`]: 'multibyte long\n',
    });
    await assertSameArchive(dir, 'HEAD', 'P/');
    await assertSameArchive(dir, 'HEAD', 'ünï/');
  });

  test('binary and large files, loose then packed', async () => {
    const dir = repoDir('large');
    makeRepo(dir, {
      'random.bin': pseudoRandom(3 * 1024 * 1024 + 7, 1),
      'zeros.bin': Buffer.alloc(2 * 1024 * 1024),
      'big-text.txt': textLines(60_000, 3),
      'stream.bin': pseudoRandom(17 * 1024 * 1024 + 3, 4),
      'small.bin': pseudoRandom(511, 5),
      'block.bin': pseudoRandom(512, 6),
      'block1.bin': pseudoRandom(513, 7),
      'record.bin': pseudoRandom(10240 - 512 - 512 * 3, 8),
    });
    await assertSameArchive(dir, 'HEAD', 'P/');
    git(dir, ['gc', '-q']);
    await assertSameArchive(dir, 'HEAD', 'P/');
    // Small output chunks around streamed files (a streamed file leaves the output mid-block).
    await assertSameArchive(dir, 'HEAD', 'P/', { chunkBytes: 1536 });
    await assertSameArchive(dir, 'HEAD', 'P/', { chunkBytes: 700 });
  });

  test('record padding: every tail size around the two-block end marker', async () => {
    const dir = repoDir('records');
    initRepo(dir);
    // The global header and "P/" take 3 blocks; one file of k blocks leaves the last record with
    // 20 - (3 + 1 + k) % 20 free blocks.
    for (let k = 13; k <= 17; k++) {
      rmSync(path.join(dir, 'f'), { force: true });
      writeFiles(dir, { f: pseudoRandom(512 * k - 1, k) });
      const c = commitAll(dir, `k=${k}`);
      await assertSameArchive(dir, c, 'P/');
      await assertSameArchive(dir, c);
    }
  });
});

describe('git archive conformance: objects and refs', () => {
  test('many versions packed with deltas (repack -adf, deep chains), 64-bit index offsets, loose leftovers', async () => {
    const dir = repoDir('deltas');
    initRepo(dir);
    const commits: string[] = [];
    let base = textLines(3000, 9);
    for (let v = 0; v < 12; v++) {
      base = base.replace(`line ${v * 100} `, `changed line ${v} `) + `appended ${v}\n`;
      writeFiles(dir, { 'evolving.txt': base, [`dir${v % 3}/file.txt`]: base.slice(v * 1000), 'bin.dat': Buffer.concat([pseudoRandom(200_000, 11), Buffer.from(`v${v}`)]) });
      commits.push(commitAll(dir, `version ${v}`));
    }
    git(dir, ['repack', '-adf', '-q', '--depth=50', '--window=50']);
    for (const c of [commits[0]!, commits[5]!, commits[11]!]) await assertSameArchive(dir, c, 'P/');
    // Force every offset into the 64-bit table but the first (git's test knob for packs over 2 GiB).
    const packDir = path.join(dir, '.git', 'objects', 'pack');
    const packFile = path.join(packDir, readdirSync(packDir).find((f) => f.endsWith('.pack'))!);
    const idxFile = packFile.replace(/\.pack$/, '.idx');
    rmSync(idxFile);
    git(dir, ['index-pack', '--index-version=2,12', '-o', idxFile, packFile]);
    await assertSameArchive(dir, commits[11]!, 'P/');
    await assertSameArchive(dir, commits[3]!, 'P/');
    // New loose objects on top of the pack.
    writeFiles(dir, { 'evolving.txt': base + 'loose\n', 'new.txt': 'new\n' });
    const loose = commitAll(dir, 'loose');
    await assertSameArchive(dir, loose, 'P/');
  });

  test('thin packs fixed with REF_DELTA bases (fetch into a bare repository)', async () => {
    const src = repoDir('fetch-src');
    initRepo(src);
    let text = textLines(2000, 21);
    for (let v = 0; v < 5; v++) {
      text += `more ${v}\n`;
      writeFiles(src, { 'doc.txt': text, [`v${v}.txt`]: text.slice(v * 100) });
      commitAll(src, `v${v}`);
    }
    const dst = repoDir('fetch-dst');
    initRepo(dst, true);
    git(src, ['branch', 'old', 'main~3']);
    // unpackLimit=1 keeps what arrives as packs; the second fetch is thin, completed with REF_DELTA bases.
    git(dst, ['-c', 'fetch.unpackLimit=1', 'fetch', '-q', src, 'old:refs/heads/old']);
    git(dst, ['-c', 'fetch.unpackLimit=1', 'fetch', '-q', src, 'main:refs/heads/main']);
    await assertSameArchive(dst, 'main', 'P/');
    await assertSameArchive(dst, 'old', 'P/');
  });

  test('tags, branches, packed refs, HEAD, bare repositories, worktrees and abbreviated ids', async () => {
    const dir = repoDir('refs');
    initRepo(dir);
    writeFiles(dir, { 'a.txt': 'one\n' });
    const c1 = commitAll(dir, 'one');
    git(dir, ['tag', 'v1.0']);
    git(dir, ['tag', '-a', '-m', 'annotated', 'v1.0-annotated']);
    git(dir, ['tag', '-a', '-m', 'tag of a tag', 'v1.0-nested', 'v1.0-annotated']);
    writeFiles(dir, { 'a.txt': 'two\n', 'b.txt': 'b\n' });
    const c2 = commitAll(dir, 'two');
    git(dir, ['branch', 'feature', c1]);
    git(dir, ['tag', 'feature', c2]); // a tag and a branch of one name: the tag wins, as in rev-parse
    for (const ref of ['HEAD', '@', 'main', 'refs/heads/main', 'heads/main', 'v1.0', 'v1.0-annotated', 'v1.0-nested', 'tags/v1.0', 'feature', 'refs/heads/feature', c1, c2.slice(0, 7), c1.slice(0, 12).toUpperCase(), gitText(dir, ['rev-parse', 'v1.0-annotated']).slice(0, 10)]) {
      await assertSameArchive(dir, ref, 'P/');
    }
    git(dir, ['pack-refs', '--all']);
    for (const ref of ['main', 'v1.0', 'v1.0-nested', 'feature', 'refs/heads/feature']) await assertSameArchive(dir, ref, 'P/');
    const bare = repoDir('refs-bare');
    git(root, ['clone', '-q', '--bare', dir, bare]);
    for (const ref of ['HEAD', 'main', 'v1.0-nested']) await assertSameArchive(bare, ref, 'P/');
    const wt = repoDir('refs-worktree');
    git(dir, ['worktree', 'add', '-q', '--detach', wt, c1]);
    await assertSameArchive(wt, 'HEAD', 'P/');
    await assertSameArchive(wt, 'main', 'P/');
    await assertSameArchive(path.join(dir, '.git'), 'HEAD', 'P/');
  });

  test('merge commits, describe-style names and dates past the ustar mtime field', async () => {
    const dir = repoDir('merge');
    initRepo(dir);
    writeFiles(dir, { 'base.txt': 'base\n' });
    commitAll(dir, 'base');
    git(dir, ['checkout', '-q', '-b', 'side']);
    writeFiles(dir, { 'side.txt': 'side\n' });
    commitAll(dir, 'side');
    git(dir, ['checkout', '-q', 'main']);
    writeFiles(dir, { 'main.txt': 'main\n' });
    commitAll(dir, 'main');
    git(dir, ['merge', '-q', '--no-ff', '-m', 'merge side', 'side']);
    const merge = gitText(dir, ['rev-parse', 'HEAD']);
    await assertSameArchive(dir, 'HEAD', 'P/');
    await assertSameArchive(dir, `v9.9-3-g${merge.slice(0, 9)}`, 'P/');
    // Ancestry steps: first parents, the second parent of the merge, peeling, and combinations.
    git(dir, ['tag', '-a', '-m', 'annotated', 'v2', 'HEAD']);
    for (const rev of ['HEAD~', 'HEAD~2', 'HEAD^', 'HEAD^2', 'HEAD^2~1', 'HEAD^0', 'main^^', 'v2^{commit}', 'v2^{}~1', 'v2^2']) {
      await assertSameArchive(dir, rev, 'P/');
    }
    const tree = gitText(dir, ['rev-parse', 'HEAD^{tree}']);
    for (const date of ['8589934591', '8589934592', '99999999999', '18446744073709551615', '99999999999999999999999']) {
      const c = gitText(dir, ['hash-object', '-t', 'commit', '-w', '--stdin', '--literally'], {
        input: `tree ${tree}\nparent ${merge}\nauthor A <a@b> ${date} +0000\ncommitter C <c@d> ${date} +0200\n\nfar future\n`,
      });
      await assertSameArchive(dir, c, 'P/');
    }
    const odd = gitText(dir, ['hash-object', '-t', 'commit', '-w', '--stdin', '--literally'], {
      input: `tree ${tree}\ncommitter C <c@d> 1234567890 +0000\nauthor A <a@b> 1 +0000\n\nswapped header lines\n`,
    });
    await assertSameArchive(dir, odd, 'P/');
  });
});

describe('inflating through the public zlib API gives the same bytes', () => {
  test('packed and loose objects with deltas, without the reused zlib handle', async (t) => {
    useReusedHandle(false);
    t.after(() => useReusedHandle(null));
    const dir = repoDir('public-zlib');
    initRepo(dir);
    let text = textLines(2000, 31);
    for (let v = 0; v < 4; v++) {
      text += `v${v}\n`;
      writeFiles(dir, { 'a.txt': text, 'b.bin': pseudoRandom(70_000 + v, v) });
      commitAll(dir, `v${v}`);
    }
    await assertSameArchive(dir, 'HEAD', 'P/');
    git(dir, ['repack', '-adfq']);
    await assertSameArchive(dir, 'HEAD', 'P/');
    await assertSameArchive(dir, gitText(dir, ['rev-parse', 'HEAD~2']), 'P/');
  });
});
