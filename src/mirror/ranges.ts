// Range requests (RFC 9110 §14) and conditional requests (RFC 9110 §13) for the mirror server, as pure
// decisions: request header values in (attacker-controlled: parsed strictly, bounded, never trusted),
// what to answer out. The server applies the decision; nothing here does I/O or reads a clock.

/** An inclusive byte range of a representation (RFC 9110 §14.1.1: first-pos and last-pos). */
export interface ByteRange {
  start: number;
  end: number;
}

/** What the server knows about the representation it would send. */
export interface Validators {
  /** The strong entity tag, with its quotes: `"<sha256 hex>"`. */
  etag: string;
  /** Last-Modified, whole seconds since the epoch. */
  lastModified: number;
  /**
   * RFC 9110 §8.8.2.2: a Last-Modified date is only a strong validator when the representation was
   * last changed at least a second before the response is generated. The server says whether it is.
   */
  lastModifiedIsStrong: boolean;
}

export type RangeDecision =
  | { kind: 'full' } // 200 with the whole representation
  | { kind: 'single'; range: ByteRange } // 206 with Content-Range
  | { kind: 'multi'; ranges: ByteRange[] } // 206 multipart/byteranges
  | { kind: 'unsatisfiable' }; // 416 with Content-Range: bytes */SIZE

const SINGLE = /^(\d+)-(\d*)$/;
const SUFFIX = /^-(\d+)$/;

/**
 * Decide what a `Range` header asks of a representation of `size` bytes.
 *
 * RFC 9110 §14.2: a server ignores a Range with a unit it does not support or an invalid range set
 * (answering 200), answers 416 when no range is satisfiable, and MAY ignore range sets with many small
 * or overlapping ranges. Our choices:
 * - more than `maxRanges` ranges, or two ranges that overlap: the whole file (200). Coalescing would be
 *   allowed too, but a client asking that has no use for parts, and the whole file is one cheap stream
 *   where a hostile client could otherwise make us write thousands of part headers;
 * - ranges that do not overlap are sent in the order asked (allowed; a client may depend on it);
 * - several ranges of which only one is satisfiable: a single-part 206 for that one (§14.6 says a
 *   server never answers multipart with a single part);
 * - an empty representation: 200 (a 206 cannot describe an empty range, and 416 would tell a resuming
 *   client that its zero bytes are wrong).
 */
export function decideRange(header: string | undefined, size: number, maxRanges: number): RangeDecision {
  if (header === undefined) return { kind: 'full' };
  const eq = header.indexOf('=');
  if (eq < 0) return { kind: 'full' };
  // RFC 9110 §14.1: range unit names are case-insensitive; "bytes" is the only one we support.
  if (header.slice(0, eq).toLowerCase() !== 'bytes') return { kind: 'full' };
  const satisfiable: ByteRange[] = [];
  let specs = 0;
  for (const raw of header.slice(eq + 1).split(',')) {
    // RFC 9110 §5.6.1: list elements may be surrounded by OWS, and empty elements are ignored.
    const spec = raw.replace(/^[ \t]+|[ \t]+$/g, '');
    if (spec === '') continue;
    if (++specs > maxRanges) return { kind: 'full' };
    let m = SINGLE.exec(spec);
    if (m) {
      // Digits beyond 2^53 lose precision but stay larger than any size, which is all that matters.
      const first = Number(m[1]);
      const last = m[2] === '' ? Infinity : Number(m[2]);
      if (last < first) return { kind: 'full' }; // invalid int-range: the whole header is ignored
      if (first < size) satisfiable.push({ start: first, end: Math.min(last, size - 1) });
      continue;
    }
    m = SUFFIX.exec(spec);
    if (m) {
      const length = Number(m[1]);
      if (length > 0 && size > 0) satisfiable.push({ start: Math.max(0, size - length), end: size - 1 });
      continue;
    }
    return { kind: 'full' }; // other-range or garbage: not a range set we understand
  }
  if (specs === 0) return { kind: 'full' }; // RFC 9110: range-set = 1#range-spec
  if (size === 0) return { kind: 'full' };
  if (satisfiable.length === 0) return { kind: 'unsatisfiable' };
  if (satisfiable.length === 1) return { kind: 'single', range: satisfiable[0]! };
  const sorted = [...satisfiable].sort((a, b) => a.start - b.start);
  for (let i = 1; i < sorted.length; i++) if (sorted[i]!.start <= sorted[i - 1]!.end) return { kind: 'full' };
  return { kind: 'multi', ranges: satisfiable };
}

/** `Content-Range` of a 206 part (RFC 9110 §14.4): `bytes FIRST-LAST/SIZE`. */
export function contentRange(range: ByteRange, size: number): string {
  return `bytes ${range.start}-${range.end}/${size}`;
}

/** `Content-Range` of a 416 (RFC 9110 §14.4): an asterisk for the range, then the size. */
export function unsatisfiedRange(size: number): string {
  return `bytes */${size}`;
}

export interface MultipartLayout {
  contentType: string;
  parts: { head: Buffer; range: ByteRange }[];
  tail: Buffer;
  /** The exact body length, for Content-Length. */
  length: number;
}

/**
 * The body of a multipart/byteranges 206 (RFC 9110 §14.6, RFC 2046 §5.1.1): each part is a boundary
 * line, its Content-Type and Content-Range, a blank line and the bytes; the CRLF before each boundary
 * belongs to the boundary; the body ends with the close delimiter. `boundary` is random (the caller's),
 * at most 70 characters of the RFC 2046 bchars.
 */
export function multipartLayout(ranges: readonly ByteRange[], size: number, partType: string, boundary: string): MultipartLayout {
  if (!/^[0-9A-Za-z'()+_,\-./:=?]{1,70}$/.test(boundary)) throw new RangeError('invalid multipart boundary');
  const parts = ranges.map((range, i) => ({
    head: Buffer.from(`${i === 0 ? '' : '\r\n'}--${boundary}\r\nContent-Type: ${partType}\r\nContent-Range: ${contentRange(range, size)}\r\n\r\n`, 'latin1'),
    range,
  }));
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`, 'latin1');
  const length = parts.reduce((n, p) => n + p.head.length + (p.range.end - p.range.start + 1), tail.length);
  return { contentType: `multipart/byteranges; boundary=${boundary}`, parts, tail, length };
}

// ---------------------------------------------------------------------------------------------------
// Conditional requests

export interface ConditionalHeaders {
  ifMatch?: string;
  ifNoneMatch?: string;
  ifModifiedSince?: string;
  ifUnmodifiedSince?: string;
  ifRange?: string;
  range?: string;
}

export type Precondition =
  | { status: 'proceed'; /** Whether the Range header applies (If-Range held, or was absent). */ useRange: boolean }
  | { status: 304 }
  | { status: 412 };

/**
 * RFC 9110 §13.2.2, in its order: If-Match, else If-Unmodified-Since (412 when false); If-None-Match,
 * else If-Modified-Since (304 for GET and HEAD when false); then If-Range decides whether Range applies.
 * Only GET and HEAD reach here. Range applies to GET only (§14.2: GET is the only method for which range
 * handling is defined), and If-Range only with a Range (§13.1.5).
 */
export function evaluatePreconditions(h: ConditionalHeaders, v: Validators, method: 'GET' | 'HEAD'): Precondition {
  if (h.ifMatch !== undefined) {
    const tags = parseEntityTags(h.ifMatch);
    // "*" matches any current representation; otherwise strong comparison (§8.8.3.2). Malformed: false.
    const ok = tags === '*' || (tags !== undefined && tags.some((t) => !t.weak && t.opaque === v.etag));
    if (!ok) return { status: 412 };
  } else if (h.ifUnmodifiedSince !== undefined) {
    const date = parseHttpDate(h.ifUnmodifiedSince);
    if (date !== undefined && v.lastModified > date) return { status: 412 };
  }
  if (h.ifNoneMatch !== undefined) {
    const tags = parseEntityTags(h.ifNoneMatch);
    // Weak comparison (§13.1.2): W/"x" matches "x". A malformed list matches nothing.
    if (tags === '*' || (tags !== undefined && tags.some((t) => t.opaque === v.etag))) return { status: 304 };
  } else if (h.ifModifiedSince !== undefined) {
    const date = parseHttpDate(h.ifModifiedSince);
    if (date !== undefined && v.lastModified <= date) return { status: 304 };
  }
  if (method !== 'GET' || h.range === undefined) return { status: 'proceed', useRange: false };
  if (h.ifRange === undefined) return { status: 'proceed', useRange: true };
  return { status: 'proceed', useRange: ifRangeHolds(h.ifRange, v) };
}

/**
 * RFC 9110 §13.1.5: If-Range holds when its entity tag is strong and equal to ours (a weak tag never
 * holds), or when its date equals our Last-Modified exactly and that date is a strong validator.
 * Anything else, malformed values included, means "send the whole representation".
 */
export function ifRangeHolds(value: string, v: Validators): boolean {
  const text = value.trim();
  if (text.startsWith('"') || text.startsWith('W/')) {
    const tags = parseEntityTags(text);
    return tags !== undefined && tags !== '*' && tags.length === 1 && !tags[0]!.weak && tags[0]!.opaque === v.etag;
  }
  const date = parseHttpDate(text);
  return date !== undefined && v.lastModifiedIsStrong && date === v.lastModified;
}

export interface EntityTag {
  weak: boolean;
  /** The opaque tag with its quotes, as sent in ETag. */
  opaque: string;
}

/**
 * `*` or a list of entity tags (RFC 9110 §8.8.3: entity-tag = [ W/ ] DQUOTE *etagc DQUOTE, etagc is
 * %x21 / %x23-7E / obs-text). Returns undefined when malformed.
 */
export function parseEntityTags(value: string): EntityTag[] | '*' | undefined {
  const text = value.trim();
  if (text === '*') return '*';
  const tags: EntityTag[] = [];
  let i = 0;
  for (;;) {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === ',')) i++;
    if (i >= text.length) break;
    let weak = false;
    if (text.startsWith('W/', i)) {
      weak = true;
      i += 2;
    }
    if (text[i] !== '"') return undefined;
    const close = text.indexOf('"', i + 1);
    if (close < 0) return undefined;
    const opaque = text.slice(i, close + 1);
    if (!/^"[\x21\x23-\x7e\x80-\xff]*"$/.test(opaque)) return undefined;
    tags.push({ weak, opaque });
    i = close + 1;
    // After a tag: only OWS then a comma, or the end.
    while (i < text.length && (text[i] === ' ' || text[i] === '\t')) i++;
    if (i < text.length && text[i] !== ',') return undefined;
  }
  return tags.length ? tags : undefined;
}

// ---------------------------------------------------------------------------------------------------
// HTTP dates (RFC 9110 §5.6.7)

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const IMF_FIXDATE = /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d\d) ([A-Z][a-z]{2}) (\d{4}) (\d\d):(\d\d):(\d\d) GMT$/;
const RFC850_DATE = /^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), (\d\d)-([A-Z][a-z]{2})-(\d\d) (\d\d):(\d\d):(\d\d) GMT$/;
const ASCTIME_DATE = /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) ([A-Z][a-z]{2}) ([ \d]\d) (\d\d):(\d\d):(\d\d) (\d{4})$/;

/**
 * An HTTP-date as whole seconds since the epoch, or undefined when it is not one. Recipients must accept
 * IMF-fixdate and the two obsolete forms (rfc850-date, asctime-date); nothing else is a date (in
 * particular not what Date.parse would guess from arbitrary text).
 */
export function parseHttpDate(value: string): number | undefined {
  const text = value.trim();
  let day: string, month: string, year: number, hh: string, mm: string, ss: string;
  let m = IMF_FIXDATE.exec(text);
  if (m) {
    [day, month, year, hh, mm, ss] = [m[1]!, m[2]!, Number(m[3]), m[4]!, m[5]!, m[6]!];
  } else if ((m = RFC850_DATE.exec(text))) {
    // Two-digit years: RFC 9110 says to take the most recent past year with those digits unless that
    // is more than 50 years ago; without a clock, 70-99 are 19xx and 00-69 are 20xx, the usual pivot.
    const yy = Number(m[3]);
    [day, month, year, hh, mm, ss] = [m[1]!, m[2]!, yy < 70 ? 2000 + yy : 1900 + yy, m[4]!, m[5]!, m[6]!];
  } else if ((m = ASCTIME_DATE.exec(text))) {
    [month, day, hh, mm, ss, year] = [m[1]!, m[2]!.trim(), m[3]!, m[4]!, m[5]!, Number(m[6])];
  } else {
    return undefined;
  }
  const mon = MONTHS.indexOf(month);
  const [d, h, mi, s] = [Number(day), Number(hh), Number(mm), Number(ss)];
  if (mon < 0 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) return undefined;
  const ms = Date.UTC(year, mon, d, h, mi, Math.min(s, 59));
  if (new Date(ms).getUTCDate() !== d) return undefined; // 31 Feb and the like
  return ms / 1000;
}

/** An IMF-fixdate for whole seconds since the epoch: `Sun, 06 Nov 1994 08:49:37 GMT`. */
export function formatHttpDate(seconds: number): string {
  return new Date(seconds * 1000).toUTCString();
}
