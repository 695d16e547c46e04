// Loose objects as the archiver reads them (issue 14): each object file is opened once, and found by that
// open: no stat before it, no second open for a large object. Checked on the system calls themselves
// (strace), the bytes against git archive.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { reusedHandleStats, useReusedHandle } from '../../src/archive/git/inflate.ts';
import { ObjectDatabase } from '../../src/archive/git/odb.ts';
import { parseOidHex } from '../../src/archive/git/object-id.ts';
import { LIMITS } from '../../src/limits.ts';
import { gitIn, makeRepo } from '../helpers/git.ts';
import { CLI, tempDir } from '../helpers/run.ts';

test('loose objects: every object file opened once, never stat-ed, and the archive is git archive\'s', async (t) => {
  const dir = await tempDir(t);
  const repo = path.join(dir, 'repo');
  const files: Record<string, string | Buffer> = {};
  for (let i = 0; i < 40; i++) files[`src/f${i}.c`] = `int f${i}(void) { return ${i}; }\n`.repeat(10 + i);
  // Over 64 KiB even compressed: read in two steps, header then whole (it took a second open before).
  files['data/noise.bin'] = Buffer.from(Array.from({ length: 200_000 }, (_, j) => ((j * 2654435761) >>> 11) & 0xff));
  await makeRepo(repo, files);
  const loose = gitIn(repo, ['count-objects', '-v']).toString();
  assert.match(loose, /^count: (4[4-9]|[5-9]\d)$/m, 'the objects are loose');
  const out = path.join(dir, 'out.tar');
  const log = path.join(dir, 'strace.log');
  execFileSync('strace', ['-f', '-qq', '-e', 'trace=open,openat,stat,lstat,statx,newfstatat,access,faccessat,faccessat2', '-o', log, process.execPath, CLI, 'archive', repo, 'HEAD', '-o', out], { stdio: 'ignore' });
  assert.deepEqual(await readFile(out), gitIn(repo, ['archive', '--format=tar', 'HEAD']));
  const opens = new Map<string, number>();
  const stats: string[] = [];
  for (const line of (await readFile(log, 'utf8')).split('\n')) {
    const m = /(\w+)\((?:AT_FDCWD, )?"([^"]*\/objects\/[0-9a-f]{2}\/[0-9a-f]{38})"/.exec(line);
    if (!m) continue;
    if (m[1] === 'open' || m[1] === 'openat') opens.set(m[2]!, (opens.get(m[2]!) ?? 0) + 1);
    else stats.push(line);
  }
  // The commit, its trees (src, data and the root) and every blob.
  assert.equal(opens.size, 40 + 1 + 3 + 1, [...opens.keys()].join('\n'));
  assert.deepEqual([...opens].filter(([, n]) => n !== 1), [], 'each object file opened once');
  assert.deepEqual(stats, [], 'no object file looked up by a stat');
});

test('loose objects are inflated on the one reused zlib handle, header and content, and read as git cat-file does', async (t) => {
  const dir = await tempDir(t);
  const repo = path.join(dir, 'repo');
  const files: Record<string, string | Buffer> = { empty: '', tiny: 'x', 'exactly-header': 'y'.repeat(9) };
  for (let i = 0; i < 30; i++) files[`f${i}.txt`] = `line ${i}\n`.repeat(i * 37);
  // Over 64 KiB compressed: its header comes from the handle, its content later (readLooseWhole).
  files['noise.bin'] = randomBytes(100_000);
  await makeRepo(repo, files);
  const ids = gitIn(repo, ['rev-list', '--objects', '--all']).toString().trim().split('\n').map((l) => l.slice(0, 40));
  assert.equal(ids.length, 35); // 33 distinct blobs (f0 is empty too), a tree, a commit
  for (const reused of [true, false]) {
    useReusedHandle(reused);
    t.after(() => useReusedHandle(null));
    const odb = new ObjectDatabase(path.join(repo, '.git', 'objects'), LIMITS);
    const before = reusedHandleStats.streams;
    for (const id of ids) {
      const obj = odb.read(parseOidHex(id)!);
      assert.equal(obj.type, gitIn(repo, ['cat-file', '-t', id]).toString().trim(), id);
      assert.deepEqual(obj.data, gitIn(repo, ['cat-file', obj.type, id]), id);
    }
    odb.close();
    // Every object on the reused handle (the large one twice: header, then content); none without it.
    assert.equal(reusedHandleStats.streams - before, reused ? ids.length + 1 : 0);
  }
});
