// Git snapshots made by our archiver in `mirror sync` and `fetch`, pinned with the sha256 of what the
// real `git archive | gzip -n` writes. A `git` wrapper on PATH records every git command the CLI runs,
// and `gzip` is made to fail, so the tests see that no `git archive` nor `gzip` made the bytes.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { MANIFEST_FORMAT } from '../../src/manifest/distfile.ts';
import { distfile, sha256, writeManifest } from '../helpers/distfiles.ts';
import { gitArchiveGzip, gitIn, makeRepo } from '../helpers/git.ts';
import { runCli, tempDir } from '../helpers/run.ts';

async function setup(t: any) {
  const dir = await tempDir(t);
  const repo = path.join(dir, 'upstream', 'proj.git');
  const commit = await makeRepo(repo, {
    'README': 'hello\n',
    'src/main.c': 'int main(void) { return 0; }\n',
    'tools/run.sh': '#!/bin/sh\necho hi\n',
    [`deep/${'d'.repeat(90)}/${'n'.repeat(80)}.txt`]: 'a long path\n',
  });
  gitIn(repo, ['tag', 'v1.0']);
  const bin = path.join(dir, 'bin');
  await mkdir(bin);
  const log = path.join(dir, 'git.log');
  const realGit = execFileSync('sh', ['-c', 'command -v git']).toString().trim();
  await writeFile(path.join(bin, 'git'), `#!/bin/sh\necho "$*" >> '${log}'\nexec '${realGit}' "$@"\n`);
  await writeFile(path.join(bin, 'gzip'), '#!/bin/sh\necho "gzip must not run" >&2\nexit 99\n');
  await chmod(path.join(bin, 'git'), 0o755);
  await chmod(path.join(bin, 'gzip'), 0o755);
  const env = { PATH: `${bin}:${process.env.PATH}` };
  const gitCommands = async () => (await readFile(log, 'utf8').catch(() => '')).split('\n').filter(Boolean);
  return { dir, repo, commit, env, gitCommands };
}

test('mirror sync publishes git snapshots made by our archiver, equal to git archive | gzip -n; no git archive or gzip runs', async (t) => {
  const s = await setup(t);
  const ref = s.commit.slice(0, 10);
  const level9 = gitArchiveGzip(s.repo, 'proj-1.0/', s.commit, 9);
  // A tag as the ref. (A local repository must give its prefix: live-bootstrap's rule reads upstream's URL.)
  const noPrefix = gitArchiveGzip(s.repo, 'proj-1.0/', 'v1.0');
  const zlib = gitIn(s.repo, ['archive', '--format=tar.gz', '--prefix=proj-1.0/', s.commit]);
  const manifest = path.join(s.dir, 'manifest.json');
  await writeFile(manifest, JSON.stringify({
    format: MANIFEST_FORMAT, name: 'snapshots', distfiles: [
      { name: 'proj-1.0-9.tar.gz', sha256: sha256(level9), urls: [], git: { repo: s.repo, ref, prefix: 'proj-1.0/', compression: 'gzip-n', level: 9 } },
      { name: 'proj-1.0-zlib.tar.gz', sha256: sha256(zlib), urls: [], git: { repo: s.repo, ref, prefix: 'proj-1.0/', compression: 'zlib', level: 6 } },
      { name: 'proj-1.0.tar.gz', sha256: sha256(noPrefix), urls: [], git: { repo: s.repo, ref: 'v1.0', prefix: 'proj-1.0/', compression: 'gzip-n' } },
    ],
  }));
  const root = path.join(s.dir, 'mirror');
  const r = await runCli(['mirror', 'sync', manifest, '--root', root, '--json'], { env: s.env });
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const report = JSON.parse(r.stdout);
  assert.equal(report.generator, 'sourcemesh archive');
  assert.deepEqual(report.added.map((f: any) => f.name).sort(), ['proj-1.0-9.tar.gz', 'proj-1.0-zlib.tar.gz', 'proj-1.0.tar.gz']);
  assert.deepEqual(await readFile(path.join(root, 'proj-1.0-9.tar.gz')), level9);
  assert.deepEqual(await readFile(path.join(root, 'proj-1.0-zlib.tar.gz')), zlib);
  assert.deepEqual(await readFile(path.join(root, 'proj-1.0.tar.gz')), noPrefix);
  const commands = await s.gitCommands();
  assert.ok(commands.some((c) => / clone /.test(` ${c} `)), `git cloned the repository: ${commands.join('; ')}`);
  assert.ok(!commands.some((c) => /\barchive\b/.test(c)), `no git archive ran: ${commands.join('; ')}`);
});

test('mirror sync --snapshot-generator git keeps the git archive | gzip -n pipeline for comparison', async (t) => {
  const s = await setup(t);
  const snapshot = gitArchiveGzip(s.repo, 'proj-1.0/', s.commit);
  const m = await writeManifest(s.dir, [distfile('proj-1.0.tar.gz', snapshot, [], { git: { repo: s.repo, ref: s.commit, prefix: 'proj-1.0/', compression: 'gzip-n', level: 6 } })]);
  const root = path.join(s.dir, 'mirror');
  const r = await runCli(['mirror', 'sync', m, '--root', root, '--json', '--snapshot-generator', 'git']);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.equal(JSON.parse(r.stdout).generator, 'git archive');
  assert.deepEqual(await readFile(path.join(root, 'proj-1.0.tar.gz')), snapshot);
  const bad = await runCli(['mirror', 'sync', m, '--root', root, '--snapshot-generator', 'pigz']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--snapshot-generator pigz/);
});

test('fetch generates a git entry with no URL and no mirror with our archiver; xz through the xz tool', async (t) => {
  const s = await setup(t);
  const gz = gitArchiveGzip(s.repo, 'proj-1.0/', s.commit);
  const tar = gitIn(s.repo, ['archive', '--format=tar', '--prefix=proj-1.0/', s.commit]);
  const xz = execFileSync('xz', ['-T1', '-6', '-c'], { input: tar });
  const m = await writeManifest(s.dir, [
    distfile('proj-1.0.tar.gz', gz, [], { git: { repo: s.repo, ref: s.commit, prefix: 'proj-1.0/', compression: 'gzip-n', level: 6 } }),
    distfile('proj-1.0.tar.xz', xz, [], { git: { repo: s.repo, ref: s.commit, prefix: 'proj-1.0/', compression: 'xz', level: 6 } }),
    distfile('proj-1.0.tar', tar, [], { git: { repo: s.repo, ref: s.commit, prefix: 'proj-1.0/', compression: 'none' } }),
  ]);
  const out = path.join(s.dir, 'distfiles');
  const r = await runCli(['fetch', m, '--store', path.join(s.dir, 'store'), '-o', out, '--json'], { env: s.env });
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const report = JSON.parse(r.stdout);
  assert.deepEqual(report.files.map((f: any) => f.status), ['fetched', 'fetched', 'fetched']);
  assert.deepEqual(await readFile(path.join(out, 'proj-1.0.tar.gz')), gz);
  assert.deepEqual(await readFile(path.join(out, 'proj-1.0.tar.xz')), xz);
  assert.deepEqual(await readFile(path.join(out, 'proj-1.0.tar')), tar);
  assert.ok(!(await s.gitCommands()).some((c) => /\barchive\b/.test(c)));

  // --snapshot-generator none: only downloads, and a git entry with no URL has nowhere to come from.
  const none = await runCli(['fetch', m, '--store', path.join(s.dir, 'store2'), '-o', path.join(s.dir, 'd2'), '--json', '--snapshot-generator', 'none']);
  assert.equal(none.code, 1, none.stderr);
  assert.equal(JSON.parse(none.stdout).files[0].error.code, 'E_NO_SOURCE');
});
