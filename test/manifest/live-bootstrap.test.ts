import assert from 'node:assert/strict';
import { readFile, readdir, mkdir, writeFile, cp } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { isSourcemeshError } from '../../src/errors.ts';
import { importStepsDir, parseSources, parseStepsManifest, snapshotPrefix } from '../../src/manifest/live-bootstrap.ts';
import { validateManifest } from '../../src/manifest/validate.ts';
import { LIVE_BOOTSTRAP_STEPS, runCli, tempDir } from '../helpers/run.ts';

test('the whole live-bootstrap fixture tree imports: every line, one entry per name', async () => {
  let lines = 0, f = 0, g = 0;
  for (const step of await readdir(LIVE_BOOTSTRAP_STEPS)) {
    const text = await readFile(path.join(LIVE_BOOTSTRAP_STEPS, step, 'sources'), 'utf8').catch(() => undefined);
    if (text === undefined) continue;
    const parsed = parseSources(text, step, step);
    lines += parsed.length;
    f += parsed.filter((p) => !p.distfile.git).length;
    g += parsed.filter((p) => p.distfile.git).length;
  }
  assert.deepEqual({ lines, f, g }, { lines: 407, f: 361, g: 46 });

  const m = await importStepsDir(LIVE_BOOTSTRAP_STEPS);
  validateManifest(structuredClone(m), 'imported'); // what we write is what we accept
  const names = m.distfiles.map((d) => d.name);
  assert.equal(new Set(names).size, names.length);
  assert.deepEqual(names, [...names].sort());
  assert.equal(m.distfiles.length, 312);

  // A gnulib snapshot shared by several steps: one entry, every step recorded in build order.
  const gnulib = m.distfiles.find((d) => d.name === 'gnulib-8f4538a5.tar.gz')!;
  assert.equal(gnulib.sha256, 'e207c0bb72093c3a72dde302fcfaa1dbda12a62172d47b73565883a92209ebab');
  assert.deepEqual(gnulib.urls, []);
  assert.deepEqual(gnulib.git, { repo: 'https://https.git.savannah.gnu.org/git/gnulib.git', ref: '8f4538a5', prefix: 'gnulib-8f4538a5/', compression: 'gzip-n', level: 6 });
  assert.ok(gnulib.steps!.length >= 2, `steps: ${gnulib.steps}`);

  // Steps with sources that steps/manifest does not build still count (after the listed ones).
  assert.ok(m.distfiles.some((d) => d.steps?.includes('perl-5.10.1')));
  const coreutils = m.distfiles.find((d) => d.name === 'coreutils-9.4.tar.xz')!;
  assert.equal(coreutils.git?.compression, 'xz');
  assert.equal(coreutils.git?.prefix, 'coreutils-9.4/');
  assert.deepEqual(coreutils.urls, ['http://git.savannah.gnu.org/cgit/coreutils.git/snapshot/coreutils-9.4.tar.xz']);
});

test('the before-network subset stops at the first improve directive mentioning network', async () => {
  const text = await readFile(path.join(LIVE_BOOTSTRAP_STEPS, 'manifest'), 'utf8');
  const { builds, beforeNetwork } = parseStepsManifest(text);
  assert.ok(beforeNetwork.length > 10 && beforeNetwork.length < builds.length);
  assert.deepEqual(builds.slice(0, beforeNetwork.length), beforeNetwork);
  const all = await importStepsDir(LIVE_BOOTSTRAP_STEPS);
  const early = await importStepsDir(LIVE_BOOTSTRAP_STEPS, { beforeNetwork: true });
  assert.ok(early.distfiles.length > 0 && early.distfiles.length < all.distfiles.length);
});

test("live-bootstrap's prefix rule: basename without .git, leading v before a digit dropped except on gitlab", () => {
  assert.equal(snapshotPrefix('https://git.savannah.gnu.org/git/coreutils.git', 'v9.4'), 'coreutils-9.4/');
  assert.equal(snapshotPrefix('https://gitlab.gnome.org/GNOME/libxml2.git', 'v2.9.9'), 'libxml2-v2.9.9/');
  assert.equal(snapshotPrefix('https://github.com/westes/flex', 'd160f02'), 'flex-d160f02/');
  assert.equal(snapshotPrefix('https://example.org/x.git', 'vim'), 'x-vim/');
});

const bad: [string, string, RegExp][] = [
  ['unknown line type', 'x http://a/b.tar.gz ' + 'a'.repeat(64), /:1: unknown line type "x"/],
  ['bad hex', 'f http://a/b.tar.gz 12zz', /:1: "12zz" is not a sha256/],
  ['missing checksum', 'f http://a/b.tar.gz', /:1: expected "f URL SHA256 \[NAME\]"/],
  ['too many fields', 'f http://a/b ' + 'a'.repeat(64) + ' n extra', /got 5 fields/],
  ['not a URL', 'f a/b.tar.gz ' + 'a'.repeat(64), /not a URL/],
  ['ftp URL', 'f ftp://a/b.tar.gz ' + 'a'.repeat(64), /not an http\(s\) URL/],
  ['path in name', 'f http://a/b.tar.gz ' + 'a'.repeat(64) + ' ../evil', /contains "\/"/],
  ['dot-dot name', 'f http://a/.. ' + 'a'.repeat(64), /relative directory name/],
  ['git without name', 'g https://r/x.git~v1 _ ' + 'a'.repeat(64), /must name its tarball/],
  ['git without ref', 'g https://r/x.git _ ' + 'a'.repeat(64) + ' x.tar.gz', /is not REPO~REF/],
];
for (const [what, line, re] of bad) {
  test(`a malformed sources line is an error naming file and line: ${what}`, () => {
    assert.throws(() => parseSources(`f http://a/ok.tar.gz ${'b'.repeat(64)}\n${line}\n`.replace(/^/, ''), 'steps/x/sources', 'x'), (err: unknown) => {
      assert.ok(isSourcemeshError(err, 'E_MANIFEST'));
      assert.match(err.message, /^steps\/x\/sources:2: /);
      assert.match(err.message.replace(':2:', ':1:'), re);
      return true;
    });
  });
}

test('one name with two checksums across steps: an error naming both places; the CLI exits 2', async (t) => {
  const dir = await tempDir(t);
  const steps = path.join(dir, 'steps');
  await mkdir(path.join(steps, 'a'), { recursive: true });
  await mkdir(path.join(steps, 'b'));
  await writeFile(path.join(steps, 'manifest'), 'build: a\nbuild: b\n');
  await writeFile(path.join(steps, 'a', 'sources'), `f http://x/f.tar.gz ${'a'.repeat(64)}\n`);
  await writeFile(path.join(steps, 'b', 'sources'), `f http://y/f.tar.gz ${'b'.repeat(64)}\n`);
  await assert.rejects(importStepsDir(steps), (err: unknown) => isSourcemeshError(err, 'E_MANIFEST') && /a\/sources:1 and .*b\/sources:1/.test(err.message));
  const r = await runCli(['import', 'live-bootstrap', steps]);
  assert.equal(r.code, 2);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /two checksums for one name/);
});

test('sourcemesh import live-bootstrap writes a manifest that fetch and verify accept', async (t) => {
  const dir = await tempDir(t);
  await cp(LIVE_BOOTSTRAP_STEPS, path.join(dir, 'steps'), { recursive: true });
  const out = path.join(dir, 'lb.json');
  const r = await runCli(['import', 'live-bootstrap', path.join(dir, 'steps'), '-o', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /312 distfiles/);
  const m = validateManifest(JSON.parse(await readFile(out, 'utf8')), out);
  assert.equal(m.distfiles.length, 312);
  const v = await runCli(['verify', dir, '--manifest', out, '--json']);
  assert.equal(v.code, 3);
  assert.equal(JSON.parse(v.stdout).missing.length, 312);
});
