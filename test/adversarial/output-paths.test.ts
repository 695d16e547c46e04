// Issue 11, break 2: every command with an output path, given what a careless root user gives it. As root,
// `archive -o /dev/null` once turned /dev/null into a regular file. The rule (docs/OPERATIONS.md, "Output
// paths"): a device or FIFO is written through, a symlink is followed, a regular file or new path is
// replaced atomically, a directory is refused with one line. Loopback origin only; every run bounded.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, constants as fsc, createReadStream, openSync, readSync } from 'node:fs';
import { link, lstat, mkdir, readFile, readdir, readlink, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { before, after, test } from 'node:test';
import { bytes, distfile, writeManifest } from '../helpers/distfiles.ts';
import { gitArchiveGzip, makeRepo } from '../helpers/git.ts';
import { startOrigin, type Origin } from '../helpers/origin.ts';
import { LIVE_BOOTSTRAP_STEPS, runCli, tempDir, type RunResult } from '../helpers/run.ts';

const isRoot = process.geteuid?.() === 0;

interface Fixture {
  dir: string;
  repo: string;
  tarball: string;
  manifest: string;
  key: string;
  env: NodeJS.ProcessEnv;
}

let fx: Fixture;
let origin: Origin;
const cleanup: (() => Promise<void> | void)[] = [];

before(async () => {
  const dir = await tempDir({ after: (fn) => cleanup.push(fn) }, 'sourcemesh-output-');
  const repo = path.join(dir, 'repo');
  await makeRepo(repo, { 'a.txt': 'alpha\n', 'b.txt': 'beta\n', 'sub/c.bin': bytes(40_000, 3) });
  const tarball = path.join(dir, 'in.tar.gz');
  await writeFile(tarball, gitArchiveGzip(repo, 'proj/', 'HEAD'));
  const files = [{ name: 'one.tar.gz', body: bytes(20_000, 5) }, { name: 'two.txt', body: Buffer.from('two\n') }];
  origin = await startOrigin(Object.fromEntries(files.map((f) => [`/${f.name}`, { body: f.body }])));
  const manifest = await writeManifest(dir, files.map((f) => distfile(f.name, f.body, [`${origin.url}/${f.name}`])));
  const env = { SOURCEMESH_STORE: path.join(dir, 'store') };
  const fetched = await runCli(['fetch', manifest, '-o', path.join(dir, 'distfiles')], { env });
  assert.equal(fetched.code, 0, fetched.stderr);
  const key = path.join(dir, 'release.key');
  const made = await runCli(['key', 'generate', 'release.example.org/test', '-o', key]);
  assert.equal(made.code, 0, made.stderr);
  fx = { dir, repo, tarball, manifest, key, env };
});

after(async () => {
  await origin?.close();
  for (const fn of cleanup.reverse()) await fn();
});

/** Each command with an output path, as the argument list that writes OUT. All outputs are deterministic. */
const commands: Record<string, (out: string) => string[]> = {
  'archive': (out) => ['archive', fx.repo, 'HEAD', '-o', out],
  'cleanse -o': (out) => ['cleanse', fx.tarball, '--delete', 'proj/b.txt', '-o', out],
  'cleanse --recipe': (out) => ['cleanse', fx.tarball, '--delete', 'proj/b.txt', '-o', path.join(fx.dir, 'recipe-run.tar.gz'), '--recipe', out],
  'pack --format tar': (out) => ['pack', fx.manifest, '--format', 'tar', '-o', out],
  'pack --format hex0-disk': (out) => ['pack', fx.manifest, '--format', 'hex0-disk', '-o', out],
  'import -o': (out) => ['import', 'live-bootstrap', LIVE_BOOTSTRAP_STEPS, '-o', out],
  'fetch --metalink': (out) => ['fetch', fx.manifest, '-o', path.join(fx.dir, 'distfiles'), '--metalink', out],
  'release --detached -o': (out) => ['release', fx.manifest, '--key', fx.key, '--release-version', '1.0', '--detached', '-o', out],
};

function run(name: string, out: string): Promise<RunResult> {
  return runCli(commands[name]!(out), { env: fx.env, timeoutMs: 120_000 });
}

let serial = 0;
async function caseDir(): Promise<string> {
  const d = path.join(fx.dir, `case-${++serial}`);
  await mkdir(d);
  return d;
}

/** What the command writes to a new path. */
const references = new Map<string, Buffer>();
async function reference(name: string): Promise<Buffer> {
  if (!references.has(name)) {
    const out = path.join(await caseDir(), 'reference');
    const r = await run(name, out);
    assert.equal(r.code, 0, `${name}: ${r.stderr}`);
    references.set(name, await readFile(out));
  }
  return references.get(name)!;
}

/**
 * Read a FIFO to its end. `release` unblocks a reader whose writer never came (a failed command, or one
 * that replaced the FIFO by rename): it opens the FIFO by a second name kept in `keepDir`.
 */
async function fifoReader(p: string, keepDir: string): Promise<{ bytes: Promise<Buffer>; release: () => void }> {
  const keep = path.join(keepDir, `fifo-${serial}.keep`);
  await link(p, keep);
  const parts: Buffer[] = [];
  const bytes = new Promise<Buffer>((resolve, reject) => {
    createReadStream(p).on('data', (d) => parts.push(d as Buffer)).on('end', () => resolve(Buffer.concat(parts))).on('error', reject);
  });
  const release = () => {
    try {
      closeSync(openSync(keep, fsc.O_WRONLY | fsc.O_NONBLOCK)); // ENXIO when no reader is left: nothing to do
    } catch {}
  };
  return { bytes, release };
}

for (const name of Object.keys(commands)) {
  test(`${name}: a character device is written through and stays a device`, async () => {
    const expected = await reference(name);
    assert.ok(expected.length > 0);
    const d = await caseDir();
    let dev = '/dev/null';
    if (isRoot) {
      dev = path.join(d, 'null');
      execFileSync('mknod', ['-m', '666', dev, 'c', '1', '3']);
    }
    const rdev = (await lstat(dev)).rdev;
    const r = await run(name, dev);
    assert.equal(r.code, 0, r.stderr);
    const st = await lstat(dev);
    assert.ok(st.isCharacterDevice(), `${dev} must still be a character device`);
    assert.equal(st.rdev, rdev);
    if (isRoot) assert.deepEqual(await readdir(d), ['null'], 'no file beside the device');
  });

  test(`${name}: a FIFO is written through, its reader gets the bytes`, async () => {
    const expected = await reference(name);
    const fifo = path.join(await caseDir(), 'fifo');
    execFileSync('mkfifo', [fifo]);
    const reader = await fifoReader(fifo, fx.dir);
    const r = await run(name, fifo);
    reader.release();
    assert.equal(r.code, 0, r.stderr);
    assert.ok((await lstat(fifo)).isFIFO(), 'the FIFO is still a FIFO');
    assert.deepEqual(await reader.bytes, expected);
  });

  test(`${name}: a symbolic link is followed, its target replaced, the link kept`, async () => {
    const expected = await reference(name);
    const d = await caseDir();
    await mkdir(path.join(d, 'real'));
    await writeFile(path.join(d, 'real/target'), 'old contents');
    await symlink('real/target', path.join(d, 'link'));
    const r = await run(name, path.join(d, 'link'));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await readlink(path.join(d, 'link')), 'real/target');
    assert.deepEqual(await readFile(path.join(d, 'real/target')), expected);
    assert.deepEqual(await readdir(path.join(d, 'real')), ['target'], 'no temporary file left');
  });

  test(`${name}: an existing regular file is replaced atomically, a reader of the old one sees old bytes`, async () => {
    const expected = await reference(name);
    const d = await caseDir();
    const out = path.join(d, 'existing');
    const old = Buffer.from('the old file, held open by a reader\n');
    await writeFile(out, old);
    const ino = (await stat(out)).ino;
    const fd = openSync(out, 'r');
    try {
      const r = await run(name, out);
      assert.equal(r.code, 0, r.stderr);
      const buf = Buffer.alloc(old.length + 16);
      assert.deepEqual(buf.subarray(0, readSync(fd, buf, 0, buf.length, 0)), old);
    } finally {
      closeSync(fd);
    }
    assert.deepEqual(await readFile(out), expected);
    assert.notEqual((await stat(out)).ino, ino, 'a new file under the name, not the old one rewritten');
    assert.deepEqual(await readdir(d), ['existing']);
  });

  test(`${name}: a directory is refused in one line naming it, exit 2`, async () => {
    const d = await caseDir();
    const out = path.join(d, 'a-directory');
    await mkdir(out);
    const r = await run(name, out);
    assert.equal(r.code, 2, r.stderr);
    // One error line, the last (fetch reports its files before it).
    const lines = r.stderr.trim().split('\n').filter((l) => l.startsWith('sourcemesh:'));
    assert.equal(lines.length, 1, r.stderr);
    assert.ok(r.stderr.endsWith(`${lines[0]}\n`), r.stderr);
    assert.match(lines[0]!, new RegExp(`^sourcemesh: error: ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: is a directory.*\\[E_INPUT\\]$`));
    assert.deepEqual(await readdir(out), []);
    assert.deepEqual(await readdir(d), ['a-directory']);
  });
}

test('pack --format dir: a device is not a directory to fill (one line, exit 2); split images beside a device are refused', async () => {
  const d = await caseDir();
  const r = await runCli(['pack', fx.manifest, '--format', 'dir', '-o', '/dev/null'], { env: fx.env });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^sourcemesh: error: \/dev\/null: is not a directory.*\[E_INPUT\]\n$/);
  const fifo = path.join(d, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const split = await runCli(['pack', fx.manifest, '--format', 'tar', '--max-disk-bytes', '32000', '-o', fifo], { env: fx.env });
  assert.equal(split.code, 2, split.stderr);
  assert.match(split.stderr, /fifo: not a regular file or directory, but the distfiles need 2 images.*\[E_USAGE\]\n$/);
  assert.deepEqual(await readdir(d), ['fifo']);
});

test('key generate: a device or FIFO is refused (a key must be read back), a link is followed with --force', async () => {
  const d = await caseDir();
  let dev = '/dev/null';
  if (isRoot) {
    dev = path.join(d, 'null');
    execFileSync('mknod', ['-m', '666', dev, 'c', '1', '3']);
  }
  const fifo = path.join(d, 'fifo');
  execFileSync('mkfifo', [fifo]);
  for (const out of [dev, fifo]) {
    const r = await runCli(['key', 'generate', 'k.example.org', '-o', out, '--force'], { timeoutMs: 30_000 });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /: is a (character device|FIFO); this output must be a regular file or a new path \[E_INPUT\]\n$/);
    const plain = await runCli(['key', 'generate', 'k.example.org', '-o', out], { timeoutMs: 30_000 });
    assert.equal(plain.code, 2, plain.stderr);
    assert.match(plain.stderr, /exists; refusing to overwrite a key \(use --force to replace it\) \[E_INPUT\]\n$/);
  }
  assert.ok((await lstat(dev)).isCharacterDevice());
  assert.ok((await lstat(fifo)).isFIFO());
  const dir = path.join(d, 'keydir');
  await mkdir(dir);
  const r = await runCli(['key', 'generate', 'k.example.org', '-o', dir, '--force']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /keydir: is a directory.*\[E_INPUT\]\n$/);
  // A link to an existing key file: --force replaces the key it points to, mode 0600, and the link stays.
  await mkdir(path.join(d, 'keys'));
  await writeFile(path.join(d, 'keys/real.key'), 'old key', { mode: 0o644 });
  await symlink('keys/real.key', path.join(d, 'link.key'));
  const forced = await runCli(['key', 'generate', 'k.example.org', '-o', path.join(d, 'link.key'), '--force']);
  assert.equal(forced.code, 0, forced.stderr);
  assert.ok((await lstat(path.join(d, 'link.key'))).isSymbolicLink());
  assert.match(await readFile(path.join(d, 'keys/real.key'), 'utf8'), /^PRIVATE\+KEY\+k\.example\.org\+/);
  assert.equal((await stat(path.join(d, 'keys/real.key'))).mode & 0o777, 0o600);
  assert.equal((await readFile(path.join(d, 'link.key.pub'), 'utf8')).trim(), forced.stdout.trim());
});
