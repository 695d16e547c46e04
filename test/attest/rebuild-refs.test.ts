// How `rebuild --snapshot-generator sourcemesh` finds the commit of each snapshot: with our archiver's own
// reader in the store's clone (no git process), and through git (clone or fetch) when the clone does not
// have the ref yet. Real repositories, the real CLI.
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import type { Distfile } from '../../src/manifest/distfile.ts';
import { sha256, writeManifest } from '../helpers/distfiles.ts';
import { commitFiles, gitArchiveGzip, gitIn, makeRepo } from '../helpers/git.ts';
import { runCli, tempDir } from '../helpers/run.ts';

function snapshot(upstream: string, ref: string, version: string): Distfile {
  const prefix = `demo-${version}/`;
  return { name: `demo-${version}.tar.gz`, sha256: sha256(gitArchiveGzip(upstream, prefix, ref, 6)), urls: [], git: { repo: upstream, ref, prefix, compression: 'gzip-n', level: 6 } };
}

test('rebuild resolves refs in the clone without git, and fetches a ref the clone lacks', async (t) => {
  const dir = await tempDir(t);
  const upstream = path.join(dir, 'upstream', 'demo');
  await makeRepo(upstream, { 'README': 'demo\n', 'src/main.c': 'int main(void) { return 0; }\n' });
  // An annotated tag: the commit is the tag peeled, as `git rev-parse v1^{commit}` says.
  gitIn(upstream, ['tag', '-a', '-m', 'one', 'v1']);
  const v1Commit = gitIn(upstream, ['rev-parse', 'v1^{commit}']).toString().trim();
  const state = path.join(dir, 'state');
  await mkdir(path.join(dir, 'm1'));
  const m1 = await writeManifest(path.join(dir, 'm1'), [snapshot(upstream, 'v1', '1')]);
  const rebuild = (manifest: string, env: NodeJS.ProcessEnv = {}) => runCli(['rebuild', manifest, '--state', state, '-o', path.join(dir, 'out'), '--json'], { env, timeoutMs: 120_000 });

  // First: no clone yet, git clones it.
  const first = await rebuild(m1);
  assert.equal(first.code, 0, first.stderr);
  assert.deepEqual(JSON.parse(first.stdout).results.map((r: { commit: string; matches: boolean }) => [r.commit, r.matches]), [[v1Commit, true]]);

  // Again with no git on PATH: the clone is there and has v1, so our reader resolves it (and derives the
  // snapshot) with no git process at all; the annotated tag peeled to the same commit.
  const noGit = path.join(dir, 'empty-bin');
  await mkdir(noGit);
  const again = await rebuild(m1, { PATH: noGit });
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(JSON.parse(again.stdout).results.map((r: { commit: string; matches: boolean }) => [r.commit, r.matches]), [[v1Commit, true]]);

  // Upstream moves on: v2 is not in the clone. Without git that is an error naming git (never a guess)...
  const v2Commit = await commitFiles(upstream, { 'src/main.c': 'int main(void) { return 2; }\n' }, 'second');
  gitIn(upstream, ['tag', 'v2']);
  await mkdir(path.join(dir, 'm2'));
  const m2 = await writeManifest(path.join(dir, 'm2'), [snapshot(upstream, 'v2', '2')]);
  const stuck = await rebuild(m2, { PATH: noGit });
  assert.equal(stuck.code, 1, stuck.stderr);
  assert.match(JSON.parse(stuck.stdout).results[0].error.message, /git is not installed/);
  // ...and with git, the clone is fetched and v2 rebuilt.
  const fetched = await rebuild(m2);
  assert.equal(fetched.code, 0, fetched.stderr);
  assert.deepEqual(JSON.parse(fetched.stdout).results.map((r: { commit: string; matches: boolean }) => [r.commit, r.matches]), [[v2Commit, true]]);
});
