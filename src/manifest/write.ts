import { sha256Hex } from '../store/digest.ts';
import { canonicalJson } from './canonical.ts';
import type { Manifest } from './distfile.ts';

/** Human-friendly file form: two-space JSON, keys in a stable order, entries sorted by name. */
export function formatManifest(m: Manifest): string {
  const ordered = {
    format: m.format,
    name: m.name,
    ...(m.version !== undefined ? { version: m.version } : {}),
    distfiles: m.distfiles.map((d) => ({
      name: d.name, sha256: d.sha256, size: d.size, tarSha256: d.tarSha256, merkleRoot: d.merkleRoot,
      urls: d.urls, git: d.git, cleanse: d.cleanse, steps: d.steps,
    })),
  };
  return JSON.stringify(ordered, null, 2) + '\n';
}

/** Hex sha256 over the RFC 8785 canonical form of a JSON value: what releases sign (docs/FORMATS.md, "Releases"). */
export function canonicalDigest(value: unknown): string {
  return sha256Hex(canonicalJson(value));
}

/** The digest a release of this manifest names. */
export function manifestDigest(m: Manifest): string {
  return canonicalDigest(m);
}
