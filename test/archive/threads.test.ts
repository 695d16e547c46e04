// The archive threads (src/archive/threads.ts) that make rebuild's and sync's snapshots: two entries run
// on two threads at once, the entries of one repository open it once per thread (again after a new pack),
// and the bytes equal the real `git archive | gzip -n` whatever thread made them.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import { test } from 'node:test';
import { ArchiveThreads } from '../../src/archive/threads.ts';
import { commitFiles, gitArchiveGzip, gitIn, makeRepo } from '../helpers/git.ts';
import { tempDir } from '../helpers/run.ts';

const gz = (level = 6) => ({ repo: 'unused', ref: 'unused', prefix: 'p/', compression: 'gzip-n' as const, level });

async function collect(gen: AsyncGenerator<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of gen) parts.push(c);
  return Buffer.concat(parts);
}

function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms); })])
    .finally(() => clearTimeout(timer));
}

test('two snapshots run at once on two threads; bytes equal git archive | gzip -n', async (t) => {
  const dir = await tempDir(t);
  const a = path.join(dir, 'a'); const b = path.join(dir, 'b');
  // Incompressible blobs: several 512 KiB chunks each, more than a thread may send ahead of its reader.
  const ca = await makeRepo(a, { 'big.bin': randomBytes(6 << 20), 'README': 'a\n' });
  const cb = await makeRepo(b, { 'big.bin': randomBytes(6 << 20), 'README': 'b\n' });
  const pool = new ArchiveThreads(2);
  t.after(() => pool.close());
  const ga = pool.stream(a, ca, gz());
  const gb = pool.stream(b, cb, gz());
  // A's first chunk, then B's while A is unfinished and unread: only a second thread can make it.
  const firstA = await within(60_000, 'first chunk of a', ga.next());
  const firstB = await within(60_000, 'first chunk of b while a is held', gb.next());
  assert.ok(!firstA.done && !firstB.done);
  const [restA, restB] = await Promise.all([collect(ga), collect(gb)]);
  assert.deepEqual(Buffer.concat([firstA.value!, restA]), gitArchiveGzip(a, 'p/', ca));
  assert.deepEqual(Buffer.concat([firstB.value!, restB]), gitArchiveGzip(b, 'p/', cb));
  assert.equal(pool.places.length, 2);
  assert.notEqual(pool.places[0]!.threadId, pool.places[1]!.threadId, 'two threads');
});

test('entries of one repository open it once per thread, again after a new pack; hash mode agrees', async (t) => {
  const dir = await tempDir(t);
  const repo = path.join(dir, 'r');
  const first = await makeRepo(repo, { 'README': 'one\n', 'src/x.c': 'int x;\n' });
  const second = await commitFiles(repo, { 'src/y.c': 'int y;\n' }, 'second');
  gitIn(repo, ['repack', '-adq']);
  const pool = new ArchiveThreads(1);
  t.after(() => pool.close());
  assert.deepEqual(await collect(pool.stream(repo, first, gz(9))), gitArchiveGzip(repo, 'p/', first, 9));
  assert.deepEqual(await collect(pool.stream(repo, second, gz())), gitArchiveGzip(repo, 'p/', second));
  const want = gitArchiveGzip(repo, 'p/', second);
  assert.deepEqual(await pool.hash(repo, second, gz()), { sha256: createHash('sha256').update(want).digest('hex'), bytes: want.length });
  assert.deepEqual(pool.places.map((p) => p.opened), [true, false, false], 'opened once for three entries');
  // A fetch between two entries: the new commit's objects are in a new pack, so the repository is read again.
  const third = await commitFiles(repo, { 'src/z.c': 'int z;\n' }, 'third');
  gitIn(repo, ['repack', '-dq']);
  assert.deepEqual(await collect(pool.stream(repo, third, gz())), gitArchiveGzip(repo, 'p/', third));
  assert.equal(pool.places.at(-1)!.opened, true);
});

test('an abandoned stream frees its thread; an unknown commit is one error; the pool keeps working', async (t) => {
  const dir = await tempDir(t);
  const repo = path.join(dir, 'r');
  const commit = await makeRepo(repo, { 'big.bin': randomBytes(6 << 20) });
  const pool = new ArchiveThreads(1);
  t.after(() => pool.close());
  const g = pool.stream(repo, commit, gz());
  assert.ok(!(await g.next()).done);
  await g.return(undefined);
  await assert.rejects(collect(pool.stream(repo, 'f'.repeat(40), gz())), (e: any) => /^E_/.test(e.code) && e.code !== 'E_INTERNAL');
  assert.deepEqual(await within(60_000, 'after abandon', collect(pool.stream(repo, commit, gz()))), gitArchiveGzip(repo, 'p/', commit));
  const ac = new AbortController();
  const aborted = pool.stream(repo, commit, gz(), ac.signal);
  assert.ok(!(await aborted.next()).done);
  ac.abort(new Error('stop'));
  await assert.rejects(collect(aborted), /stop/);
  assert.deepEqual(await within(60_000, 'after abort', collect(pool.stream(repo, commit, gz()))), gitArchiveGzip(repo, 'p/', commit));
});
