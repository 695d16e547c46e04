// Errors that escaped the family (issue 11): a hostile Location header or mirror list, a fault of the disk
// taken for "not found", a worker failure taken for "no digest", and bugs printed without their code. Every
// one must come out as one line with a stable code. As root, permissions cannot make a read fail, so the
// faults here are real ones any user can make: a symlink loop (ELOOP) and a directory where a file is
// expected (EISDIR).
import assert from 'node:assert/strict';
import { mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { Agent } from 'undici';
import { main } from '../../src/cli/main.ts';
import { isSourcemeshError } from '../../src/errors.ts';
import { headSize } from '../../src/fetch/http.ts';
import { StreamHash } from '../../src/fetch/hash-thread.ts';
import { PieceHasher } from '../../src/fetch/piece-hasher.ts';
import { LIMITS } from '../../src/limits.ts';
import { cloneDirFor, ensureRepo } from '../../src/mirror/git-repo.ts';
import { Store } from '../../src/store/store.ts';
import { bytes, distfile, sha256, writeManifest } from '../helpers/distfiles.ts';
import { makeRepo } from '../helpers/git.ts';
import { startOrigin } from '../helpers/origin.ts';
import { runCli, tempDir } from '../helpers/run.ts';

const code = (c: string) => (e: unknown) => isSourcemeshError(e) && e.code === c;

async function loopback(handler: http.RequestListener): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

test('a Location that is not a URL: headSize announces nothing, mirror sync --max-bytes fails in the family', async (t) => {
  const dir = await tempDir(t);
  const body = bytes(1000, 3);
  const origin = await startOrigin({ '/f.tar.gz': { body, behaviour: { kind: 'redirect', to: 'http://[' } } });
  t.after(() => origin.close());
  const agent = new Agent();
  t.after(() => agent.close());
  assert.equal(await headSize(`${origin.url}/f.tar.gz`, agent, LIMITS), undefined);

  const manifest = await writeManifest(dir, [distfile('f.tar.gz', body, [`${origin.url}/f.tar.gz`])]);
  const r = await runCli(['mirror', 'sync', manifest, '--root', path.join(dir, 'root'), '--max-bytes', '1G'], { env: { SOURCEMESH_STORE: path.join(dir, 'store') } });
  assert.doesNotMatch(r.stderr, /internal error|TypeError|\n\s+at /, r.stderr);
  assert.match(r.stderr, /f\.tar\.gz.*redirect to an invalid URL/, r.stderr);
  assert.equal(r.code, 1, r.stderr);
});

test('--mirror-list over HTTP sends our User-Agent; a body cut short is one line with E_NETWORK', async (t) => {
  const dir = await tempDir(t);
  const agents: (string | undefined)[] = [];
  const server = await loopback((req, res) => {
    agents.push(req.headers['user-agent']);
    // Announces 10,000 bytes, sends 20 and resets the connection.
    res.writeHead(200, { 'content-length': 10_000 });
    res.write('{"format":"sourcemes', () => setTimeout(() => res.socket?.resetAndDestroy(), 50));
  });
  t.after(() => server.close());
  const body = bytes(100, 4);
  const manifest = await writeManifest(dir, [distfile('f.tar.gz', body, ['http://127.0.0.1:9/f.tar.gz'])]);
  const r = await runCli(['fetch', manifest, '-o', path.join(dir, 'out'), '--mirror-list', `${server.url}/mirrors.json`], { env: { SOURCEMESH_STORE: path.join(dir, 'store') } });
  assert.match(agents[0] ?? '', /^sourcemesh\//);
  assert.doesNotMatch(r.stderr, /internal error|\n\s+at /, r.stderr);
  assert.match(r.stderr, /--mirror-list http:\/\/127\.0\.0\.1:\d+\/mirrors\.json: .*\[E_NETWORK\]\n$/, r.stderr);
  assert.equal(r.code, 1);
});

test('a bug prints one line ending in [E_INTERNAL], then its stack; exit 1', async () => {
  // A stdout that fails the way no code of ours expects: whatever throws, the CLI reports it in the family.
  const stderr = new PassThrough();
  let err = '';
  stderr.on('data', (d) => (err += d));
  const stdout = new PassThrough();
  stdout.write = () => { throw new TypeError('stdout went away'); };
  const status = await main(['--version'], { stdout, stderr, env: {} });
  assert.equal(status, 1);
  const [first, ...rest] = err.split('\n');
  assert.match(first!, /^sourcemesh: error: internal error .*TypeError: stdout went away \[E_INTERNAL\]$/, err);
  assert.match(rest.join('\n'), /at /, 'the stack follows, for the report');
});

test('store: a record or name behind a symlink loop is a fault (E_IO), not a missing record; gc keeps the name', async (t) => {
  const dir = await tempDir(t);
  const store = await Store.open(dir);
  const hex = 'cd'.repeat(32);
  await mkdir(path.join(dir, 'tars'), { recursive: true });
  await symlink('cd', path.join(dir, 'tars', 'cd')); // tars/cd -> itself
  await assert.rejects(store.cachedTarSha256(hex), (e) => code('E_IO')(e) && /ELOOP/.test((e as Error).message));

  await symlink('loop', path.join(dir, 'objects', 'sha256', 'loop'));
  await symlink('../objects/sha256/loop/x', path.join(dir, 'names', 'f.tar.gz'));
  await assert.rejects(store.gc(), code('E_IO'));
  assert.deepEqual(await readdir(path.join(dir, 'names')), ['f.tar.gz'], 'a name that cannot be checked is not deleted');
});

test('store: a torn .part.json (a crash mid-write) does not stop the partial being resumed', async (t) => {
  const dir = await tempDir(t);
  const body = bytes(300_000, 8);
  const origin = await startOrigin({ '/f.tar.gz': { body } });
  t.after(() => origin.close());
  const manifest = await writeManifest(dir, [distfile('f.tar.gz', body, [`${origin.url}/f.tar.gz`])]);
  const store = path.join(dir, 'store');
  await Store.open(store);
  const part = path.join(store, 'tmp', `${sha256(body)}.999999999-0a.part`);
  await writeFile(part, body.subarray(0, 100_000));
  await writeFile(`${part}.json`, '{"url":"http://127.0.0.1:1/f.t');
  const r = await runCli(['fetch', manifest, '-o', path.join(dir, 'out')], { env: { SOURCEMESH_STORE: store } });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(origin.log.at(-1)?.range, 'bytes=100000-');
});

test('git-repo: a clone directory behind a symlink loop is reported (E_IO), never cloned over', async (t) => {
  const dir = await tempDir(t);
  const repo = path.join(dir, 'repo');
  await makeRepo(repo, { 'a.txt': 'a\n' });
  const state = path.join(dir, 'state');
  const clone = cloneDirFor(state, repo);
  await mkdir(path.dirname(clone), { recursive: true });
  await symlink(path.basename(clone), clone);
  await assert.rejects(ensureRepo(repo, 'main', state), (e) => code('E_IO')(e) && /ELOOP/.test((e as Error).message));
  // And a clone that is not a repository is an error of git's, not a ref to go and fetch.
  const other = path.join(dir, 'other');
  await makeRepo(other, { 'b.txt': 'b\n' });
  await mkdir(cloneDirFor(state, other), { recursive: true });
  await assert.rejects(ensureRepo(other, 'main', state), (e) => code('E_ARCHIVE')(e) && /rev-parse/.test((e as Error).message));
});

test('archive: a ref or a pack directory behind a symlink loop is E_IO, not an unknown revision', async (t) => {
  const dir = await tempDir(t);
  const repo = path.join(dir, 'repo');
  await makeRepo(repo, { 'a.txt': 'a\n' });
  await symlink('x', path.join(repo, '.git', 'refs', 'heads', 'x')); // refs/heads/x -> itself
  const ref = await runCli(['archive', repo, 'x', '-o', path.join(dir, 'x.tar')]);
  assert.match(ref.stderr, /ELOOP.*\[E_IO\]/, ref.stderr);
  assert.equal(ref.code, 1);

  const pack = path.join(repo, '.git', 'objects', 'pack');
  await import('node:fs/promises').then((fs) => fs.rm(pack, { recursive: true }));
  await symlink('pack', pack);
  const objects = await runCli(['archive', repo, 'main', '-o', path.join(dir, 'm.tar')]);
  assert.match(objects.stderr, /ELOOP.*\[E_IO\]/, objects.stderr);
  assert.equal(objects.code, 1);
});

test('piece hasher: a read that fails is E_IO naming the file; a dead hashing thread is E_INTERNAL, not "no digest"', async (t) => {
  const dir = await tempDir(t);
  const asFile = path.join(dir, 'a-directory');
  await mkdir(asFile);
  const hasher = new PieceHasher(asFile);
  try {
    await assert.rejects(hasher.digest(10), (e) => code('E_IO')(e) && /a-directory/.test((e as Error).message) && /EISDIR/.test((e as Error).message));
  } finally {
    await hasher.close();
  }
  const file = path.join(dir, 'f');
  await writeFile(file, bytes(1000, 9));
  const second = new StreamHash({ aheadBytes: 1 << 20 });
  try {
    await second.prefix(file, 1000);
    // The hashing thread (whole-file downloads with a piece map) dies under us (what an out-of-memory
    // kill of the worker looks like from here).
    await (second as unknown as { thread: { worker: { terminate(): Promise<number> } } }).thread.worker.terminate();
    await assert.rejects(async () => second.result(), code('E_INTERNAL'));
  } finally {
    second.close();
  }
});
