// Issue 11, "Also": git snapshots from repositories already on this machine.
// - `fetch --offline` refused every git snapshot; on an isolated machine a local repository, or a clone
//   already in the store, is exactly what should make them, with nothing sent over the network.
// - A git entry whose `repo` is a local path took its prefix from the path's last component
//   (`/srv/git/flex/repo` gave `repo-REF/`): now `prefix` is required for local paths (docs/FORMATS.md).
import assert from 'node:assert/strict';
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { isSourcemeshError } from '../../src/errors.ts';
import { parseSources } from '../../src/manifest/live-bootstrap.ts';
import { validateManifest } from '../../src/manifest/validate.ts';
import { cloneDirFor } from '../../src/mirror/git-repo.ts';
import { distfile, writeManifest } from '../helpers/distfiles.ts';
import { commitFiles, gitArchiveGzip, gitIn, makeRepo } from '../helpers/git.ts';
import { runCli, tempDir } from '../helpers/run.ts';

const report = (stdout: string) => JSON.parse(stdout) as { files: { name: string; status: string; source?: string; error?: { code: string; message: string } }[] };

/** A TCP listener on loopback that only counts who connects (and hangs up on them). */
async function countingListener(t: any): Promise<{ url: string; connections: () => number }> {
  let n = 0;
  const sockets = new Set<Socket>();
  const server = createServer((s) => { n++; sockets.add(s); s.on('error', () => {}); s.destroy(); });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()); }));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}/proj.git`, connections: () => n };
}

async function setup(t: any) {
  const dir = await tempDir(t);
  const repo = path.join(dir, 'srv', 'git', 'proj');
  const commit = await makeRepo(repo, { 'README': 'hello\n', 'src/main.c': 'int main(void) { return 0; }\n' });
  const store = path.join(dir, 'store');
  const fetch = (m: string, ...args: string[]) => runCli(['fetch', m, '-o', path.join(dir, 'out'), '--json', ...args], { env: { SOURCEMESH_STORE: store } });
  // Each manifest in its own directory (writeManifest names the file manifest.json).
  const manifest = async (label: string, entries: Parameters<typeof writeManifest>[1]) => {
    await mkdir(path.join(dir, label));
    return writeManifest(path.join(dir, label), entries);
  };
  return { dir, repo, commit, store, fetch, manifest };
}

test('fetch --offline makes a git snapshot from a repository that is a local path', async (t) => {
  const s = await setup(t);
  const snapshot = gitArchiveGzip(s.repo, 'proj-1.0/', s.commit);
  const m = await s.manifest('m1', [distfile('proj-1.0.tar.gz', snapshot, [], { git: { repo: s.repo, ref: s.commit.slice(0, 10), prefix: 'proj-1.0/', compression: 'gzip-n', level: 6 } })]);
  const r = await s.fetch(m, '--offline');
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.equal(report(r.stdout).files[0]!.status, 'fetched');
  assert.deepEqual(await readFile(path.join(s.dir, 'out', 'proj-1.0.tar.gz')), snapshot);
  // A commit added later to the local repository is taken from it (still no network: it is a local path).
  const next = await commitFiles(s.repo, { 'NEWS': 'more\n' }, 'next');
  const snap2 = gitArchiveGzip(s.repo, 'proj-1.1/', next);
  const m2 = await s.manifest('m2', [distfile('proj-1.1.tar.gz', snap2, [], { git: { repo: `file://${s.repo}`, ref: next, prefix: 'proj-1.1/', compression: 'gzip-n', level: 6 } })]);
  const r2 = await s.fetch(m2, '--offline');
  assert.equal(r2.code, 0, r2.stderr + r2.stdout);
  assert.deepEqual(await readFile(path.join(s.dir, 'out', 'proj-1.1.tar.gz')), snap2);
});

test('fetch --offline uses a clone of a remote repository already in the store and never connects; a ref it lacks is a one-line error', async (t) => {
  const s = await setup(t);
  const remote = await countingListener(t);
  // The clone sync or an online fetch would have left: STORE/git/..., origin the remote URL.
  const clone = cloneDirFor(s.store, remote.url);
  await mkdir(path.dirname(clone), { recursive: true });
  gitIn(s.dir, ['clone', '--bare', '--quiet', '--', s.repo, clone]);
  gitIn(clone, ['remote', 'set-url', 'origin', remote.url]);
  const later = await commitFiles(s.repo, { 'NEWS': 'not in the clone\n' }, 'later');

  const snapshot = gitArchiveGzip(s.repo, 'proj-1.0/', s.commit);
  const m = await s.manifest('m1', [distfile('proj-1.0.tar.gz', snapshot, [], { git: { repo: remote.url, ref: s.commit, prefix: 'proj-1.0/', compression: 'gzip-n', level: 6 } })]);
  const r = await s.fetch(m, '--offline');
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.deepEqual(await readFile(path.join(s.dir, 'out', 'proj-1.0.tar.gz')), snapshot);
  assert.equal(remote.connections(), 0, 'nothing connected to the remote');

  const missing = await s.manifest('missing', [distfile('proj-2.0.tar.gz', gitArchiveGzip(s.repo, 'proj-2.0/', later), [], { git: { repo: remote.url, ref: later, prefix: 'proj-2.0/', compression: 'gzip-n', level: 6 } })]);
  const r2 = await s.fetch(missing, '--offline');
  assert.notEqual(r2.code, 0);
  const f = report(r2.stdout).files[0]!;
  assert.equal(f.status, 'failed');
  assert.equal(f.error?.code, 'E_NO_SOURCE');
  assert.ok(!f.error!.message.includes('\n'), 'one line');
  assert.ok(f.error!.message.includes(remote.url), f.error!.message);
  assert.match(f.error!.message, new RegExp(`no commit "${later}" in the local clone .*--offline`));
  assert.equal(remote.connections(), 0, 'the clone was not fetched');

  // Not in the store at all: refused the same way, nothing cloned.
  const other = await countingListener(t);
  const none = await s.manifest('none', [distfile('proj-1.0.tar.gz', snapshot, [], { git: { repo: other.url, ref: s.commit, prefix: 'proj-1.0/', compression: 'gzip-n', level: 6 } })]);
  const r3 = await runCli(['fetch', none, '-o', path.join(s.dir, 'out3'), '--json', '--offline'], { env: { SOURCEMESH_STORE: path.join(s.dir, 'store3') } });
  assert.notEqual(r3.code, 0);
  assert.match(report(r3.stdout).files[0]!.error!.message, /not cloned in the store .*--offline/);
  assert.equal(other.connections(), 0);

  // The listener does see git when it is allowed online: the counts above can fail.
  const online = await s.fetch(missing);
  assert.notEqual(online.code, 0, online.stdout + online.stderr);
  assert.ok(remote.connections() > 0, 'online, git fetched from the remote');
});

test('a git entry whose repo is a local path must give its prefix: E_MANIFEST naming the entry', async (t) => {
  const sha = 'e207c0bb72093c3a72dde302fcfaa1dbda12a62172d47b73565883a92209ebab';
  const entry = (repo: string, prefix?: string) => ({ format: 'sourcemesh.manifest/v1', name: 't', distfiles: [{ name: 'flex-2.6.4.tar.gz', sha256: sha, urls: [], git: { repo, ref: 'v2.6.4', compression: 'gzip-n', ...(prefix ? { prefix } : {}) } }] });
  for (const repo of ['/srv/git/flex/repo', 'file:///srv/git/flex/repo', './flex', '../git/flex', 'flex']) {
    assert.throws(() => validateManifest(entry(repo), 'm.json'), (err: unknown) => isSourcemeshError(err, 'E_MANIFEST') && /^m\.json: distfiles\.0\.git\.prefix is required/.test(err.message) && err.message.includes('local path'), repo);
    assert.equal(validateManifest(entry(repo, 'flex-2.6.4/'), 'm.json').distfiles[0]!.git!.prefix, 'flex-2.6.4/');
  }
  // A URL (or scp-like address) still gets live-bootstrap's rule.
  assert.equal(validateManifest(entry('https://github.com/westes/flex.git'), 'm.json').distfiles[0]!.git!.prefix, 'flex-2.6.4/');
  assert.equal(validateManifest(entry('git@github.com:westes/flex.git'), 'm.json').distfiles[0]!.git!.prefix, 'flex-2.6.4/');
  // The importer: the same rule, naming file and line.
  assert.throws(() => parseSources(`g /srv/git/flex~v2.6.4 _ ${sha} flex-2.6.4.tar.gz\n`, 'steps/flex/sources'), (err: unknown) => isSourcemeshError(err, 'E_MANIFEST') && /^steps\/flex\/sources:1: .*local path/.test(err.message));
  // The CLI: exit 2, one line.
  const dir = await tempDir(t);
  const m = path.join(dir, 'm.json');
  await writeFile(m, JSON.stringify(entry('/srv/git/flex/repo')));
  const r = await runCli(['fetch', m, '-o', path.join(dir, 'out'), '--offline'], { env: { SOURCEMESH_STORE: path.join(dir, 'store') } });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /\[E_MANIFEST\]/);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
});
