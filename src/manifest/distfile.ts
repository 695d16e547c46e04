// The Distfile and Manifest model (DESIGN.md, "Manifest (sourcemesh.manifest/v1)").

export const MANIFEST_FORMAT = 'sourcemesh.manifest/v1';

/** How a snapshot tarball is compressed when a mirror generates it from git. */
export type Compression = 'gzip-n' | 'zlib' | 'xz' | 'bzip2' | 'none';

export interface GitSource {
  repo: string;
  /** A commit id (full or abbreviated), tag or branch, as live-bootstrap writes it after `~`. */
  ref: string;
  /** Directory prefix inside the tarball, ending in `/`. */
  prefix: string;
  compression: Compression;
  /** Compression level (gzip 1-9, xz preset 0-9); absent for `none`. */
  level?: number;
}

export interface Cleanse {
  /** sha256 of the tarball the deletions are applied to. */
  from: string;
  delete: string[];
}

export interface Distfile {
  name: string;
  sha256?: string;
  size?: number;
  tarSha256?: string;
  merkleRoot?: string;
  /** Upstream URLs, in preference order. */
  urls: string[];
  git?: GitSource;
  cleanse?: Cleanse;
  /** Build steps that use this file, in build order. */
  steps?: string[];
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  name: string;
  version?: string;
  distfiles: Distfile[];
}

/** Plain file names only: what a mirror serves at BASE/NAME and what lands in a distfiles directory. */
export function nameProblem(name: string): string | undefined {
  if (name.length === 0) return 'is empty';
  if (name === '.' || name === '..') return 'is a relative directory name';
  if (name.includes('/')) return 'contains "/"';
  if (name.includes('\\')) return 'contains "\\"';
  if (/[\u0000-\u001f\u007f]/.test(name)) return 'contains a control character';
  if (Buffer.byteLength(name) > 255) return 'is longer than 255 bytes';
  return undefined;
}

export const SHA256_HEX = /^[0-9a-f]{64}$/;

export function byName(a: Distfile, b: Distfile): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}
