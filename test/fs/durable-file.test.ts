// src/fs/durable-file.ts: what is at an output path decides how it is written (docs/OPERATIONS.md,
// "Output paths"); state files are always replaced atomically. Real files, devices, FIFOs and links.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, createReadStream, openSync, readSync } from 'node:fs';
import { chmod, lchown, lstat, mkdir, readFile, readdir, readlink, stat, symlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { isSourcemeshError } from '../../src/errors.ts';
import { openOutput, sweepTemps, writeFileDurable, writeFilesDurable, writeOutputChunks, writeOutputFile } from '../../src/fs/durable-file.ts';
import { LIMITS } from '../../src/limits.ts';
import { ROOT, tempDir } from '../helpers/run.ts';

const isRoot = process.geteuid?.() === 0;

/** A character device to write to: a /dev/null of our own as root (mknod), else the real one. */
function nullDevice(dir: string): string {
  if (!isRoot) return '/dev/null';
  const p = path.join(dir, 'null');
  execFileSync('mknod', ['-m', '666', p, 'c', '1', '3']);
  return p;
}

/** Read a FIFO to its end (started before the writer opens it). */
function readFifo(p: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    createReadStream(p).on('data', (d) => parts.push(d as Buffer)).on('end', () => resolve(Buffer.concat(parts))).on('error', reject);
  });
}

async function* chunksOf(...parts: string[]): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield Buffer.from(p);
}

/** Names in DIR other than those given: temporary litter. */
async function litter(dir: string, ...expected: string[]): Promise<string[]> {
  return (await readdir(dir)).filter((n) => !expected.includes(n));
}

test('a new path is created whole, with nothing else left in its directory', async (t) => {
  const dir = await tempDir(t);
  const out = path.join(dir, 'new.txt');
  const written = await writeOutputChunks(out, chunksOf('hello ', 'world\n'));
  assert.equal(await readFile(out, 'utf8'), 'hello world\n');
  assert.equal(written.bytes, 12);
  assert.equal(written.sha256, 'a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447');
  assert.deepEqual(await litter(dir, 'new.txt'), []);
});

test('chunks are written in batches and each is told written once its bytes are in the file: the producer may fill it again', async (t) => {
  const dir = await tempDir(t);
  const out = path.join(dir, 'batched.bin');
  // More chunks than one writev(2) takes (256) and more bytes than one batch (1 MiB).
  const chunks = Array.from({ length: 300 }, (_, i) => Buffer.alloc(7 * 1024 + i, i & 0xff));
  const expected = Buffer.concat(chunks);
  const told: Uint8Array[] = [];
  async function* produce(): AsyncGenerator<Uint8Array> {
    yield* chunks;
  }
  const written = await writeOutputChunks(out, produce(), {
    written: (chunk) => {
      told.push(chunk);
      chunk.fill(0xee); // what a producer reusing its buffer does: the file must not see it
    },
  });
  assert.equal(written.bytes, expected.length);
  assert.ok((await readFile(out)).equals(expected), 'the file holds the bytes as produced');
  assert.equal(told.length, chunks.length);
  told.forEach((c, i) => assert.equal(c, chunks[i], `chunk ${i} told once, in order`));
});

test('a regular file is replaced atomically: a reader holding it sees the old bytes, permissions never widen', async (t) => {
  const dir = await tempDir(t);
  const out = path.join(dir, 'old.txt');
  await writeFile(out, 'old bytes\n');
  await chmod(out, 0o600);
  const before = await stat(out);
  const fd = openSync(out, 'r');
  t.after(() => closeSync(fd));
  await writeOutputFile(out, 'new bytes, longer than before\n');
  const buf = Buffer.alloc(64);
  assert.equal(buf.subarray(0, readSync(fd, buf, 0, 64, 0)).toString(), 'old bytes\n', 'the old file is untouched');
  assert.equal(await readFile(out, 'utf8'), 'new bytes, longer than before\n');
  const after = await stat(out);
  assert.notEqual(after.ino, before.ino, 'a new file took the name (rename), the old one was not rewritten');
  assert.equal(after.mode & 0o777, 0o600, 'a private file stays private');
  assert.deepEqual(await litter(dir, 'old.txt'), []);
});

test('a character device is written through and stays a device', async (t) => {
  const dir = await tempDir(t);
  const dev = nullDevice(dir);
  const before = await lstat(dev);
  const out = await openOutput(dev);
  assert.equal(out.through, true);
  await out.write(Buffer.from('discarded'));
  await out.commit();
  await writeOutputChunks(dev, chunksOf('a', 'b'));
  const after = await lstat(dev);
  assert.ok(after.isCharacterDevice(), `${dev} is still a character device`);
  assert.equal(after.rdev, before.rdev);
  assert.deepEqual(await litter(dir, 'null'), []);
});

test('a FIFO is written through: its reader gets the bytes', async (t) => {
  const dir = await tempDir(t);
  const fifo = path.join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const big = Buffer.alloc(3 << 20, 7); // more than a pipe holds: the writer must wait for the reader
  const got = readFifo(fifo);
  const written = await writeOutputChunks(fifo, (async function* () { yield big; yield Buffer.from('end'); })());
  assert.deepEqual(await got, Buffer.concat([big, Buffer.from('end')]));
  assert.equal(written.bytes, big.length + 3);
  assert.ok((await lstat(fifo)).isFIFO());
});

test('a symbolic link is followed: its target is replaced atomically (or created), the link stays', async (t) => {
  const dir = await tempDir(t);
  await mkdir(path.join(dir, 'real'));
  await mkdir(path.join(dir, 'links'));
  await writeFile(path.join(dir, 'real/target'), 'old');
  const link = path.join(dir, 'links/out');
  await symlink('../real/target', link);
  await writeOutputFile(link, 'new');
  assert.equal(await readlink(link), '../real/target');
  assert.equal(await readFile(path.join(dir, 'real/target'), 'utf8'), 'new');
  // a chain of links, and a dangling one: its target is created
  const dangling = path.join(dir, 'links/dangling');
  await symlink(path.join(dir, 'links/hop'), dangling);
  await symlink('../real/fresh', path.join(dir, 'links/hop'));
  await writeOutputFile(dangling, 'fresh');
  assert.equal(await readFile(path.join(dir, 'real/fresh'), 'utf8'), 'fresh');
  assert.ok((await lstat(dangling)).isSymbolicLink());
  assert.deepEqual(await litter(path.join(dir, 'real'), 'target', 'fresh'), []);
  // a link to a device: written through
  const dev = nullDevice(dir);
  const toDev = path.join(dir, 'links/dev');
  await symlink(dev, toDev);
  const opened = await openOutput(toDev);
  assert.equal(opened.through, true);
  await opened.abort();
  await writeOutputFile(toDev, 'x');
  assert.ok((await lstat(dev)).isCharacterDevice());
});

test('a link through a directory link resolves as the kernel does, not lexically', async (t) => {
  const dir = await tempDir(t);
  await mkdir(path.join(dir, 'a/deep'), { recursive: true });
  await mkdir(path.join(dir, 'b'));
  await symlink(path.join(dir, 'a/deep'), path.join(dir, 'b/sub'));
  // b/sub/../x is a/x for the kernel, b/x lexically
  await symlink('sub/../x', path.join(dir, 'b/out'));
  await writeOutputFile(path.join(dir, 'b/out'), 'here');
  assert.equal(await readFile(path.join(dir, 'a/x'), 'utf8'), 'here');
  assert.equal(await stat(path.join(dir, 'b/x')).catch(() => 'absent'), 'absent');
});

test('a path through /proc/self/fd is written through to the open file, truncated', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'opened');
  await writeFile(file, 'previous contents, long');
  const fd = openSync(file, 'r+');
  t.after(() => closeSync(fd));
  const ino = (await stat(file)).ino;
  await writeOutputFile(`/proc/self/fd/${fd}`, 'via proc');
  assert.equal(await readFile(file, 'utf8'), 'via proc');
  assert.equal((await stat(file)).ino, ino, 'the same file, not replaced');
});

test('refusals: a directory, a socket, a symlink loop, each one line naming the path, nothing created', async (t) => {
  const dir = await tempDir(t);
  const sub = path.join(dir, 'sub');
  await mkdir(sub);
  const refused = async (p: string, code: string, pattern: RegExp) => {
    await assert.rejects(writeOutputFile(p, 'x'), (err: unknown) => {
      assert.ok(isSourcemeshError(err), String(err));
      assert.equal(err.code, code);
      assert.ok(err.message.startsWith(p), err.message);
      assert.match(err.message, pattern);
      assert.doesNotMatch(err.message, /\n/);
      return true;
    });
  };
  await refused(sub, 'E_INPUT', /is a directory/);
  await symlink('sub', path.join(dir, 'to-sub'));
  await refused(path.join(dir, 'to-sub'), 'E_INPUT', /is a directory/);
  const sock = path.join(dir, 's.sock');
  const server = net.createServer().listen(sock);
  await new Promise((resolve) => server.once('listening', resolve));
  t.after(() => server.close());
  await refused(sock, 'E_INPUT', /socket/);
  await symlink('loop-b', path.join(dir, 'loop-a'));
  await symlink('loop-a', path.join(dir, 'loop-b'));
  await refused(path.join(dir, 'loop-a'), 'E_INPUT', new RegExp(`more than ${LIMITS.outputSymlinkHops} symbolic links`));
  await refused(path.join(dir, 'missing/out'), 'E_IO', /ENOENT/);
  assert.deepEqual((await readdir(dir)).sort(), ['loop-a', 'loop-b', 's.sock', 'sub', 'to-sub']);
  assert.deepEqual(await readdir(sub), []);
});

test('exclusive and regularOnly (keys): an existing name or a FIFO is refused before anything is opened', async (t) => {
  const dir = await tempDir(t);
  const key = path.join(dir, 'key');
  await writeOutputFile(key, 'secret', { exclusive: true, mode: 0o600 });
  assert.equal((await stat(key)).mode & 0o777, 0o600);
  await assert.rejects(writeOutputFile(key, 'other', { exclusive: true }), (err: unknown) => isSourcemeshError(err, 'E_INPUT') && /exists/.test(err.message));
  assert.equal(await readFile(key, 'utf8'), 'secret');
  const fifo = path.join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  // No reader: opening the FIFO would block forever, so the refusal must come first.
  await assert.rejects(writeOutputFile(fifo, 'k', { regularOnly: true }), (err: unknown) => isSourcemeshError(err, 'E_INPUT') && /FIFO/.test(err.message));
  assert.deepEqual(await litter(dir, 'key', 'fifo'), []);
});

test('a producer that fails midway leaves nothing under the name and no temporary file; an old file is kept', async (t) => {
  const dir = await tempDir(t);
  const out = path.join(dir, 'out');
  async function* failing() {
    yield Buffer.alloc(3 << 20, 1);
    throw new Error('producer broke');
  }
  await assert.rejects(writeOutputChunks(out, failing()), /producer broke/);
  assert.deepEqual(await readdir(dir), []);
  await writeFile(out, 'kept');
  await assert.rejects(writeOutputChunks(out, failing()), /producer broke/);
  assert.equal(await readFile(out, 'utf8'), 'kept');
  assert.deepEqual(await readdir(dir), ['out']);
});

test('temporary files of dead processes are swept by the next write of the same name; a live one is kept', async (t) => {
  const dir = await tempDir(t);
  const out = path.join(dir, 'out.tar');
  const dead = spawn(process.execPath, ['-e', '0']);
  const deadPid = await new Promise<number>((resolve) => dead.on('exit', () => resolve(dead.pid!)));
  const live = spawn('sleep', ['60'], { stdio: 'ignore' });
  t.after(() => live.kill('SIGKILL'));
  const stale = `.out.tar.${deadPid}-0123abcd.tmp`;
  // Our own PID, but not a temporary this process is writing: an earlier run's (every run is PID 1 in a container).
  const earlierRun = `.out.tar.${process.pid}-89abcdef.tmp`;
  const alive = `.out.tar.${live.pid}-89abcdef.tmp`;
  const other = `.other.${deadPid}-0123abcd.tmp`;
  for (const n of [stale, earlierRun, alive, other]) await writeFile(path.join(dir, n), 'litter');
  // One this process is writing right now is kept, and completes after the other write swept.
  const writing = await openOutput(out);
  t.after(() => writing.abort());
  await writing.write(Buffer.from('first'));
  const ours = (await readdir(dir)).filter((n) => n.endsWith('.tmp') && ![stale, earlierRun, alive, other].includes(n));
  assert.equal(ours.length, 1);
  await writeOutputFile(out, 'x');
  assert.deepEqual((await readdir(dir)).sort(), [alive, other, ours[0], 'out.tar'].sort());
  await writing.commit();
  assert.equal(await readFile(out, 'utf8'), 'first');
  assert.deepEqual((await readdir(dir)).sort(), [alive, other, 'out.tar'].sort());
});

test('a name near NAME_MAX still gets a temporary name that fits', async (t) => {
  const dir = await tempDir(t);
  const out = path.join(dir, 'é'.repeat(127)); // 254 bytes
  await writeOutputFile(out, 'long');
  assert.equal(await readFile(out, 'utf8'), 'long');
  assert.deepEqual(await litter(dir, path.basename(out)), []);
});

test('state files: a link at the name is replaced, not followed; exclusive says false when it exists', async (t) => {
  const dir = await tempDir(t);
  await writeFile(path.join(dir, 'elsewhere'), 'not ours');
  const state = path.join(dir, 'state');
  await symlink('elsewhere', state);
  assert.equal(await writeFileDurable(state, 'ours'), true);
  assert.ok((await lstat(state)).isFile());
  assert.equal(await readFile(path.join(dir, 'elsewhere'), 'utf8'), 'not ours');
  assert.equal(await writeFileDurable(state, 'again', { exclusive: true }), false);
  assert.equal(await readFile(state, 'utf8'), 'ours');
  assert.deepEqual(await litter(dir, 'state', 'elsewhere'), []);
});

test('a batch of state files: each whole under its name, new directories made, temporaries in tempDir and none left', async (t) => {
  const dir = await tempDir(t);
  const staging = path.join(dir, 'staging');
  await mkdir(staging);
  await writeFile(path.join(dir, 'old'), 'old bytes');
  await symlink('old', path.join(dir, 'link'));
  const files = [
    { path: path.join(dir, 'old'), data: Buffer.from('new bytes') },
    { path: path.join(dir, 'link'), data: Buffer.from('replaced, not followed') },
    { path: path.join(dir, 'tile/0/x001/000'), data: Buffer.alloc(8192, 1) },
    { path: path.join(dir, 'tile/1/000'), data: Buffer.alloc(32, 2) },
  ];
  const synced = await writeFilesDurable(files, { tempDir: staging });
  for (const f of files) assert.deepEqual(await readFile(f.path), f.data);
  assert.ok((await lstat(path.join(dir, 'link'))).isFile());
  assert.deepEqual(await readdir(staging), []);
  assert.deepEqual(await litter(dir, 'old', 'link', 'tile', 'staging'), []);
  // Every directory a file landed in, once, and the parents of those it made (their entries changed).
  assert.deepEqual([...synced].sort(), [dir, path.join(dir, 'tile'), path.join(dir, 'tile/0'), path.join(dir, 'tile/0/x001'), path.join(dir, 'tile/1')].sort());
  // Known directories are not made again, nor synced unless a file landed in them.
  const again = await writeFilesDurable([{ path: path.join(dir, 'tile/1/001'), data: Buffer.from('x') }], { tempDir: staging, knownDirs: synced });
  assert.deepEqual([...again], [path.join(dir, 'tile/1')]);
  // Without tempDir, the temporaries are made beside each file.
  await writeFilesDurable([{ path: path.join(dir, 'beside'), data: Buffer.from('b') }]);
  assert.deepEqual(await litter(dir, 'old', 'link', 'tile', 'staging', 'beside'), []);
});

test('a batch with a file that cannot be written: one line naming it, no temporary left, the others whole or absent', async (t) => {
  const dir = await tempDir(t);
  const staging = path.join(dir, 'staging');
  await mkdir(staging);
  await writeFile(path.join(dir, 'file'), 'a file, not a directory');
  const files = [
    { path: path.join(dir, 'a'), data: Buffer.alloc(100_000, 3) },
    { path: path.join(dir, 'file/b'), data: Buffer.from('b') },
  ];
  await assert.rejects(writeFilesDurable(files, { tempDir: staging }), (err: unknown) => {
    assert.ok(isSourcemeshError(err), String(err));
    assert.match(err.message, /file\/b: cannot write/);
    assert.doesNotMatch(err.message, /\n/);
    return true;
  });
  assert.deepEqual(await readdir(staging), []);
  const a = await readFile(path.join(dir, 'a')).catch(() => undefined);
  assert.ok(a === undefined || a.equals(files[0]!.data));
});

test('sweepTemps: a batch\'s temporaries left by a dead process or an earlier run with our PID go; a live writer\'s stay', async (t) => {
  const dir = await tempDir(t);
  const dead = spawn(process.execPath, ['-e', '0']);
  const deadPid = await new Promise<number>((resolve) => dead.on('exit', () => resolve(dead.pid!)));
  const live = spawn('sleep', ['60'], { stdio: 'ignore' });
  t.after(() => live.kill('SIGKILL'));
  const names = {
    dead: `.000.${deadPid}-0123abcd.tmp`,
    earlierRun: `.checkpoint.${process.pid}-0123abcd.tmp`,
    live: `.001.${live.pid}-0123abcd.tmp`,
    notOurs: 'README',
  };
  for (const n of Object.values(names)) await writeFile(path.join(dir, n), 'litter');
  assert.equal(await sweepTemps(dir), 2);
  assert.deepEqual((await readdir(dir)).sort(), [names.live, names.notOurs].sort());
});

test('signal listeners exist only while an output is being written', async (t) => {
  const dir = await tempDir(t);
  const before = process.listenerCount('SIGINT');
  const out = await openOutput(path.join(dir, 'x'));
  assert.equal(process.listenerCount('SIGINT'), before + 1);
  await out.abort();
  assert.equal(process.listenerCount('SIGINT'), before);
  assert.deepEqual(await readdir(dir), []);
});

test('SIGINT during a write: the temporary file is removed, the writer fails, nothing under the name', async (t) => {
  const dir = await tempDir(t);
  const out = path.join(dir, 'out');
  // A child that writes a never-ending stream; the signal comes once its temporary file holds bytes.
  const script = `
    import { writeOutputChunks } from ${JSON.stringify(path.join(ROOT, 'src/fs/durable-file.ts'))};
    async function* endless() { for (;;) { yield Buffer.alloc(1 << 20); await new Promise((r) => setTimeout(r, 5)); } }
    try { await writeOutputChunks(${JSON.stringify(out)}, endless()); } catch (err) { console.error(err.code + ' ' + err.message); process.exit(7); }`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  for (let i = 0; i < 3000; i++) {
    const temps = (await readdir(dir)).filter((n) => n.endsWith('.tmp'));
    if (temps.length && (await stat(path.join(dir, temps[0]!)).catch(() => ({ size: 0 }))).size >= 1 << 20) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal((await readdir(dir)).length, 1, 'the write is under way');
  child.kill('SIGINT');
  assert.equal(await exited, 7, stderr);
  assert.match(stderr, /E_IO .*interrupted by SIGINT; nothing was written under this name/);
  assert.deepEqual(await readdir(dir), []);
});

test('standard output as a slow pipe: many waits for the reader add no listeners that stay, no MaxListenersExceededWarning', async () => {
  // A child writes 128 MiB to its stdout, a pipe this test reads in small steps: the writer waits for
  // 'drain' about 20 times. Every listener added to a socket is counted as it is added.
  const script = `
    import net from 'node:net';
    import { createHash } from 'node:crypto';
    import { writeChunksToStdout } from ${JSON.stringify(path.join(ROOT, 'src/fs/durable-file.ts'))};
    const seen = { error: 0, drain: 0, waits: 0 };
    for (const m of ['on', 'once', 'addListener', 'prependListener', 'prependOnceListener']) {
      const orig = net.Socket.prototype[m];
      net.Socket.prototype[m] = function (name, fn) {
        const r = orig.call(this, name, fn);
        if (m === 'once' && name === 'drain') seen.waits++;
        seen.error = Math.max(seen.error, this.listenerCount('error'));
        seen.drain = Math.max(seen.drain, this.listenerCount('drain'));
        return r;
      };
    }
    async function* chunks() { for (let i = 0; i < 512; i++) yield Buffer.alloc(256 << 10, i); }
    const written = await writeChunksToStdout(chunks());
    console.error(JSON.stringify({ ...seen, ...written }));`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const hash = createHash('sha256');
  let bytes = 0;
  child.stdout.on('data', (d: Buffer) => {
    hash.update(d);
    bytes += d.length;
    // A slow reader: one pipe's worth, then a millisecond. (A turn of the event loop alone was not slow
    // enough on a loaded 2-core machine: the writer then waited only 10-11 times.)
    child.stdout.pause();
    setTimeout(() => child.stdout.resume(), 1);
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const [code] = await once(child, 'close');
  clearTimeout(timer);
  assert.equal(code, 0, stderr);
  assert.doesNotMatch(stderr, /MaxListenersExceededWarning/);
  const seen = JSON.parse(stderr.trim().split('\n').at(-1)!);
  assert.ok(seen.waits >= 12, `the writer waited for the reader ${seen.waits} times`);
  assert.ok(seen.error <= 3 && seen.drain <= 2, `listeners at most: ${seen.error} 'error', ${seen.drain} 'drain'`);
  assert.equal(bytes, 128 << 20);
  assert.deepEqual({ sha256: seen.sha256, bytes: seen.bytes }, { sha256: hash.digest('hex'), bytes });
});

test('protected_symlinks: a link of another user in a sticky world-writable directory is not followed', { skip: !isRoot && 'lchown needs root' }, async (t) => {
  const dir = await tempDir(t);
  const sticky = path.join(dir, 'tmp');
  await mkdir(sticky);
  await chmod(sticky, 0o1777);
  await writeFile(path.join(dir, 'passwd'), 'precious');
  const planted = path.join(sticky, 'out.tar');
  await symlink(path.join(dir, 'passwd'), planted);
  await lchown(planted, 4242, 4242);
  await assert.rejects(writeOutputFile(planted, 'clobbered'), (err: unknown) => isSourcemeshError(err, 'E_PERMISSION') && /refusing to follow/.test(err.message));
  assert.equal(await readFile(path.join(dir, 'passwd'), 'utf8'), 'precious');
  // The same link in a directory that is not sticky is followed; so is our own link in the sticky one.
  await chmod(sticky, 0o777);
  await writeOutputFile(planted, 'not sticky');
  assert.equal(await readFile(path.join(dir, 'passwd'), 'utf8'), 'not sticky');
  await chmod(sticky, 0o1777);
  await lchown(planted, 0, 0);
  await writeOutputFile(planted, 'ours');
  assert.equal(await readFile(path.join(dir, 'passwd'), 'utf8'), 'ours');
});
