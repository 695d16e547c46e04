// A run that dies abruptly (kill -9, an uncaught exception, a container restart) must leave nothing that
// blocks the next run: its lock is broken, its partial resumed, tmp/ and locks/ end up empty. A PID
// alone does not say who held a lock: in a container every run may get the same PID, and any PID is
// reused in time.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, readdir, stat, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Store } from '../../src/store/store.ts';
import { bytes, distfile, sha256, writeManifest } from '../helpers/distfiles.ts';
import { startOrigin } from '../helpers/origin.ts';
import { CLI, ROOT, runCli, tempDir } from '../helpers/run.ts';

const HEX = 'ab'.repeat(32);
/** A wait given up by its AbortSignal (the lock was not taken). */
const aborted = (e: unknown) => ['AbortError', 'TimeoutError'].includes((e as Error).name);

/** Poll (bounded) until `check` holds; order by what happened, not by how long it usually takes. */
async function until(check: () => Promise<boolean> | boolean, what: string, tries = 600): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return;
    await sleep(50);
  }
  assert.fail(`timed out waiting for ${what}`);
}

async function partialBytes(store: string): Promise<number> {
  let n = 0;
  for (const f of await readdir(path.join(store, 'tmp')).catch(() => [] as string[])) {
    if (f.endsWith('.part')) n += (await stat(path.join(store, 'tmp', f))).size;
  }
  return n;
}

test('a fetch killed while it holds a lock: the next run takes it at once, resumes, leaves tmp/ and locks/ empty', async (t) => {
  const dir = await tempDir(t);
  const body = bytes(3_000_000, 5);
  const origin = await startOrigin({ '/big.tar.gz': { body, behaviour: { kind: 'slow', chunk: 32_768, delayMs: 5 } } });
  t.after(() => origin.close());
  const manifest = await writeManifest(dir, [distfile('big.tar.gz', body, [`${origin.url}/big.tar.gz`])]);
  const store = path.join(dir, 'store');
  const child = spawn(process.execPath, [CLI, 'fetch', manifest, '-o', path.join(dir, 'out')], { cwd: ROOT, env: { ...process.env, SOURCEMESH_STORE: store, CI: '1' }, stdio: 'ignore' });
  const closed = new Promise((resolve) => child.on('close', resolve));
  t.after(() => child.kill('SIGKILL'));
  // Killed once a good part of the file is on disk: some bytes to resume from, more to come.
  await until(async () => (await partialBytes(store)) > 500_000, 'the partial to grow');
  child.kill('SIGKILL');
  await closed;
  assert.deepEqual(await readdir(path.join(store, 'locks')), [`${sha256(body)}.lock`], 'the dead run left its lock');

  const r = await runCli(['fetch', manifest, '-o', path.join(dir, 'out')], { env: { SOURCEMESH_STORE: store } });
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /waiting/, 'the dead run\'s lock did not make the next one wait');
  assert.deepEqual(await readFile(path.join(dir, 'out', 'big.tar.gz')), body);
  assert.match(origin.log.at(-1)?.range ?? '', /^bytes=[1-9]\d*-$/, 'resumed from the dead run\'s partial');
  assert.deepEqual(await readdir(path.join(store, 'tmp')), []);
  assert.deepEqual(await readdir(path.join(store, 'locks')), []);
});

test('a process that dies of an uncaught exception holding a lock and a partial: the next fetch adopts both', async (t) => {
  const dir = await tempDir(t);
  const body = bytes(400_000, 6);
  const origin = await startOrigin({ '/f.tar.gz': { body } });
  t.after(() => origin.close());
  const manifest = await writeManifest(dir, [distfile('f.tar.gz', body, [`${origin.url}/f.tar.gz`])]);
  const store = path.join(dir, 'store');
  // The child writes the first 100,000 bytes as a download would, then throws from a timer.
  const prefix = path.join(dir, 'prefix');
  await writeFile(prefix, body.subarray(0, 100_000));
  const script = `
    import { appendFile, readFile } from 'node:fs/promises';
    import { Store } from ${JSON.stringify(path.join(ROOT, 'src/store/store.ts'))};
    const store = await Store.open(${JSON.stringify(store)});
    const lock = await store.lock(${JSON.stringify(sha256(body))});
    const partial = await store.beginPartial(${JSON.stringify(sha256(body))});
    await appendFile(partial.path, await readFile(${JSON.stringify(prefix)}));
    setTimeout(() => { throw new Error('crash while holding the lock'); }, 0);
  `;
  const died = await new Promise<number | null>((resolve) => spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, stdio: 'ignore' }).on('close', resolve));
  assert.notEqual(died, 0);
  assert.equal((await readdir(path.join(store, 'locks'))).length, 1);
  assert.equal(await partialBytes(store), 100_000);

  const r = await runCli(['fetch', manifest, '-o', path.join(dir, 'out')], { env: { SOURCEMESH_STORE: store }, timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /waiting/);
  assert.equal(origin.log.at(-1)?.range, 'bytes=100000-');
  assert.deepEqual(await readdir(path.join(store, 'tmp')), []);
  assert.deepEqual(await readdir(path.join(store, 'locks')), []);
});

test('a lock and a partial named with our own PID by an earlier process (a container restart) are taken over', async (t) => {
  const dir = await tempDir(t);
  const store = await Store.open(dir);
  // What a crashed run with this same PID left: in a container, PID 1 (or 7) every time.
  await writeFile(path.join(dir, 'locks', `${HEX}.lock`), `${process.pid} ${os.hostname()}\n`);
  await writeFile(path.join(dir, 'tmp', `${HEX}.${process.pid}-0123abcd.part`), Buffer.alloc(1234, 1));
  const lock = await store.lock(HEX, AbortSignal.timeout(10_000));
  assert.ok(lock, 'the predecessor\'s lock was broken, not waited on');
  const partial = await store.beginPartial(HEX);
  assert.equal(partial.size, 1234, 'the predecessor\'s partial was adopted');
  // Ours now: another lock attempt in this process (a second job) waits for it.
  await assert.rejects(store.lock(HEX, AbortSignal.timeout(400)), aborted);
  await store.discardPartial(partial);
  await lock.release();
  assert.deepEqual(await readdir(path.join(dir, 'locks')), []);
});

test('a lock naming a live process that started after it was written (a reused PID) is stale; the real holder is waited for', async (t) => {
  const dir = await tempDir(t);
  const store = await Store.open(dir);
  const other = spawn('sleep', ['60'], { stdio: 'ignore' });
  t.after(() => other.kill('SIGKILL'));
  await until(() => other.pid !== undefined, 'sleep to start');
  const start = await readFile(`/proc/${other.pid}/stat`, 'latin1').catch(() => undefined);
  if (start === undefined) return t.skip('no /proc: process start times cannot be read here');
  const lockPath = path.join(dir, 'locks', `${HEX}.lock`);
  // Written by the process that really holds it (store.lock in that process writes the same line):
  // waited for.
  const real = await store.lock(HEX);
  const line = await readFile(lockPath, 'utf8');
  await real!.release();
  const token = line.trim().split(' ')[2];
  assert.match(token ?? '', /^\d+@[0-9a-f-]+$/, `the lock says when its holder started: ${line}`);
  const [ticks, boot] = token!.split('@');
  const otherTicks = start.slice(start.lastIndexOf(')') + 2).split(' ')[19];
  await writeFile(lockPath, `${other.pid} ${os.hostname()} ${otherTicks}@${boot}\n`);
  await assert.rejects(store.lock(HEX, AbortSignal.timeout(500)), aborted, 'a live holder is waited for');
  // The same PID, but the lock was written by a process that started at another time: stale.
  await writeFile(lockPath, `${other.pid} ${os.hostname()} ${Number(ticks) + 1 === Number(otherTicks) ? Number(ticks) + 2 : Number(ticks) + 1}@${boot}\n`);
  const taken = await store.lock(HEX, AbortSignal.timeout(10_000));
  assert.ok(taken);
  await taken.release();
});

test('an empty lock file (a writer killed between creating and writing it) is stale once it is old', async (t) => {
  const dir = await tempDir(t);
  const store = await Store.open(dir);
  const lockPath = path.join(dir, 'locks', `${HEX}.lock`);
  await writeFile(lockPath, '');
  await assert.rejects(store.lock(HEX, AbortSignal.timeout(400)), aborted, 'a fresh empty lock is being written: waited for');
  const old = new Date(Date.now() - 60_000);
  await utimes(lockPath, old, old);
  const lock = await store.lock(HEX, AbortSignal.timeout(10_000));
  assert.ok(lock);
  await lock.release();
  // gc breaks it as well.
  await writeFile(lockPath, '');
  await utimes(lockPath, old, old);
  await store.gc();
  assert.deepEqual(await readdir(path.join(dir, 'locks')), []);
});
