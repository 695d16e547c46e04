// The pack reader's block cache (src/archive/git/pack.ts, issue 14): whatever the budget, every object reads
// back as git stores it (blocks evicted mid-chain, extents that straddle blocks, extents read exactly), and
// reading a pack in random order reads each block about once when the pack fits the budget, instead of a
// large window per miss.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { rmSync, statSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { ObjectDatabase } from '../../src/archive/git/odb.ts';
import { limitsWith } from '../../src/limits.ts';
import { assertSameArchive, commitAll, git, gitText, initRepo, tempRoot, writeFiles } from './git-fixture.ts';

const root = tempRoot();
after(() => rmSync(root, { recursive: true, force: true }));

/** xorshift32, so the repository is the same on every run. */
function prng(seed: number) {
  let x = seed;
  return (n: number) => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return x % n;
  };
}

const dir = path.join(root, 'history');
const rand = prng(1234);
{
  initRepo(dir);
  const files: Record<string, Buffer> = {};
  for (let i = 0; i < 120; i++) {
    // Sizes across the block size (64 KiB) and past the exact-read threshold (256 KiB).
    const size = i % 20 === 0 ? 300_000 + rand(100_000) : i % 7 === 0 ? 60_000 + rand(20_000) : 200 + rand(8000);
    const b = Buffer.alloc(size);
    for (let k = 0; k < size; k++) b[k] = i % 3 === 0 ? rand(256) : 97 + rand(20);
    files[`d${i % 5}/f${i}.${i % 3 === 0 ? 'bin' : 'txt'}`] = b;
  }
  writeFiles(dir, files);
  commitAll(dir, 'c0');
  git(dir, ['tag', 'first']);
  const names = Object.keys(files);
  for (let c = 1; c <= 30; c++) {
    for (let k = 0; k < 4; k++) {
      const name = names[rand(names.length)]!;
      const b = Buffer.from(files[name]!);
      const at = rand(b.length - 40);
      b.fill(65 + (c % 26), at, at + 40);
      files[name] = b.subarray(0, Math.max(40, b.length - rand(50)));
      writeFiles(dir, { [name]: files[name]! });
    }
    commitAll(dir, `c${c}`);
  }
  git(dir, ['repack', '-adfq', '--window=50', '--depth=50']);
}
const objectsDir = path.join(dir, '.git', 'objects');
const packBytes = readdirSync(path.join(objectsDir, 'pack')).filter((f) => f.endsWith('.pack')).reduce((n, f) => n + statSync(path.join(objectsDir, 'pack', f)).size, 0);
const all = gitText(dir, ['cat-file', '--batch-all-objects', '--batch-check=%(objectname) %(objecttype)']).split('\n').map((l) => l.split(' ') as [string, string]);

function shuffled<T>(xs: T[], seed: number): T[] {
  const r = prng(seed);
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = r(i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

for (const budget of [1, 64 * 1024, 200 * 1024, 16 << 20]) {
  test(`every object reads back as git has it, in random order, with a pack block budget of ${budget} bytes`, () => {
    const odb = new ObjectDatabase(objectsDir, limitsWith({ gitPackCacheBytes: budget, gitDeltaBaseCacheBytes: budget }));
    try {
      for (const [oid, type] of shuffled(all, budget)) {
        const obj = odb.read(Buffer.from(oid, 'hex'));
        assert.equal(obj.type, type);
        const want = execFileSync('git', ['cat-file', type, oid], { cwd: dir, maxBuffer: 1 << 28 });
        assert.ok(obj.data.equals(want), `${oid} differs from git cat-file`);
      }
      const s = odb.packStats();
      // The small budgets must actually have evicted and straddled, or this test proves nothing.
      if (budget <= 64 * 1024) assert.ok(s.blockReads > packBytes / (64 * 1024) + 1, `blocks were re-read under a budget of ${budget}: ${JSON.stringify(s)}`);
      assert.ok(s.exactReads > 0, 'some extents were read exactly');
    } finally {
      odb.close();
    }
  });
}

test('reading every object in random order reads each block of a pack that fits the budget once', () => {
  const odb = new ObjectDatabase(objectsDir, limitsWith({}));
  try {
    for (const [oid] of shuffled(all, 7)) odb.read(Buffer.from(oid, 'hex'));
    const s = odb.packStats();
    // Blocks of 64 KiB: at most the pack's own block count (a 1 MiB window per miss read far more).
    assert.ok(s.blockReads <= Math.ceil(packBytes / (64 * 1024)), `${s.blockReads} block reads for a pack of ${packBytes} bytes`);
    assert.ok(s.blockHits > s.blockReads, JSON.stringify(s));
  } finally {
    odb.close();
  }
});

test('archives of the newest and the first commit are byte-identical to git archive with one-block budgets', async () => {
  const limits = { gitPackCacheBytes: 1, gitDeltaBaseCacheBytes: 1 };
  await assertSameArchive(dir, 'HEAD', 'p/', { limits });
  await assertSameArchive(dir, 'first', 'p/', { limits });
});
