// PID-named temporaries and locks (src/fs/files.ts isLiveOwner): one named with our own PID that this
// process did not register was left by an earlier run with the same PID (in a container every run may be
// PID 1) and is swept like a dead process's; one this process is writing, or one of another live
// process, is kept. Every sweep is checked: the distfiles directory, the log's staging directory, the store.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { disown, isLiveOwner, own } from '../../src/fs/files.ts';
import { sweepExportTemps } from '../../src/store/distdir.ts';
import { Store } from '../../src/store/store.ts';
import { LogStorage, STATE_DIR } from '../../src/trust/log/storage.ts';
import { formatVerifierKey, KEY_TYPE_ED25519, signerKeyFromSeed } from '../../src/trust/note.ts';
import { tempDir } from '../helpers/run.ts';

/** A live process other than this one, killed after the test. */
function liveOther(t: { after(fn: () => unknown): void }): ChildProcess {
  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  t.after(() => child.kill('SIGKILL'));
  return child;
}

test('isLiveOwner: our own PID only for what this process registered; another PID by whether it lives', (t) => {
  const other = liveOther(t);
  assert.equal(isLiveOwner('/x/.a.1-00000000.tmp', process.pid), false);
  own('/x/.a.1-00000000.tmp');
  assert.equal(isLiveOwner('/x/../x/.a.1-00000000.tmp', process.pid), true, 'by absolute path');
  disown('/x/.a.1-00000000.tmp');
  assert.equal(isLiveOwner('/x/.a.1-00000000.tmp', process.pid), false);
  assert.equal(isLiveOwner('/x/y', other.pid!), true);
  for (const pid of [0, -1, NaN, 2 ** 53]) assert.equal(isLiveOwner('/x/y', pid), false, String(pid));
});

test('distfiles directory: an export temporary with our PID left by an earlier run is swept; ours and a live process\'s are kept', async (t) => {
  const dir = await tempDir(t);
  const other = liveOther(t);
  const left = `.a.tar.gz.${process.pid}.sourcemesh-tmp`;
  const writing = `.b.tar.gz.${process.pid}.sourcemesh-tmp`;
  const theirs = `.c.tar.gz.${other.pid}.sourcemesh-tmp`;
  for (const n of [left, writing, theirs]) await writeFile(path.join(dir, n), 'partial');
  own(path.join(dir, writing));
  t.after(() => disown(path.join(dir, writing)));
  assert.equal(await sweepExportTemps(dir), 1);
  assert.deepEqual((await readdir(dir)).sort(), [writing, theirs].sort());
});

test('log staging: a temporary with our PID left by an earlier run is swept when the log opens; ours and a live process\'s are kept', async (t) => {
  const dir = await tempDir(t);
  const other = liveOther(t);
  const staging = path.join(dir, STATE_DIR, 'tmp');
  await mkdir(staging, { recursive: true });
  // fs/durable-file.ts names (.NAME.PID-NONCE.tmp), and PID-COUNTER of versions before it.
  const left = [`.000.${process.pid}-0123abcd.tmp`, `${process.pid}-1`];
  const writing = [`.001.${process.pid}-89abcdef.tmp`, `${process.pid}-2`];
  const theirs = [`.000.${other.pid}-0123abcd.tmp`, `${other.pid}-1`];
  for (const n of [...left, ...writing, ...theirs]) await writeFile(path.join(staging, n), 'tile');
  for (const n of writing) own(path.join(staging, n));
  t.after(() => writing.forEach((n) => disown(path.join(staging, n))));
  const vkey = formatVerifierKey(signerKeyFromSeed('owners.test', KEY_TYPE_ED25519, Buffer.alloc(32, 7)));
  const storage = await LogStorage.open(dir, vkey);
  storage.close();
  assert.deepEqual((await readdir(staging)).sort(), [...writing, ...theirs].sort());
});

test('store gc: a durable temporary and a name\'s temporary link with our PID left by an earlier run are swept; ours are kept', async (t) => {
  const dir = await tempDir(t);
  const store = await Store.open(dir);
  const other = liveOther(t);
  const tmp = path.join(dir, 'tmp');
  const names = path.join(dir, 'names');
  const left = [path.join(tmp, `.state.${process.pid}-0123abcd.tmp`), path.join(names, `.a.tar.${process.pid}.tmp`)];
  const writing = [path.join(tmp, `.state.${process.pid}-89abcdef.tmp`), path.join(names, `.b.tar.${process.pid}.tmp`)];
  const theirs = [path.join(tmp, `.state.${other.pid}-0123abcd.tmp`), path.join(names, `.c.tar.${other.pid}.tmp`)];
  for (const group of [left, writing, theirs]) {
    await writeFile(group[0]!, 'state');
    await symlink('../objects/sha256/00/00', group[1]!);
  }
  for (const p of writing) own(p);
  t.after(() => writing.forEach(disown));
  await store.gc();
  assert.deepEqual((await readdir(tmp)).sort(), [writing[0], theirs[0]].map((p) => path.basename(p!)).sort());
  assert.deepEqual((await readdir(names)).sort(), [writing[1], theirs[1]].map((p) => path.basename(p!)).sort());
});
