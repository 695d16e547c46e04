// The Distfile and Manifest model (docs/FORMATS.md, "Manifest (`sourcemesh.manifest/v1`)").

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

/**
 * Plain file names only: what a mirror serves at BASE/NAME and what lands in a distfiles directory, so a
 * name must be one file on every file system and read the same to every eye (docs/FORMATS.md, Manifest,
 * "Names"). Names enter from manifests, `sources` lines, request targets and peers' inventories.
 */
export function nameProblem(name: string): string | undefined {
  if (name.length === 0) return 'is empty';
  // A lone surrogate has no UTF-8 form: the file system gets U+FFFD, so two names become one file.
  if (!name.isWellFormed()) return 'is not well-formed Unicode (a lone surrogate)';
  if (name === '.' || name === '..') return 'is a relative directory name';
  if (name.includes('/')) return 'contains "/"';
  if (name.includes('\\')) return 'contains "\\"';
  // Hidden in a distfiles directory and never served by a mirror (`serve` answers 404).
  if (name.startsWith('.')) return 'begins with "." (a hidden name, which no mirror serves)';
  const hidden = HIDDEN_CHARACTER.exec(name);
  if (hidden) return `contains ${codePoint(hidden[0])} (${hiddenKind(hidden[0])})`;
  if (Buffer.byteLength(name) > 255) return 'is longer than 255 bytes';
  return undefined;
}

// Characters that make a name display as something other than what it is: controls (C0, C1), format
// characters (bidirectional overrides and isolates such as U+202E, zero-width characters, U+FEFF), line
// and paragraph separators, and every space but U+0020.
const HIDDEN_CHARACTER = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]|(?! )\p{Zs}/u;

function hiddenKind(ch: string): string {
  if (/\p{Cc}/u.test(ch)) return 'a control character';
  if (/\p{Cf}/u.test(ch)) return 'a format character, which changes how the name displays';
  if (/\p{Zs}/u.test(ch)) return 'a space other than U+0020';
  return 'a line or paragraph separator';
}

function codePoint(ch: string): string {
  return `U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
}

/**
 * The file a name lands on where the file system ignores Unicode normalization and case (macOS, Windows):
 * two names with one key are one file there. Default case folding is approximated by upper- then
 * lower-casing the canonical decomposition.
 */
export function nameKey(name: string): string {
  return name.normalize('NFD').toUpperCase().toLowerCase().normalize('NFC');
}

/** A name as it can be shown in a one-line message: quoted, every character `nameProblem` refuses (and `\`, `"`) as \u{HEX}. */
export function displayName(name: string, maxChars = 120): string {
  let out = '';
  for (const ch of name) {
    if (out.length >= maxChars) return `"${out}..."`;
    out += ch === '\\' || ch === '"' || !ch.isWellFormed() || HIDDEN_CHARACTER.test(ch) ? `\\u{${ch.codePointAt(0)!.toString(16)}}` : ch;
  }
  return `"${out}"`;
}

/**
 * A repository on this machine rather than upstream, as git tells them apart: a `file:` URL, or no
 * `scheme://` and no scp-like `host:` before the first `/` (an absolute or relative path).
 */
export function isLocalRepo(repo: string): boolean {
  if (/^file:/i.test(repo)) return true;
  if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(repo)) return false;
  const colon = repo.indexOf(':');
  return colon === -1 || (repo.indexOf('/') !== -1 && repo.indexOf('/') < colon);
}

export const SHA256_HEX = /^[0-9a-f]{64}$/;

export function byName(a: Distfile, b: Distfile): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}
