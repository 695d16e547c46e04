// Property: for random trees (names short and long, unicode, nesting, empty directories, executables, symlinks
// with short and long targets, binary and text contents with random attributes), loose or packed, our tar
// equals `git archive`'s, for random prefixes, and compressed at a random level it equals `git archive |
// gzip -n -LEVEL` (gzip-n) or `git archive --format=tar.gz -LEVEL` (zlib); chunking never changes the bytes.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import fc from 'fast-check';
import { gzipChunks } from '../../src/archive/compress.ts';
import { assertSameArchive, commitAll, git, gitArchive, initRepo, ourArchive, tempRoot, writeFiles, type FileSpec } from './git-fixture.ts';

const root = tempRoot();
after(() => rmSync(root, { recursive: true, force: true }));

type Node = { kind: 'file'; body: FileSpec } | { kind: 'dir'; children: [string, Node][] } ;

const nameArb = fc.oneof(
  { weight: 6, arbitrary: fc.stringMatching(/^[a-z][a-z0-9._-]{0,8}$/) },
  { weight: 1, arbitrary: fc.integer({ min: 60, max: 140 }).map((n) => 'L'.repeat(n)) },
  { weight: 1, arbitrary: fc.constantFrom('ünï', '日本', 'a b', 'x.txt', 'y.bin', '.hidden', 'tab\tname', 'q"uote', 'Z') },
).filter((s) => s.toLowerCase() !== '.git' && s !== '.' && s !== '..');

const bodyArb: fc.Arbitrary<FileSpec> = fc.oneof(
  fc.constant(''),
  fc.string({ maxLength: 200 }).map((s) => s),
  fc.array(fc.constantFrom('line\n', 'crlf\r\n', '$Id$\n', '$Format:%h %s$\n', 'x', '\0', '\t'), { maxLength: 30 }).map((a) => a.join('')),
  fc.uint8Array({ minLength: 1, maxLength: 3000 }).map((a) => Buffer.from(a)),
  fc.string({ maxLength: 50 }).map((s) => ({ content: s, exec: true })),
  fc.oneof(fc.stringMatching(/^[a-z./]{1,20}$/), fc.integer({ min: 95, max: 160 }).map((n) => 't'.repeat(n))).map((t) => ({ symlink: t })),
);

const treeArb: fc.Arbitrary<Node> = fc.letrec((tie) => ({
  node: fc.oneof({ depthSize: 'small', withCrossShrink: true }, fc.record({ kind: fc.constant('file' as const), body: bodyArb }), tie('dir')),
  dir: fc.record({
    kind: fc.constant('dir' as const),
    children: fc.uniqueArray(fc.tuple(nameArb, tie('node')), { maxLength: 5, selector: ([name]) => name }),
  }),
})).dir as fc.Arbitrary<Node>;

const ATTR_LINES = ['*.txt eol=crlf', '*.bin binary', '* ident', '*.txt text=auto eol=crlf', 'x* export-ignore', 'L* export-ignore', '*/ export-ignore', '* export-subst', '*.hidden -text eol=crlf', 'Z/** export-ignore'];

function flatten(node: Node, prefix: string, files: Record<string, FileSpec>, dirs: string[]): void {
  if (node.kind === 'file') {
    files[prefix] = node.body;
    return;
  }
  if (prefix) dirs.push(prefix);
  for (const [name, child] of node.children) flatten(child, prefix ? `${prefix}/${name}` : name, files, dirs);
}

describe('random trees', () => {
  let run = 0;
  test('our tar and tar.gz equal git archive (and gzip -n) for random trees, attributes, prefixes, levels, loose and packed', async () => {
    await fc.assert(fc.asyncProperty(
      treeArb,
      fc.subarray(ATTR_LINES),
      fc.constantFrom(undefined, 'P/', 'some-project-1.2.3/', 'x', `${'p'.repeat(120)}/`),
      fc.boolean(),
      fc.constantFrom('gzip-n' as const, 'zlib' as const),
      fc.integer({ min: 1, max: 9 }),
      async (tree, attrLines, prefix, packed, flavour, level) => {
        const dir = path.join(root, `t${run++}`);
        initRepo(dir);
        const files: Record<string, FileSpec> = {};
        const dirs: string[] = [];
        flatten(tree, '', files, dirs);
        if (attrLines.length) files['.gitattributes'] = attrLines.join('\n') + '\n';
        writeFiles(dir, files);
        // Empty directories are not tracked by git; keep a few as files' parents only.
        for (const d of dirs) mkdirSync(path.join(dir, d), { recursive: true });
        commitAll(dir, 'random tree');
        if (packed) git(dir, ['gc', '-q', '--aggressive']);
        await assertSameArchive(dir, 'HEAD', prefix);
        const prefixArg = prefix !== undefined ? [`--prefix=${prefix}`] : [];
        const theirs = flavour === 'gzip-n'
          ? execFileSync('gzip', ['-n', `-${level}`], { input: gitArchive(dir, 'HEAD', prefix) })
          : git(dir, ['archive', '--format=tar.gz', `-${level}`, ...prefixArg, 'HEAD']);
        const ours: Uint8Array[] = [];
        const tar = await ourArchive({ repoPath: dir, ref: 'HEAD', prefix: prefix ?? '' });
        for await (const c of gzipChunks((async function* () { yield tar; })(), flavour, level)) ours.push(c);
        assert.ok(Buffer.concat(ours).equals(theirs), `${flavour} level ${level} differs from ${flavour === 'gzip-n' ? 'gzip -n' : 'git archive --format=tar.gz'}`);
        rmSync(dir, { recursive: true, force: true });
      },
    ), { numRuns: 30, seed: 1234 });
  });

  test('chunk sizes do not change the bytes', async () => {
    const dir = path.join(root, 'chunks');
    initRepo(dir);
    const files: Record<string, FileSpec> = {};
    for (let i = 0; i < 40; i++) files[`d${i % 4}/f${i}`] = Buffer.alloc(i * 997, i);
    files['big'] = Buffer.alloc(200_000, 7);
    writeFiles(dir, files);
    commitAll(dir);
    const digests = new Set<string>();
    for (const chunkBytes of [512, 1000, 4096, 65536, 1 << 20]) {
      const tar = await ourArchive({ repoPath: dir, ref: 'HEAD', prefix: 'P/', chunkBytes });
      digests.add(createHash('sha256').update(tar).digest('hex'));
    }
    assert.equal(digests.size, 1);
    await assertSameArchive(dir, 'HEAD', 'P/');
  });
});
