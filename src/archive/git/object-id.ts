// Object ids and object types of SHA-1 repositories.
//
// SHA-256 repositories (`extensions.objectFormat = sha256`, gitformat-pack "SHA-256 transition") differ in the
// width of every id: 32 raw bytes and 64 hex digits in tree entries, pack index names, REF_DELTA bases, refs,
// commit and tag headers and the tar's pax `comment=` record. Every place that assumes 20/40 uses these
// constants; the repository opener refuses SHA-256 repositories before any of them is read.

import { SourcemeshError } from '../../errors.ts';

/** Raw bytes of a SHA-1 object id (SHA-256: 32). */
export const OID_BYTES = 20;
/** Hex digits of a SHA-1 object id (SHA-256: 64). */
export const OID_HEX = 40;

export type ObjectType = 'commit' | 'tree' | 'blob' | 'tag';

/** A raw object id: OID_BYTES bytes (often a view into a tree object). */
export type Oid = Buffer;

const HEX_RE = /^[0-9a-f]+$/;

export function isHex(s: string): boolean {
  return HEX_RE.test(s);
}

export function oidHex(oid: Oid): string {
  return oid.toString('hex', 0, OID_BYTES);
}

/** Parse a full lower- or upper-case hex id; null when `s` is not exactly OID_HEX hex digits. */
export function parseOidHex(s: string): Oid | null {
  if (s.length !== OID_HEX) return null;
  const lower = s.toLowerCase();
  if (!isHex(lower)) return null;
  return Buffer.from(lower, 'hex');
}

/** What an error is about: a name, or a function making it (only called when an error is raised). */
export type What = string | (() => string);

/** E_ARCHIVE for malformed or hostile repository content, naming the object (or file) and the cause. */
export function corrupt(what: What, cause: string, details: Record<string, unknown> = {}, err?: unknown): SourcemeshError {
  const name = typeof what === 'string' ? what : what();
  return new SourcemeshError('E_ARCHIVE', `${name}: ${cause}`, details, err === undefined ? undefined : { cause: err });
}

export function objectName(oid: Oid | string): string {
  return `object ${typeof oid === 'string' ? oid : oidHex(oid)}`;
}
