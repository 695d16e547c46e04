// Range and conditional-request decisions (RFC 9110 §13, §14), pure: tables from the RFC's rules, and
// properties over random ranges.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  decideRange, evaluatePreconditions, formatHttpDate, ifRangeHolds, multipartLayout, parseEntityTags, parseHttpDate, type Validators,
} from '../../src/mirror/ranges.ts';

const ETAG = `"${'ab'.repeat(32)}"`;
const LM = 784111777; // Sun, 06 Nov 1994 08:49:37 GMT, the RFC's example date
const v: Validators = { etag: ETAG, lastModified: LM, lastModifiedIsStrong: true };

test('Range: single, suffix, open-ended, clamped, and the cases that are ignored', () => {
  const size = 1000;
  const d = (h: string | undefined) => decideRange(h, size, 16);
  assert.deepEqual(d(undefined), { kind: 'full' });
  assert.deepEqual(d('bytes=0-99'), { kind: 'single', range: { start: 0, end: 99 } });
  assert.deepEqual(d('bytes=900-'), { kind: 'single', range: { start: 900, end: 999 } });
  assert.deepEqual(d('bytes=-100'), { kind: 'single', range: { start: 900, end: 999 } });
  assert.deepEqual(d('bytes=-5000'), { kind: 'single', range: { start: 0, end: 999 } });
  assert.deepEqual(d('bytes=990-5000'), { kind: 'single', range: { start: 990, end: 999 } });
  assert.deepEqual(d('bytes=990-99999999999999999999999'), { kind: 'single', range: { start: 990, end: 999 } });
  assert.deepEqual(d('BYTES=0-0'), { kind: 'single', range: { start: 0, end: 0 } }, 'range units are case-insensitive');
  assert.deepEqual(d('bytes= 0-1 ,, '), { kind: 'single', range: { start: 0, end: 1 } }, 'OWS and empty list elements');
  // Ignored (200): unknown unit, invalid syntax, last < first, no range at all.
  for (const h of ['items=0-1', 'bytes', 'bytes=', 'bytes=,', 'bytes=5-1', 'bytes=a-b', 'bytes=0-1;x', 'bytes=--1', 'bytes=1-2-3', 'bytes=0x1-2', 'bytes=+1-2']) {
    assert.deepEqual(d(h), { kind: 'full' }, h);
  }
  // Unsatisfiable (416): every first-pos at or past the end, or a zero suffix.
  for (const h of ['bytes=1000-', 'bytes=1000-2000', 'bytes=-0', 'bytes=5000-,2000-3000', 'bytes=99999999999999999999-']) {
    assert.deepEqual(d(h), { kind: 'unsatisfiable' }, h);
  }
});

test('Range: several ranges are multipart in the order asked; overlapping or too many give the whole file', () => {
  assert.deepEqual(decideRange('bytes=0-99,200-299', 1000, 16), { kind: 'multi', ranges: [{ start: 0, end: 99 }, { start: 200, end: 299 }] });
  assert.deepEqual(decideRange('bytes=500-599,0-9', 1000, 16), { kind: 'multi', ranges: [{ start: 500, end: 599 }, { start: 0, end: 9 }] });
  assert.deepEqual(decideRange('bytes=0-9,10-19', 1000, 16).kind, 'multi', 'adjacent ranges do not overlap');
  assert.deepEqual(decideRange('bytes=0-99,50-149', 1000, 16), { kind: 'full' });
  assert.deepEqual(decideRange('bytes=-100,0-', 1000, 16), { kind: 'full' });
  assert.deepEqual(decideRange(Array.from({ length: 17 }, (_, i) => `${i * 10}-${i * 10 + 1}`).join(',').replace(/^/, 'bytes='), 1000, 16), { kind: 'full' });
  // Only one satisfiable: a plain single range (never a one-part multipart).
  assert.deepEqual(decideRange('bytes=0-9,5000-6000', 1000, 16), { kind: 'single', range: { start: 0, end: 9 } });
  // An empty file: 200, since no 206 can describe an empty range.
  assert.deepEqual(decideRange('bytes=0-', 0, 16), { kind: 'full' });
  assert.deepEqual(decideRange('bytes=-1', 0, 16), { kind: 'full' });
});

test('Range property: every satisfiable range lies inside the file and is what the spec selects', () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 1 << 20 }), fc.nat(), fc.option(fc.nat(), { nil: undefined }), (size, first, lastOrNone) => {
    const last = lastOrNone === undefined ? undefined : first + lastOrNone;
    const r = decideRange(`bytes=${first}-${last ?? ''}`, size, 16);
    if (first >= size) return r.kind === 'unsatisfiable';
    return r.kind === 'single' && r.range.start === first && r.range.end === Math.min(last ?? size - 1, size - 1);
  }));
  fc.assert(fc.property(fc.integer({ min: 1, max: 1 << 20 }), fc.integer({ min: 1, max: 1 << 21 }), (size, suffix) => {
    const r = decideRange(`bytes=-${suffix}`, size, 16);
    return r.kind === 'single' && r.range.end === size - 1 && r.range.end - r.range.start + 1 === Math.min(suffix, size);
  }));
});

test('multipart/byteranges layout: boundaries, part headers and an exact Content-Length', () => {
  const body = Buffer.from('0123456789abcdefghij');
  const ranges = [{ start: 0, end: 2 }, { start: 10, end: 12 }];
  const layout = multipartLayout(ranges, body.length, 'application/octet-stream', 'B0UND');
  const whole = Buffer.concat([...layout.parts.flatMap((p) => [p.head, body.subarray(p.range.start, p.range.end + 1)]), layout.tail]);
  assert.equal(layout.length, whole.length);
  assert.equal(layout.contentType, 'multipart/byteranges; boundary=B0UND');
  assert.equal(whole.toString(), '--B0UND\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 0-2/20\r\n\r\n012'
    + '\r\n--B0UND\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 10-12/20\r\n\r\nabc\r\n--B0UND--\r\n');
  assert.throws(() => multipartLayout(ranges, 20, 'x', 'bad boundary with spaces'), RangeError);
});

test('HTTP-date: IMF-fixdate and the two obsolete forms; nothing else', () => {
  assert.equal(parseHttpDate('Sun, 06 Nov 1994 08:49:37 GMT'), LM);
  assert.equal(parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT'), LM);
  assert.equal(parseHttpDate('Sun Nov  6 08:49:37 1994'), LM);
  assert.equal(formatHttpDate(LM), 'Sun, 06 Nov 1994 08:49:37 GMT');
  for (const bad of ['', '784111777', '1994-11-06T08:49:37Z', 'Sun, 06 Nov 1994 08:49:37 UTC', 'Sun, 31 Feb 1994 08:49:37 GMT', 'Sun, 06 Nov 1994 24:00:00 GMT', 'yesterday', 'Sun, 6 Nov 1994 08:49:37 GMT']) {
    assert.equal(parseHttpDate(bad), undefined, bad);
  }
});

test('entity-tag lists', () => {
  assert.deepEqual(parseEntityTags('"a", W/"b" ,"c"'), [{ weak: false, opaque: '"a"' }, { weak: true, opaque: '"b"' }, { weak: false, opaque: '"c"' }]);
  assert.equal(parseEntityTags('*'), '*');
  for (const bad of ['a', '"a', '"a" "b"', 'W/a', '"a"x', '', '"a b"']) assert.equal(parseEntityTags(bad), undefined, bad);
});

test('preconditions in RFC 9110 §13.2.2 order', () => {
  const p = (h: Parameters<typeof evaluatePreconditions>[0], method: 'GET' | 'HEAD' = 'GET') => evaluatePreconditions(h, v, method);
  const date = formatHttpDate(LM);
  const later = formatHttpDate(LM + 60);
  const earlier = formatHttpDate(LM - 60);
  assert.deepEqual(p({}), { status: 'proceed', useRange: false });
  // If-None-Match: weak comparison, * matches, 304 for GET and HEAD.
  assert.deepEqual(p({ ifNoneMatch: ETAG }), { status: 304 });
  assert.deepEqual(p({ ifNoneMatch: `"x", W/${ETAG}` }, 'HEAD'), { status: 304 });
  assert.deepEqual(p({ ifNoneMatch: '*' }), { status: 304 });
  assert.deepEqual(p({ ifNoneMatch: '"other"' }).status, 'proceed');
  // If-Modified-Since only without If-None-Match.
  assert.deepEqual(p({ ifModifiedSince: date }), { status: 304 });
  assert.deepEqual(p({ ifModifiedSince: later }), { status: 304 });
  assert.deepEqual(p({ ifModifiedSince: earlier }).status, 'proceed');
  assert.deepEqual(p({ ifModifiedSince: 'garbage' }).status, 'proceed');
  assert.deepEqual(p({ ifNoneMatch: '"other"', ifModifiedSince: later }).status, 'proceed');
  // If-Match (strong) and If-Unmodified-Since: 412.
  assert.deepEqual(p({ ifMatch: `W/${ETAG}` }), { status: 412 });
  assert.deepEqual(p({ ifMatch: `"x", ${ETAG}` }).status, 'proceed');
  assert.deepEqual(p({ ifUnmodifiedSince: earlier }), { status: 412 });
  assert.deepEqual(p({ ifUnmodifiedSince: date }).status, 'proceed');
  assert.deepEqual(p({ ifMatch: ETAG, ifUnmodifiedSince: earlier }).status, 'proceed', 'If-Unmodified-Since is ignored with If-Match');
  // Range: GET only; If-Range decides.
  assert.deepEqual(p({ range: 'bytes=0-1' }), { status: 'proceed', useRange: true });
  assert.deepEqual(p({ range: 'bytes=0-1' }, 'HEAD'), { status: 'proceed', useRange: false });
  assert.deepEqual(p({ range: 'bytes=0-1', ifRange: ETAG }), { status: 'proceed', useRange: true });
  assert.deepEqual(p({ range: 'bytes=0-1', ifRange: '"old"' }), { status: 'proceed', useRange: false });
  assert.deepEqual(p({ range: 'bytes=0-1', ifRange: date }), { status: 'proceed', useRange: true });
  assert.deepEqual(p({ range: 'bytes=0-1', ifRange: later }), { status: 'proceed', useRange: false });
});

test('If-Range: strong tags only, exact dates only, and only when the date is a strong validator', () => {
  assert.equal(ifRangeHolds(ETAG, v), true);
  assert.equal(ifRangeHolds(`W/${ETAG}`, v), false, 'a weak tag never holds');
  assert.equal(ifRangeHolds(`${ETAG}, "x"`, v), false, 'one tag, not a list');
  assert.equal(ifRangeHolds(formatHttpDate(LM), v), true);
  assert.equal(ifRangeHolds(formatHttpDate(LM), { ...v, lastModifiedIsStrong: false }), false);
  assert.equal(ifRangeHolds(formatHttpDate(LM + 1), v), false);
  assert.equal(ifRangeHolds('not a date', v), false);
});
