// What a manifest pins about a distfile's bytes: its `sha256`, its `tarSha256` (the decompressed tar's
// sha256), or both. A file is accepted when every pinned hash matches. With only `tarSha256` pinned, any
// compression of the same tar is accepted (a mirror may regenerate a snapshot with another compressor),
// and the store keeps it under the sha256 of the bytes that verified.
import { SourcemeshError } from '../errors.ts';
import type { Distfile } from '../manifest/distfile.ts';
import { digestsEqual, sha256File } from './digest.ts';
import { tarDigestOfFile } from './tar-digest.ts';

export type PinCheck =
  | { ok: true; sha256: string; tarSha256?: string }
  | { ok: false; sha256: string; field: 'sha256' | 'tarSha256'; expected: string; actual: string };

/** A one-line account of a failed check, for blame and reports. */
export function describeMismatch(c: Extract<PinCheck, { ok: false }>): string {
  return `${c.field} ${c.actual}, expected ${c.expected}`;
}

/** Check `file` (a complete download or a published file) against every hash `d` pins; streams. */
export async function checkPinned(file: string, d: Distfile, what = file): Promise<PinCheck> {
  if (d.sha256 === undefined && d.tarSha256 === undefined) {
    throw new SourcemeshError('E_MANIFEST', `${d.name}: pins neither sha256 nor tarSha256`, { name: d.name });
  }
  if (d.tarSha256 === undefined) {
    const sha256 = await sha256File(file);
    return digestsEqual(sha256, d.sha256!) ? { ok: true, sha256 } : { ok: false, sha256, field: 'sha256', expected: d.sha256!, actual: sha256 };
  }
  // Bytes whose sha256 already differs need not be decompressed.
  if (d.sha256 !== undefined) {
    const sha256 = await sha256File(file);
    if (!digestsEqual(sha256, d.sha256)) return { ok: false, sha256, field: 'sha256', expected: d.sha256, actual: sha256 };
  }
  let digest;
  try {
    digest = await tarDigestOfFile(file, what);
  } catch (err) {
    // Bytes that do not even decompress cannot be the pinned tar: a mismatch of the source, not ours.
    if (err instanceof SourcemeshError && err.code === 'E_ARCHIVE') {
      const sha256 = await sha256File(file);
      return { ok: false, sha256, field: 'tarSha256', expected: d.tarSha256, actual: `none (${err.message})` };
    }
    throw err;
  }
  if (!digestsEqual(digest.tarSha256, d.tarSha256)) return { ok: false, sha256: digest.sha256, field: 'tarSha256', expected: d.tarSha256, actual: digest.tarSha256 };
  return { ok: true, sha256: digest.sha256, tarSha256: digest.tarSha256 };
}
