// `sourcemesh archive` as a user runs it, against the real `git archive` and `gzip -n`.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { chmod, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { sha256 } from '../helpers/distfiles.ts';
import { commitFiles, gitArchiveGzip, gitIn, makeRepo } from '../helpers/git.ts';
import { CLI, runCli, tempDir } from '../helpers/run.ts';

async function setup(t: any) {
  const dir = await tempDir(t);
  const repo = path.join(dir, 'repo');
  const files: Record<string, string | Buffer> = {
    'README': 'hello\n',
    'bin/run': '#!/bin/sh\necho run\n',
    [`${'x'.repeat(120)}/${'y'.repeat(120)}/z.c`]: 'int z;\n',
    'data.bin': Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7919) & 0xff)),
  };
  for (let i = 0; i < 50; i++) files[`src/f${i}.c`] = `/* file ${i} */\n`.repeat(200 + i);
  const commit = await makeRepo(repo, files);
  execFileSync('chmod', ['+x', path.join(repo, 'bin/run')]);
  gitIn(repo, ['add', '-A']);
  gitIn(repo, ['commit', '-q', '-m', 'exec bit']);
  gitIn(repo, ['tag', '-a', '-m', 'release', 'v2.0']);
  return { dir, repo, commit };
}

test('archive writes what git archive | gzip -n writes, at levels 1, 6 and 9, and plain tar', async (t) => {
  const s = await setup(t);
  for (const level of [1, 6, 9]) {
    const out = path.join(s.dir, `p-${level}.tar.gz`);
    const r = await runCli(['archive', s.repo, 'v2.0', '--prefix', 'p-2.0/', '--level', String(level), '-o', out, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const expected = gitArchiveGzip(s.repo, 'p-2.0/', 'v2.0', level);
    assert.deepEqual(await readFile(out), expected, `level ${level}`);
    const j = JSON.parse(r.stdout);
    assert.equal(j.sha256, sha256(expected));
    assert.equal(j.commit, gitIn(s.repo, ['rev-parse', 'v2.0^{commit}']).toString().trim());
    assert.equal(j.tarSha256, sha256(gitIn(s.repo, ['archive', '--format=tar', '--prefix=p-2.0/', 'v2.0'])));
  }
  const tarOut = path.join(s.dir, 'p.tar');
  const r = await runCli(['archive', s.repo, 'HEAD', '-o', tarOut]);
  assert.equal(r.code, 0, r.stderr);
  const tar = gitIn(s.repo, ['archive', '--format=tar', 'HEAD']);
  assert.deepEqual(await readFile(tarOut), tar);
  assert.match(r.stdout, new RegExp(`^sha256  ${sha256(tar)}  `, 'm'));
  // No temporary file is left beside the outputs.
  assert.deepEqual((await readdir(s.dir)).filter((n) => n.endsWith('.tmp')), []);
});

test('archive --compression zlib writes what git archive --format=tar.gz writes', async (t) => {
  const s = await setup(t);
  const out = path.join(s.dir, 'z.tgz');
  const r = await runCli(['archive', s.repo, 'HEAD', '--prefix', 'z/', '--compression', 'zlib', '-o', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await readFile(out), gitIn(s.repo, ['archive', '--format=tar.gz', '--prefix=z/', 'HEAD']));
});

test('archive -o - streams to stdout, the summary on stderr', async (t) => {
  const s = await setup(t);
  const child = spawn(process.execPath, [CLI, 'archive', s.repo, s.commit.slice(0, 8), '--format', 'tar.gz', '--prefix', 'p/', '-o', '-'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const chunks: Buffer[] = [];
  let stderr = '';
  child.stdout.on('data', (d) => chunks.push(d));
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise((resolve) => child.on('close', resolve));
  assert.equal(code, 0, stderr);
  const expected = gitArchiveGzip(s.repo, 'p/', s.commit);
  assert.deepEqual(Buffer.concat(chunks), expected);
  assert.match(stderr, new RegExp(`commit  ${s.commit}`));
  assert.match(stderr, new RegExp(`sha256  ${sha256(expected)}`));
});

test('archive --format tar -o - into a slow pipe: git archive\'s bytes, buffers reused only once written; sha256 only with --json', async (t) => {
  // 6 MB of distinct file contents: the pipe fills, writes come back short, more than 4 MiB queue up behind
  // the slow reader, and the tar writer gets chunks back to fill again (a chunk reused while still queued
  // would put later bytes in place of earlier ones).
  const s = await setup(t);
  const files: Record<string, Buffer> = {};
  for (let i = 0; i < 400; i++) files[`bulk/b${i}.bin`] = Buffer.from(Array.from({ length: 15_000 + i }, (_, j) => ((j * 2654435761 + i * 40503) >>> 13) & 0xff));
  await commitFiles(s.repo, files, 'bulk');
  const expected = gitIn(s.repo, ['archive', '--format=tar', '--prefix=q/', 'HEAD']);
  const run = async (json: boolean) => {
    const child = spawn(process.execPath, [CLI, 'archive', s.repo, 'HEAD', '--format', 'tar', '--prefix', 'q/', '-o', '-', ...(json ? ['--json'] : [])], { stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      chunks.push(d);
      child.stdout.pause(); // one read, then a turn of the event loop
      setImmediate(() => child.stdout.resume());
    });
    child.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise((resolve) => child.on('close', resolve));
    assert.equal(code, 0, stderr);
    assert.ok(Buffer.concat(chunks).equals(expected), 'the bytes of git archive');
    return stderr;
  };
  const plain = await run(false);
  assert.match(plain, new RegExp(`^commit  ${gitIn(s.repo, ['rev-parse', 'HEAD']).toString().trim()}$`, 'm'));
  assert.doesNotMatch(plain, /sha256/);
  assert.equal(JSON.parse(await run(true)).sha256, sha256(expected));
});

test('archive: bad input is one line with its code, exit 2, and no file is left', async (t) => {
  const s = await setup(t);
  const out = path.join(s.dir, 'bad.tar.gz');
  const cases: [string[], string][] = [
    [[s.repo, 'no-such-ref'], 'E_INPUT'],
    [[path.join(s.dir, 'missing'), 'HEAD'], 'E_INPUT'],
    [[s.repo, 'HEAD', '--prefix', '../up/'], 'E_INPUT'],
    [[s.repo, 'HEAD', '--level', '0'], 'E_USAGE'],
    [[s.repo, 'HEAD', '--format', 'tar', '--level', '9'], 'E_USAGE'],
  ];
  for (const [args, code] of cases) {
    const r = await runCli(['archive', ...args, '-o', out]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`\\[${code}\\]`), `${args.join(' ')}: ${r.stderr}`);
  }
  assert.deepEqual((await readdir(s.dir)).sort(), ['repo']);

  // A blob that turns out corrupt in the middle of the stream: the error, and still no file.
  const oid = gitIn(s.repo, ['rev-parse', 'HEAD:data.bin']).toString().trim();
  const loose = path.join(s.repo, '.git', 'objects', oid.slice(0, 2), oid.slice(2));
  await chmod(loose, 0o644);
  await writeFile(loose, Buffer.from('not zlib at all'));
  const r = await runCli(['archive', s.repo, 'HEAD', '-o', out]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /\[E_ARCHIVE\]/);
  assert.deepEqual((await readdir(s.dir)).sort(), ['repo']);
});
