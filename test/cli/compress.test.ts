// `sourcemesh compress` as a user runs it, against the real GNU gzip (`gzip -n -LEVEL FILE`) and zlib
// 1.2.13 (python3's zlib, the reference of test/archive/deflate/zlib.test.ts), byte for byte: through a
// file, stdin and stdout, and -o.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { link, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { before, test } from 'node:test';
import { mixed, randomBytes, repetitive, text } from '../archive/deflate/corpus.ts';
import { requireReferenceTools, sameBytesMessage, zlibFiles } from '../archive/deflate/reference-tools.ts';
import { CLI, ROOT, runCli, tempDir, waitFor } from '../helpers/run.ts';

const LEVELS = [1, 2, 3, 4, 5, 6, 7, 8, 9];
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

interface Input { name: string; file: string; data: Buffer }

/** Empty, a small text, and ~3 MB of random, repetitive, text and binary pieces. */
async function inputs(dir: string): Promise<Input[]> {
  const big = Buffer.concat([randomBytes(31, 600_000), repetitive(32, 700_000), mixed(33, 1_800_000)]);
  const all: [string, Buffer][] = [['empty', Buffer.alloc(0)], ['small.txt', Buffer.from(text(30, 5_000))], ['mixed-3mb', big]];
  const out: Input[] = [];
  for (const [name, data] of all) {
    const file = path.join(dir, name);
    await writeFile(file, data);
    out.push({ name, file, data });
  }
  return out;
}

/** The real `gzip -n -LEVEL -c FILE`. */
function gnuGzip(file: string, level: number): Buffer {
  const r = spawnSync('gzip', ['-n', `-${level}`, '-c', file], { maxBuffer: 1 << 28 });
  assert.equal(r.status, 0, `gzip -${level} ${file}: ${String(r.stderr)}`);
  return r.stdout;
}

interface Run { code: number | null; stdout: Buffer; stderr: string }

/** The CLI with `stdin` as its standard input: a file descriptor (a regular file) or bytes through a pipe. */
function runWithStdin(args: string[], stdin: { file: string } | { bytes: Uint8Array }): Promise<Run> {
  return new Promise((resolve, reject) => {
    const fd = 'file' in stdin ? openSync(stdin.file, 'r') : 'pipe';
    const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...process.env, NO_COLOR: '1' }, stdio: [fd, 'pipe', 'pipe'] });
    if (typeof fd === 'number') closeSync(fd);
    else child.stdin!.end('bytes' in stdin ? stdin.bytes : undefined);
    child.stdin?.on('error', () => {}); // the CLI may refuse before reading
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => out.push(d));
    child.stderr!.on('data', (d: Buffer) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr });
    });
  });
}

before(() => requireReferenceTools());

test('compress FILE -o OUT equals gzip -n -LEVEL FILE at levels 1 to 9 (empty, small text, 3 MB mixed)', async (t) => {
  const dir = await tempDir(t);
  const failures: string[] = [];
  for (const input of await inputs(dir)) {
    for (const level of LEVELS) {
      const out = path.join(dir, `${input.name}.${level}.gz`);
      const r = await runCli(['compress', input.file, '--level', String(level), '-o', out], { timeoutMs: 120_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout + r.stderr, '', 'quiet, as gzip is');
      const msg = sameBytesMessage(await readFile(out), gnuGzip(input.file, level), `${input.name} -${level}`);
      if (msg) failures.push(msg);
    }
  }
  assert.deepEqual(failures, []);
  assert.deepEqual((await readdir(dir)).filter((n) => n.endsWith('.tmp')), []);
});

test('the comparison above can fail: one level off is never the same bytes on the 3 MB input', async (t) => {
  // A compressor that used level N+1 for N (or the zlib flavour for gzip-n) would fail the test above.
  const dir = await tempDir(t);
  const big = (await inputs(dir)).find((i) => i.name === 'mixed-3mb')!;
  const refs = LEVELS.map((level) => gnuGzip(big.file, level));
  for (let i = 1; i < refs.length; i++) assert.notDeepEqual(refs[i], refs[i - 1], `gzip -n -${i} and -${i + 1} give the same bytes`);
  const out = path.join(dir, 'z6.gz');
  const r = await runCli(['compress', big.file, '--compression', 'zlib', '-o', out], { timeoutMs: 120_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.notDeepEqual(await readFile(out), refs[5], 'zlib and gzip-n flavours must differ on this input');
});

test('compress from stdin (pipe and regular file) to stdout (pipe, -o -, a regular file) equals gzip -n', async (t) => {
  const dir = await tempDir(t);
  for (const input of await inputs(dir)) {
    for (const level of [1, 6, 9]) {
      const expected = gnuGzip(input.file, level);
      const flags = level === 6 ? [] : ['--level', String(level)]; // 6 is the default
      const piped = await runWithStdin(['compress', ...flags], { bytes: input.data });
      assert.equal(piped.code, 0, piped.stderr);
      assert.equal(sameBytesMessage(piped.stdout, expected, `${input.name} -${level} pipe`), null);
      const fromFile = await runWithStdin(['compress', '-', ...flags, '-o', '-'], { file: input.file });
      assert.equal(fromFile.code, 0, fromFile.stderr);
      assert.equal(sameBytesMessage(fromFile.stdout, expected, `${input.name} -${level} < file`), null);
    }
  }
  // Standard output a regular file (`> out.gz`), as a shell redirect leaves it.
  const input = (await inputs(dir)).at(-1)!;
  const outFile = path.join(dir, 'redirected.gz');
  const fd = openSync(outFile, 'w');
  const r = await new Promise<number | null>((resolve) => {
    const child = spawn(process.execPath, [CLI, 'compress', input.file, '--level', '2'], { cwd: ROOT, stdio: ['ignore', fd, 'inherit'] });
    child.on('close', resolve);
  });
  closeSync(fd);
  assert.equal(r, 0);
  assert.equal(sameBytesMessage(await readFile(outFile), gnuGzip(input.file, 2), 'stdout > file'), null);
});

test('compress --compression zlib equals zlib 1.2.13 gzip streams (python3 zlib, wbits 31)', async (t) => {
  const dir = await tempDir(t);
  const all = await inputs(dir);
  const reference = zlibFiles(all.map((i) => i.file), LEVELS);
  const failures: string[] = [];
  for (const input of all) {
    for (const level of input.name === 'mixed-3mb' ? LEVELS : [1, 6, 9]) {
      const out = path.join(dir, `${input.name}.${level}.z.gz`);
      const r = await runCli(['compress', input.file, '--compression', 'zlib', '--level', String(level), '-o', out], { timeoutMs: 120_000 });
      assert.equal(r.code, 0, r.stderr);
      const msg = sameBytesMessage(await readFile(out), reference(input.file, level), `${input.name} zlib -${level}`);
      if (msg) failures.push(msg);
    }
  }
  assert.deepEqual(failures, []);
  // Through stdin and stdout too.
  const big = all.at(-1)!;
  const piped = await runWithStdin(['compress', '--compression', 'zlib', '--level', '4'], { bytes: big.data });
  assert.equal(piped.code, 0, piped.stderr);
  assert.equal(sameBytesMessage(piped.stdout, reference(big.file, 4), 'zlib -4 pipe'), null);
});

test('compress --json reports what was read and written', async (t) => {
  const dir = await tempDir(t);
  const input = (await inputs(dir))[1]!;
  const out = path.join(dir, 'small.gz');
  const r = await runCli(['compress', input.file, '-o', out, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const written = await readFile(out);
  assert.deepEqual(JSON.parse(r.stdout), {
    input: input.file, output: out, compression: 'gzip-n', level: 6,
    inputBytes: input.data.length, inputSha256: sha256(input.data), bytes: written.length, sha256: sha256(written),
  });
  // With the data on stdout, the report goes to stderr.
  const piped = await runWithStdin(['compress', '--json', '--level', '9'], { bytes: input.data });
  assert.equal(piped.code, 0, piped.stderr);
  const j = JSON.parse(piped.stderr);
  assert.equal(j.sha256, sha256(piped.stdout));
  assert.equal(j.input, '-');
  assert.equal(j.output, '-');
});

test('compress: bad input is one line with its code, exit 2, and nothing is written', async (t) => {
  const dir = await tempDir(t);
  const input = path.join(dir, 'in.txt');
  await writeFile(input, 'hello\n');
  const out = path.join(dir, 'out.gz');
  const cases: [string[], string][] = [
    [[path.join(dir, 'missing')], 'E_INPUT'],
    [[path.join(input, 'deeper')], 'E_INPUT'], // ENOTDIR
    [[dir], 'E_INPUT'],
    [[input, '--level', '0'], 'E_USAGE'],
    [[input, '--level', '10'], 'E_USAGE'],
    [[input, '--level', '6x'], 'E_USAGE'],
    [[input, '--level', ''], 'E_USAGE'],
    [[input, '--compression', 'xz'], 'E_USAGE'],
    [[input, '--compression', 'gzip'], 'E_USAGE'],
  ];
  for (const [args, code] of cases) {
    for (const target of [['-o', out], []]) {
      const r = await runCli(['compress', ...args, ...target]);
      const what = `${[...args, ...target].join(' ')}: ${r.stderr}`;
      assert.equal(r.code, 2, what);
      assert.equal(r.stderr.trim().split('\n').length, 1, what);
      assert.match(r.stderr, new RegExp(`\\[${code}\\]`), what);
      assert.equal(r.stdout, '', what);
    }
  }
  assert.deepEqual((await readdir(dir)).sort(), ['in.txt']);
});

test('compress refuses to write compressed data to a terminal', async (t) => {
  // script(1) gives the command a pseudo-terminal as its stdin and stdout.
  const dir = await tempDir(t);
  const input = path.join(dir, 'in.txt');
  await writeFile(input, 'hello\n');
  const cmd = [process.execPath, CLI, 'compress', input].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const r = spawnSync('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, NO_COLOR: '1' } });
  assert.equal(r.status, 2, r.stdout + r.stderr);
  assert.match(r.stdout, /terminal.*\[E_USAGE\]/);
  assert.doesNotMatch(r.stdout, /\u001f\ufffd/, 'no gzip magic on the terminal');
});

test('compress -o replaces an existing file atomically: the old bytes stay whole until the new are complete', async (t) => {
  const dir = await tempDir(t);
  const out = path.join(dir, 'out.gz');
  await writeFile(out, 'old contents\n');
  const before = await stat(out);
  // A second name for the old file: a replacement by rename leaves it alone, a rewrite in place would not.
  await link(out, path.join(dir, 'old-link'));
  const data = Buffer.concat([randomBytes(41, 2_000_000), repetitive(42, 1_000_000)]);
  const child = spawn(process.execPath, [CLI, 'compress', '-o', out], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  t.after(() => clearTimeout(timer));
  // Half the input, then wait until compressed bytes are on disk under the temporary name.
  child.stdin.write(data.subarray(0, 1_500_000));
  const temps = async () => (await readdir(dir)).filter((n) => n.endsWith('.tmp'));
  await waitFor('compressed bytes in the temporary file', async () => {
    const [temp] = await temps();
    return temp !== undefined && (await stat(path.join(dir, temp))).size > 0;
  });
  assert.equal(await readFile(out, 'utf8'), 'old contents\n', 'the old file is untouched while the new one is written');
  child.stdin.end(data.subarray(1_500_000));
  assert.equal(await closed, 0, stderr);
  const inputFile = path.join(dir, 'input');
  await writeFile(inputFile, data);
  assert.equal(sameBytesMessage(await readFile(out), gnuGzip(inputFile, 6), 'replaced'), null);
  assert.equal(await readFile(path.join(dir, 'old-link'), 'utf8'), 'old contents\n');
  assert.notEqual((await stat(out)).ino, before.ino, 'a new file took the name');
  assert.deepEqual(await temps(), []);
});
