// Break 7 of issue 11: distfile names that pass the manifest but land somewhere other than where they
// say. Two lone surrogates both became U+FFFD on disk ("2 fetched", then verify: 2 missing, 1 extra);
// a leading dot is accepted but never served; U+202E makes a name display as another; NFC and NFD
// spellings (or two cases) of one name are one file on macOS and Windows. The rule is in
// docs/FORMATS.md (Manifest, "Names").
import assert from 'node:assert/strict';
import { readFile, readdir, writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { isSourcemeshError } from '../../src/errors.ts';
import { nameProblem } from '../../src/manifest/distfile.ts';
import { importStepsDir, parseSources } from '../../src/manifest/live-bootstrap.ts';
import { validateManifest } from '../../src/manifest/validate.ts';
import { bytes, distfile, writeManifest } from '../helpers/distfiles.ts';
import { startOrigin } from '../helpers/origin.ts';
import { LIVE_BOOTSTRAP_STEPS, runCli, tempDir } from '../helpers/run.ts';

const A = bytes(2000, 7);
const B = bytes(3000, 8);

test('two lone surrogates are refused before anything is fetched: E_MANIFEST naming the entry, exit 2', async (t) => {
  const dir = await tempDir(t);
  const origin = await startOrigin({ '/a': { body: A }, '/b': { body: B } });
  t.after(() => origin.close());
  const m = await writeManifest(dir, [distfile('\ud800', A, [`${origin.url}/a`]), distfile('\udc00', B, [`${origin.url}/b`])]);
  const out = path.join(dir, 'distfiles');
  const r = await runCli(['fetch', m, '-o', out], { env: { SOURCEMESH_STORE: path.join(dir, 'store') } });
  assert.equal(r.code, 2, r.stderr + r.stdout);
  assert.match(r.stderr, /E_MANIFEST/);
  assert.match(r.stderr, /distfiles\.0\.name "\\u\{d800\}" is not well-formed Unicode \(a lone surrogate\)/);
  assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
  assert.equal(origin.log.length, 0, 'nothing was requested');
  assert.deepEqual(await readdir(out).catch(() => []), []);
});

const sha = 'e207c0bb72093c3a72dde302fcfaa1dbda12a62172d47b73565883a92209ebab';
const manifestWith = (...names: string[]) => ({ format: 'sourcemesh.manifest/v1', name: 't', distfiles: names.map((name) => ({ name, sha256: sha, urls: [] })) });
const refused = (names: string[], re: RegExp) => assert.throws(() => validateManifest(manifestWith(...names), 'm.json'), (err: unknown) => {
  assert.ok(isSourcemeshError(err, 'E_MANIFEST'), String(err));
  assert.match(err.message, re);
  // The message itself never carries the character that would reorder or hide what the terminal shows.
  assert.doesNotMatch(err.message, /[\u202a-\u202e\u2066-\u2069\u200b-\u200f\ufeff\u0000-\u001f\u007f-\u009f]/);
  return true;
});

const badNames: [string, string, RegExp][] = [
  ['a lone high surrogate', 'x\ud800.tar.gz', /lone surrogate/],
  ['a lone low surrogate', '\udc00', /lone surrogate/],
  ['a leading dot (a mirror never serves it)', '.hidden.tar.gz', /begins with "\."/],
  ['right-to-left override U+202E', 'evil\u202egz.tar.exe', /U\+202E/],
  ['left-to-right isolate U+2066', 'a\u2066b.tar', /U\+2066/],
  ['zero-width space U+200B', 'gcc\u200b-4.7.4.tar.bz2', /U\+200B/],
  ['byte order mark U+FEFF', '\ufeffbash.tar.gz', /U\+FEFF/],
  ['C1 control U+0085', 'a\u0085b', /U\+0085/],
  ['line separator U+2028', 'a\u2028b', /U\+2028/],
  ['no-break space U+00A0 (shows as a space)', 'a\u00a0b', /U\+00A0/],
  ['ESC', 'a\u001b[31mred', /U\+001B/],
];
for (const [what, name, re] of badNames) {
  test(`a name with ${what} is refused with E_MANIFEST naming the entry`, () => {
    assert.notEqual(nameProblem(name), undefined);
    refused(['ok.tar.gz', name], new RegExp(`distfiles\\.\\d\\.name .*${re.source}`));
  });
}

test('names that differ only by Unicode normalization or by case are one file on some file systems: refused', () => {
  refused(['caf\u00e9.tar.gz', 'cafe\u0301.tar.gz'], /"caf\\u\{301\}|same file|differ only/);
  refused(['Foo-1.0.tar.gz', 'foo-1.0.tar.gz'], /differ only/);
  refused(['x.tar.gz', 'x.tar.gz'], /listed twice/);
  // Distinct names stay distinct: well-formed astral characters, a space, a dot inside.
  const ok = validateManifest(manifestWith('caf\u00e9.tar.gz', 'd\u{1f600}.tar', 'a b.tar', 'v1.2.3.tar'), 'm.json');
  assert.equal(ok.distfiles.length, 4);
});

test('the live-bootstrap importer applies the same rules, naming file and line', async (t) => {
  const line = (name: string) => `f https://example.org/x.tar.gz ${sha} ${name}\n`;
  for (const name of ['.x.tar.gz', 'x\u202e.tar.gz', 'x\u200d.tar.gz']) {
    assert.throws(() => parseSources(line(name), 'steps/a/sources'), (err: unknown) => isSourcemeshError(err, 'E_MANIFEST') && /^steps\/a\/sources:1: /.test(err.message));
  }
  // NFC and NFD spellings in two steps: one file on macOS, so refused naming both places.
  const dir = await tempDir(t);
  const steps = path.join(dir, 'steps');
  for (const [step, name] of [['a', 'caf\u00e9.tar.gz'], ['b', 'cafe\u0301.tar.gz']] as const) {
    await mkdir(path.join(steps, step), { recursive: true });
    await writeFile(path.join(steps, step, 'sources'), line(name));
  }
  await writeFile(path.join(steps, 'manifest'), 'build: a\nbuild: b\n');
  await assert.rejects(importStepsDir(steps), (err: unknown) => isSourcemeshError(err, 'E_MANIFEST') && /a\/sources:1 and .*b\/sources:1/.test(err.message) && /differ only/.test(err.message));
});

test('no real live-bootstrap name is refused by the rule', async () => {
  const m = await importStepsDir(LIVE_BOOTSTRAP_STEPS);
  assert.ok(m.distfiles.length > 300);
  for (const d of m.distfiles) assert.equal(nameProblem(d.name), undefined, d.name);
  // ... and the manifest it makes validates as a whole (no normalization or case duplicates).
  validateManifest(JSON.parse(JSON.stringify(m)), 'imported');
  assert.ok((await readFile(path.join(LIVE_BOOTSTRAP_STEPS, 'manifest'), 'utf8')).length > 0);
});
