// scripts/test-deps.ts, `npm test`'s first step: the decision in-process, then the script itself, as root
// (nothing missing here: pretest has just run) and as an unprivileged user who lacks a package.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmod, copyFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { decide, PACKAGES, wantedPackages } from '../../scripts/test-deps.ts';
import { ROOT, tempDir } from '../helpers/run.ts';

const SCRIPT = path.join(ROOT, 'scripts/test-deps.ts');

test('decide: nothing missing goes on; root installs what is missing; anyone else stops with the command', () => {
  assert.deepEqual(decide([], false), { kind: 'ok' });
  assert.deepEqual(decide([], true), { kind: 'ok' });
  assert.deepEqual(decide(['aria2', 'wget'], true), { kind: 'install', packages: ['aria2', 'wget'] });
  const stop = decide(['aria2', 'wget'], false);
  assert.equal(stop.kind, 'stop');
  assert.equal(stop.kind === 'stop' && stop.message,
    'test-deps: missing Debian packages needed by the tests: aria2 wget; run: sudo apt-get update && sudo apt-get install -y --no-install-recommends aria2 wget');
});

test('the one list: test packages by default, bench packages with --bench, names checked', () => {
  const tests = wantedPackages(false, {});
  assert.ok(tests.includes('dante-server') && tests.includes('golang-golang-x-mod-dev') && tests.includes('python3-libtorrent'));
  assert.ok(tests.includes('nginx'), 'mirror nginx-config is tested against the real nginx');
  assert.ok(!tests.includes('wrk') && wantedPackages(true, {}).includes('wrk'), 'a bench-only package is left out of the test list');
  assert.deepEqual(wantedPackages(true, {}), PACKAGES.map((p) => p.name));
  assert.equal(new Set(PACKAGES.map((p) => p.name)).size, PACKAGES.length, 'each package once');
  assert.deepEqual(wantedPackages(false, { SOURCEMESH_TEST_DEPS_EXTRA: 'a1, b-2' }).slice(-2), ['a1', 'b-2']);
  assert.throws(() => wantedPackages(false, { SOURCEMESH_TEST_DEPS_EXTRA: '--force-yes' }), /not a Debian package name/);
});

test('as root with every package installed: exit 0, nothing printed, apt-get not run', () => {
  assert.equal(process.getuid?.(), 0, 'the test suite runs as root (README: Tests)');
  // The test list, as pretest ran it: the bench-only packages (`--bench`) need not be here.
  const r = spawnSync(process.execPath, [SCRIPT], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout + r.stderr, '');
});

test('not root, one package missing: stops at once, exit 1, one line with the command to run', async (t) => {
  // The script copied where user nobody can read it (the checkout may be in a private home directory).
  const dir = await tempDir(t);
  await chmod(dir, 0o755);
  const script = path.join(dir, 'test-deps.ts');
  await copyFile(SCRIPT, script);
  await chmod(script, 0o644);
  const asNobody = (extra: string) => spawnSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, script], {
    encoding: 'utf8', timeout: 30_000, cwd: dir, env: { PATH: process.env.PATH, SOURCEMESH_TEST_DEPS_EXTRA: extra },
  });
  const ok = asNobody('');
  assert.equal(ok.status, 0, `as nobody with nothing missing (node must be readable by nobody): ${ok.stderr}`);
  const start = process.hrtime.bigint();
  const r = asNobody('sourcemesh-no-such-package');
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  assert.equal(r.status, 1, r.stderr);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr,
    'test-deps: missing Debian packages needed by the tests: sourcemesh-no-such-package; run: sudo apt-get update && sudo apt-get install -y --no-install-recommends sourcemesh-no-such-package\n');
  assert.ok(ms < 10_000, `at once (${ms} ms), no apt-get`);
  const bad = asNobody('x;rm');
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /^test-deps: SOURCEMESH_TEST_DEPS_EXTRA: "x;rm" is not a Debian package name\n$/);
});
