// bin/sourcemesh.js turns on Node's module compile cache (bin/compile-cache.js) under $XDG_CACHE_HOME/sourcemesh
// or ~/.cache/sourcemesh (its folder compile-cache). It is only a cache: the CLI built from the current sources and run through bin/ as
// users run it gives the same archive as `git archive` with the cache cold, warm, corrupted, unwritable or
// turned off, and says nothing about it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { prepareCli } from '../../bench/lib/cli.ts';
import { gitIn, makeRepo } from '../helpers/git.ts';
import { ROOT } from '../helpers/run.ts';

const { compileCacheDir } = (await import(pathToFileURL(path.join(ROOT, 'bin', 'compile-cache.js')).href)) as {
  compileCacheDir(env: Record<string, string | undefined>, home: string | undefined): string | undefined;
};

let tmp = '';
let cli: string[] = [];
let repo = '';
let expected: Buffer;

before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'sourcemesh-compile-cache-'));
  // The compiled CLI with a copy of bin/, as bench/lib/cli.ts builds it for the benchmarks.
  cli = (await prepareCli(ROOT, tmp, 'build')).argv;
  repo = path.join(tmp, 'repo');
  await makeRepo(repo, { 'README': 'hello\n', 'src/a.c': 'int main(void) { return 0; }\n', 'bin/blob': Buffer.from([0, 1, 2, 255]) });
  expected = gitIn(repo, ['archive', '--format=tar', '--prefix=p/', 'HEAD']);
});
after(() => rm(tmp, { recursive: true, force: true }));

/** `sourcemesh archive REPO HEAD --prefix p/ --format tar -o -` through bin/ with exactly this environment. */
function archive(env: Record<string, string>) {
  const r = spawnSync(cli[0]!, [...cli.slice(1), 'archive', repo, 'HEAD', '--prefix', 'p/', '--format', 'tar', '-o', '-'], {
    env: { PATH: process.env.PATH!, ...env }, maxBuffer: 1 << 26, timeout: 120_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
}

/** Every file under dir (the cache keeps one per module under a directory per Node version). */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).map((f) => path.join(dir, f)).filter((f) => statSync(f).isFile());
}

test('the cache directory: $XDG_CACHE_HOME/sourcemesh/compile-cache when absolute, else ~/.cache/sourcemesh/compile-cache, else none', () => {
  assert.equal(compileCacheDir({ XDG_CACHE_HOME: '/c' }, '/home/u'), '/c/sourcemesh/compile-cache');
  assert.equal(compileCacheDir({ XDG_CACHE_HOME: 'relative' }, '/home/u'), '/home/u/.cache/sourcemesh/compile-cache');
  assert.equal(compileCacheDir({ XDG_CACHE_HOME: '' }, '/home/u'), '/home/u/.cache/sourcemesh/compile-cache');
  assert.equal(compileCacheDir({}, '/home/u'), '/home/u/.cache/sourcemesh/compile-cache');
  assert.equal(compileCacheDir({}, undefined), undefined);
  assert.equal(compileCacheDir({}, ''), undefined);
});

test('cold, then warm: the cache is written on the first run, used on the next, and the archive is git\'s', async () => {
  const xdg = path.join(tmp, 'xdg-warm');
  const cold = archive({ HOME: tmp, XDG_CACHE_HOME: xdg });
  assert.equal(cold.status, 0, cold.stderr);
  assert.ok(cold.stdout.equals(expected), 'cold cache: the same bytes as git archive');
  const written = filesUnder(path.join(xdg, 'sourcemesh', 'compile-cache'));
  assert.ok(written.length >= 20, `the compile cache holds our modules, found ${written.length} files`);
  const warm = archive({ HOME: tmp, XDG_CACHE_HOME: xdg });
  assert.equal(warm.status, 0, warm.stderr);
  assert.ok(warm.stdout.equals(expected), 'warm cache: the same bytes as git archive');
  assert.equal(warm.stderr, cold.stderr);
  // Without XDG_CACHE_HOME it goes under the home directory.
  const home = path.join(tmp, 'home');
  assert.equal(archive({ HOME: home }).status, 0);
  assert.ok(filesUnder(path.join(home, '.cache', 'sourcemesh', 'compile-cache')).length >= 20);
});

test('a cache that cannot be written or read costs nothing but speed: same bytes, exit 0, no message', async () => {
  const reference = archive({ HOME: tmp, XDG_CACHE_HOME: path.join(tmp, 'xdg-ref') });
  assert.equal(reference.status, 0, reference.stderr);
  // Not a directory (root ignores permission bits, so a file stands in the way instead).
  const file = path.join(tmp, 'not-a-dir');
  await writeFile(file, 'x');
  const envs: Record<string, string>[] = [
    { HOME: tmp, XDG_CACHE_HOME: file },
    { HOME: file }, // ~/.cache cannot be made under a file
    { HOME: '' },
    { HOME: tmp, XDG_CACHE_HOME: path.join(tmp, 'xdg-off'), NODE_DISABLE_COMPILE_CACHE: '1' },
  ];
  for (const env of envs) {
    const r = archive(env);
    assert.equal(r.status, 0, `${JSON.stringify(env)}: ${r.stderr}`);
    assert.ok(r.stdout.equals(expected), JSON.stringify(env));
    assert.equal(r.stderr, reference.stderr, JSON.stringify(env));
  }
  assert.equal(filesUnder(path.join(tmp, 'xdg-off')).length, 0, 'NODE_DISABLE_COMPILE_CACHE=1 writes no cache');
});

test('a corrupted cache is compiled afresh: every entry overwritten with garbage or cut short', async () => {
  const xdg = path.join(tmp, 'xdg-corrupt');
  assert.equal(archive({ HOME: tmp, XDG_CACHE_HOME: xdg }).status, 0);
  const files = filesUnder(path.join(xdg, 'sourcemesh', 'compile-cache'));
  assert.ok(files.length >= 20);
  files.forEach((f, i) => writeFileSync(f, i % 2 === 0 ? Buffer.alloc(statSync(f).size, 0xa5) : Buffer.from('short')));
  const r = archive({ HOME: tmp, XDG_CACHE_HOME: xdg });
  assert.equal(r.status, 0, r.stderr);
  assert.ok(r.stdout.equals(expected));
  assert.doesNotMatch(r.stderr, /cache|warning/i);
});
