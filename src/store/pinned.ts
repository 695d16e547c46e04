// What a manifest pins about a distfile's bytes: its `sha256`, its `tarSha256` (the decompressed tar's
// sha256), or both. A file is accepted when every pinned hash matches. With only `tarSha256` pinned, any
// compression of the same tar is accepted (a mirror may regenerate a snapshot with another compressor),
// and the store keeps it under the sha256 of the bytes that verified, with a record of its tarSha256 so
// that later runs do not decompress it again.
import { SourcemeshError } from '../errors.ts';
import type { Distfile } from '../manifest/distfile.ts';
import { digestsEqual, sha256File } from './digest.ts';
import type { Store } from './store.ts';
import { tarDigestOfFile } from './tar-digest.ts';

export type PinCheck =
  | { ok: true; sha256: string; tarSha256?: string }
  | { ok: false; sha256: string; field: 'sha256' | 'tarSha256'; expected: string; actual: string };

export interface CheckOptions {
  /** Names the file in errors. */
  what?: string;
  /** The sha256 of the file's bytes when the caller already knows it (a download's running hash). */
  sha256?: string;
  /** A store whose tarSha256 records spare decompressing bytes seen before; a match is recorded. */
  store?: Store;
}

/** Check `file` (a complete download or a published file) against every hash `d` pins; streams. */
export async function checkPinned(file: string, d: Distfile, opts: CheckOptions = {}): Promise<PinCheck> {
  if (d.sha256 === undefined && d.tarSha256 === undefined) {
    throw new SourcemeshError('E_MANIFEST', `${d.name}: pins neither sha256 nor tarSha256`, { name: d.name });
  }
  // Bytes whose sha256 already differs need not be decompressed.
  let sha256 = opts.sha256 ?? (d.sha256 !== undefined || opts.store ? await sha256File(file) : undefined);
  if (d.sha256 !== undefined && !digestsEqual(sha256!, d.sha256)) return { ok: false, sha256: sha256!, field: 'sha256', expected: d.sha256, actual: sha256! };
  if (d.tarSha256 === undefined) return { ok: true, sha256: sha256! };
  // A record is trusted as the store's objects are; one that disagrees is checked against the bytes.
  const cached = sha256 !== undefined ? await opts.store?.cachedTarSha256(sha256) : undefined;
  if (cached !== undefined && digestsEqual(cached, d.tarSha256)) return { ok: true, sha256: sha256!, tarSha256: cached };
  let digest;
  try {
    digest = await tarDigestOfFile(file, opts.what ?? file);
  } catch (err) {
    // Bytes that do not even decompress cannot be the pinned tar: a mismatch of the source, not ours.
    if (err instanceof SourcemeshError && err.code === 'E_ARCHIVE') {
      sha256 ??= await sha256File(file);
      return { ok: false, sha256, field: 'tarSha256', expected: d.tarSha256, actual: `none (${err.message})` };
    }
    throw err;
  }
  if (!digestsEqual(digest.tarSha256, d.tarSha256)) return { ok: false, sha256: digest.sha256, field: 'tarSha256', expected: d.tarSha256, actual: digest.tarSha256 };
  await opts.store?.recordTarSha256(digest.sha256, digest.tarSha256);
  return { ok: true, sha256: digest.sha256, tarSha256: digest.tarSha256 };
}
