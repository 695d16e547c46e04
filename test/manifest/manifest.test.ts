import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { isSourcemeshError } from '../../src/errors.ts';
import { canonicalJson } from '../../src/manifest/canonical.ts';
import { MANIFEST_FORMAT, type Manifest } from '../../src/manifest/distfile.ts';
import { parseManifestJson, validateManifest } from '../../src/manifest/validate.ts';
import { formatManifest, manifestDigest } from '../../src/manifest/write.ts';

const hex = 'e207c0bb72093c3a72dde302fcfaa1dbda12a62172d47b73565883a92209ebab';
const sample: Manifest = {
  format: MANIFEST_FORMAT,
  name: 'live-bootstrap',
  distfiles: [
    { name: 'bash-2.05b.tar.gz', sha256: 'ba03d412998cc54bd0b0f2d6c32100967d3137098affdc2d32e6e7c11b163fe4', urls: ['https://mirrors.kernel.org/gnu/bash/bash-2.05b.tar.gz'], steps: ['bash-2.05b'] },
    { name: 'gnulib-8f4538a5.tar.gz', sha256: hex, urls: [], git: { repo: 'https://git.savannah.gnu.org/git/gnulib.git', ref: '8f4538a5', prefix: 'gnulib-8f4538a5/', compression: 'gzip-n', level: 6 }, steps: ['coreutils-9.4'], size: 10, tarSha256: hex, merkleRoot: hex, cleanse: { from: hex, delete: ['*.info'] } },
  ],
};

test('a manifest round-trips through its file form unchanged, with a stable digest', () => {
  const text = formatManifest(sample);
  const back = parseManifestJson(text, 'm.json');
  assert.deepEqual(back, sample);
  assert.equal(formatManifest(back), text);
  assert.equal(manifestDigest(back), manifestDigest(sample));
});

test('the canonical form is RFC 8785: sorted keys, no whitespace, ECMAScript numbers and strings', () => {
  // Examples in the spirit of RFC 8785 §3.2.2 and §3.2.3.
  assert.equal(canonicalJson({ b: 1, a: [true, null, 'x'], c: { z: 1e21, y: 0.000001, x: -0 } }), '{"a":[true,null,"x"],"b":1,"c":{"x":0,"y":0.000001,"z":1e+21}}');
  assert.equal(canonicalJson({ '\u20ac': 1, '\r': 2, '\ud83d\ude00': 3, a: 4 }), '{"\\r":2,"a":4,"€":1,"😀":3}');
  assert.equal(canonicalJson('\u0007\u001f"\\'), '"\\u0007\\u001f\\"\\\\"');
  fc.assert(fc.property(fc.jsonValue(), (v) => {
    const c = canonicalJson(v);
    assert.equal(canonicalJson(JSON.parse(c)), c); // idempotent
  }), { numRuns: 300 });
});

const invalid: [string, (m: any) => void, RegExp][] = [
  ['wrong format', (m) => (m.format = 'other/v1'), /format/],
  ['bad hex', (m) => (m.distfiles[0].sha256 = 'ABC'), /distfiles\.0\.sha256 must be 64 lowercase hex/],
  ['path in name', (m) => (m.distfiles[0].name = 'a/b'), /distfiles\.0\.name "a\/b" contains "\/"/],
  ['non-http URL', (m) => (m.distfiles[0].urls = ['file:///etc/passwd']), /urls\.0 must be an absolute http\(s\) URL/],
  ['unknown key', (m) => (m.distfiles[0].extra = 1), /distfiles\.0/],
  ['duplicate name', (m) => m.distfiles.push(structuredClone(m.distfiles[0])), /listed twice/],
  ['negative size', (m) => (m.distfiles[0].size = -1), /size/],
  ['absolute prefix', (m) => (m.distfiles[1].git.prefix = '/abs/'), /prefix/],
  ['dot-dot prefix', (m) => (m.distfiles[1].git.prefix = 'a/../'), /prefix/],
];
for (const [what, mutate, re] of invalid) {
  test(`an invalid manifest is refused with E_MANIFEST naming the field: ${what}`, () => {
    const m = structuredClone(sample) as any;
    mutate(m);
    assert.throws(() => validateManifest(m, 'm.json'), (err: unknown) => isSourcemeshError(err, 'E_MANIFEST') && err.message.startsWith('m.json: ') && re.test(err.message));
  });
}

test('garbage is refused, never accepted (fuzz)', () => {
  fc.assert(fc.property(fc.string(), (s) => {
    try {
      parseManifestJson(s, 'fuzz');
      assert.fail('accepted garbage');
    } catch (err) {
      assert.ok(isSourcemeshError(err, 'E_MANIFEST'), String(err));
    }
  }), { numRuns: 500 });
});
