// A pack's reverse index (pack-*.rev, gitformat-pack "pack-*.rev files"): when git wrote one, the reader takes
// the pack order from it instead of sorting the index's offsets (src/archive/git/pack-index.ts); the archive
// is the same, and a damaged or foreign .rev is one E_ARCHIVE error naming it, never a wrong bound.

import assert from 'node:assert/strict';
import { chmodSync, cpSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { isSourcemeshError } from '../../src/errors.ts';
import { assertSameArchive, commitAll, git, initRepo, ourArchive, tempRoot, writeFiles } from './git-fixture.ts';

const root = tempRoot();
after(() => rmSync(root, { recursive: true, force: true }));

const dir = path.join(root, 'repo');
initRepo(dir);
for (let c = 0; c < 12; c++) {
  const files: Record<string, Buffer> = {};
  for (let i = 0; i < 30; i++) if ((i + c) % 4 === 0 || c === 0) files[`d${i % 3}/f${i}.txt`] = Buffer.from(`file ${i}\n`.repeat(50 + i) + `edit ${c}\n`);
  writeFiles(dir, files);
  commitAll(dir, `c${c}`);
}
git(dir, ['-c', 'pack.writeReverseIndex=true', 'repack', '-adfq', '--depth=20']);
const packDir = path.join(dir, '.git', 'objects', 'pack');
const revName = readdirSync(packDir).find((f) => f.endsWith('.rev'));

test('git 2.39 writes a reverse index when asked, and the archive read through it is the same as git archive', async () => {
  assert.ok(revName, `no .rev in ${readdirSync(packDir).join(' ')}`);
  await assertSameArchive(dir, 'HEAD', 'p/');
  await assertSameArchive(dir, 'HEAD~9', 'p/', { limits: { gitPackCacheBytes: 1, gitDeltaBaseCacheBytes: 1 } });
});

/** A copy of the repository whose .rev is `damage(original)`. */
function withRev(name: string, damage: (rev: Buffer) => Buffer): string {
  const copy = path.join(root, name);
  cpSync(dir, copy, { recursive: true });
  const file = path.join(copy, '.git', 'objects', 'pack', revName!);
  const bytes = damage(Buffer.from(readFileSync(file)));
  chmodSync(file, 0o644);
  writeFileSync(file, bytes);
  return copy;
}

async function refused(repoPath: string, message: RegExp): Promise<void> {
  let caught: unknown;
  try {
    await ourArchive({ repoPath, ref: 'HEAD' });
  } catch (err) {
    caught = err;
  }
  assert.ok(isSourcemeshError(caught), `expected E_ARCHIVE, got ${String(caught)}`);
  assert.equal(caught.code, 'E_ARCHIVE', caught.message);
  assert.match(caught.message, /\.rev/);
  assert.match(caught.message, message);
  assert.ok(!caught.message.includes('\n'), 'one line');
}

const u32 = (b: Buffer, at: number, v: number) => {
  b.writeUInt32BE(v >>> 0, at);
  return b;
};

test('a damaged reverse index is E_ARCHIVE naming it: size, signature, version, hash, pack, positions, order', async () => {
  assert.ok(revName);
  await refused(withRev('short', (b) => b.subarray(0, b.length - 4)), /does not fit/);
  await refused(withRev('long', (b) => Buffer.concat([b, Buffer.alloc(4)])), /does not fit/);
  await refused(withRev('magic', (b) => u32(b, 0, 0x52494459)), /signature/);
  await refused(withRev('version', (b) => u32(b, 4, 2)), /version 2/);
  await refused(withRev('hash', (b) => u32(b, 8, 2)), /hash function 2/);
  await refused(withRev('foreign', (b) => {
    b[b.length - 40] ^= 1;
    return b;
  }), /another pack/);
  await refused(withRev('range', (b) => u32(b, 12 + 4 * 5, 0xfffffff0)), /position/);
  await refused(withRev('order', (b) => {
    // Two neighbours swapped: every position still in range and named once, the order wrong.
    const x = b.readUInt32BE(12 + 4 * 7);
    u32(b, 12 + 4 * 7, b.readUInt32BE(12 + 4 * 8));
    return u32(b, 12 + 4 * 8, x);
  }), /not in pack order/);
});

test('without a reverse index the offsets are sorted, with the same archive', async () => {
  const copy = path.join(root, 'no-rev');
  cpSync(dir, copy, { recursive: true });
  rmSync(path.join(copy, '.git', 'objects', 'pack', revName!));
  await assertSameArchive(copy, 'HEAD', 'p/');
});
