// Issue 11, break 2, continued: the real /dev/null as root, and a large output write cut by kill -9,
// SIGINT and SIGTERM. `cleanse` reads its input from a FIFO that the test feeds, so the signal lands
// while the output is half written: ordered by what is on disk, not by sleeps. Every wait is bounded.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { lstat, open, readFile, readdir, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { bytes } from '../helpers/distfiles.ts';
import { CLI, ROOT, runCli, tempDir } from '../helpers/run.ts';

const isRoot = process.geteuid?.() === 0;

test('archive -o /dev/null as root: /dev/null is still the character device 1,3 afterwards', { skip: !isRoot && 'needs root: only root could replace /dev/null' }, async (t) => {
  const dir = await tempDir(t);
  execFileSync('git', ['init', '-q', '-b', 'main', dir]);
  await writeFile(path.join(dir, 'f'), 'x\n');
  execFileSync('git', ['-C', dir, 'add', 'f']);
  execFileSync('git', ['-C', dir, '-c', 'user.name=t', '-c', 'user.email=t@example.org', 'commit', '-q', '-m', 'm']);
  const before = await lstat('/dev/null');
  assert.ok(before.isCharacterDevice());
  // Should this ever regress, give the machine its /dev/null back before failing.
  t.after(async () => {
    if (!(await lstat('/dev/null')).isCharacterDevice()) {
      await rm('/dev/null', { force: true });
      execFileSync('mknod', ['-m', '666', '/dev/null', 'c', '1', '3']);
    }
  });
  for (const args of [['archive', dir, 'HEAD', '-o', '/dev/null'], ['archive', dir, 'HEAD', '--format', 'tar.gz', '-o', '/dev/null']]) {
    const r = await runCli(args);
    assert.equal(r.code, 0, r.stderr);
    const after = await lstat('/dev/null');
    assert.ok(after.isCharacterDevice(), '/dev/null must stay a character device');
    assert.equal(after.rdev, before.rdev);
    assert.equal(after.mode, before.mode);
  }
});

/** A plain tar (cleanse sniffs it) of one incompressible file, big enough to be written over many batches. */
async function bigTar(dir: string): Promise<Buffer> {
  const src = path.join(dir, 'src');
  execFileSync('mkdir', ['-p', path.join(src, 'pkg')]);
  await writeFile(path.join(src, 'pkg/big.bin'), bytes(24 << 20, 11));
  await writeFile(path.join(src, 'pkg/drop.txt'), 'deleted\n');
  return execFileSync('tar', ['--format=ustar', '--owner=0', '--group=0', '--mtime=@0', '-C', src, '-cf', '-', 'pkg'], { maxBuffer: 1 << 30 });
}

interface Feeding {
  child: ReturnType<typeof spawn>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr: () => string;
  writer: FileHandle;
}

/** Start `cleanse FIFO -o OUT`, feed it the first `part` bytes, and wait until its temporary output holds 1 MiB. */
async function startCleanse(dir: string, tar: Buffer, out: string, part: number): Promise<Feeding> {
  const fifo = path.join(dir, 'in.tar');
  await rm(fifo, { force: true });
  execFileSync('mkfifo', [fifo]);
  const child = spawn(process.execPath, [CLI, 'cleanse', fifo, '--delete', 'pkg/drop.txt', '-o', out], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const killer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  void exited.then(() => clearTimeout(killer));
  const writer = await open(fifo, 'w'); // returns once cleanse has opened its end
  await writer.write(tar.subarray(0, part));
  const outDir = path.dirname(out);
  const prefix = `.${path.basename(out)}.${child.pid}-`;
  for (let i = 0; ; i++) {
    const temp = (await readdir(outDir)).find((n) => n.startsWith(prefix) && n.endsWith('.tmp'));
    if (temp && (await stat(path.join(outDir, temp)).then((s) => s.size, () => 0)) >= 1 << 20) break;
    assert.ok(i < 6000, `no temporary output of 1 MiB after 60 s: ${stderr}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return { child, exited, stderr: () => stderr, writer };
}

test('kill -9 in the middle of a large write: the old file is intact, and the next run succeeds and sweeps the litter', async (t) => {
  const dir = await tempDir(t);
  const tar = await bigTar(dir);
  const out = path.join(dir, 'out.tar.gz');
  await writeFile(out, 'the previous output\n');
  const run = await startCleanse(dir, tar, out, 16 << 20);
  run.child.kill('SIGKILL');
  assert.equal((await run.exited).signal, 'SIGKILL');
  await run.writer.close();
  assert.equal(await readFile(out, 'utf8'), 'the previous output\n', 'nothing partial under the final name');
  const litter = (await readdir(dir)).filter((n) => n.endsWith('.tmp'));
  assert.equal(litter.length, 1, 'kill -9 leaves its temporary file (nobody can remove it)');
  // The next run: complete input from a file; it must succeed and remove the dead process's temporary file.
  await writeFile(path.join(dir, 'whole.tar'), tar);
  const again = await runCli(['cleanse', path.join(dir, 'whole.tar'), '--delete', 'pkg/drop.txt', '-o', out], { timeoutMs: 120_000 });
  assert.equal(again.code, 0, again.stderr);
  const listing = execFileSync('tar', ['-tzf', out]).toString();
  assert.equal(listing, 'pkg/\npkg/big.bin\n');
  assert.deepEqual((await readdir(dir)).filter((n) => n.endsWith('.tmp')), [], 'the stale temporary file was swept');
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  test(`${signal} in the middle of a large write: exit 130, the temporary file removed at once, the old file intact`, async (t) => {
    const dir = await tempDir(t);
    const tar = await bigTar(dir);
    const out = path.join(dir, 'out.tar.gz');
    await writeFile(out, 'the previous output\n');
    const run = await startCleanse(dir, tar, out, 16 << 20);
    run.child.kill(signal);
    // The temporary file goes at the signal, while cleanse still waits for input.
    for (let i = 0; (await readdir(dir)).some((n) => n.endsWith('.tmp')); i++) {
      assert.ok(i < 3000, 'the temporary file is still there 30 s after the signal');
      await new Promise((r) => setTimeout(r, 10));
    }
    // The writer meets the interruption at its next batch and stops reading (then EPIPE here).
    await run.writer.write(tar.subarray(16 << 20)).catch(() => {});
    await run.writer.close();
    const { code } = await run.exited;
    assert.equal(code, 130, run.stderr());
    assert.match(run.stderr(), /interrupted/);
    assert.equal(await readFile(out, 'utf8'), 'the previous output\n');
    assert.deepEqual((await readdir(dir)).sort(), ['in.tar', 'out.tar.gz', 'src']);
  });
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  test(`one ${signal} while the input stalls ends the process within seconds (as gzip would), nothing left behind`, async (t) => {
    const dir = await tempDir(t);
    const tar = await bigTar(dir);
    const out = path.join(dir, 'out.tar.gz');
    const run = await startCleanse(dir, tar, out, 16 << 20);
    t.after(() => run.writer.close().catch(() => {}));
    const sent = Date.now();
    run.child.kill(signal); // the input never comes: a writer waiting on it must not keep the process
    const exit = await Promise.race([run.exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 30_000))]);
    assert.notEqual(exit, 'hung', `still running 30 s after ${signal}: ${run.stderr()}`);
    const { code, signal: got } = exit as Awaited<typeof run.exited>;
    assert.ok(got === signal || code === 128 + (signal === 'SIGINT' ? 2 : 15), `code ${code} signal ${got}: ${run.stderr()}`);
    assert.ok(Date.now() - sent < 15_000, 'ended within the grace, not at some later timeout');
    assert.deepEqual((await readdir(dir)).sort(), ['in.tar', 'src']);
  });
}

test('a second SIGINT while the input stalls ends the process at once, with nothing left behind', async (t) => {
  const dir = await tempDir(t);
  const tar = await bigTar(dir);
  const out = path.join(dir, 'out.tar.gz');
  const run = await startCleanse(dir, tar, out, 16 << 20);
  t.after(() => run.writer.close().catch(() => {}));
  run.child.kill('SIGINT');
  for (let i = 0; (await readdir(dir)).some((n) => n.endsWith('.tmp')); i++) {
    assert.ok(i < 3000, 'the temporary file is still there 30 s after the signal');
    await new Promise((r) => setTimeout(r, 10));
  }
  run.child.kill('SIGINT'); // the input never comes: only the signal can end it
  const { code, signal } = await run.exited;
  assert.ok(signal === 'SIGINT' || code === 130, `code ${code} signal ${signal}: ${run.stderr()}`);
  assert.deepEqual((await readdir(dir)).sort(), ['in.tar', 'src']);
});
