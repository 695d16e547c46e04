// Parsing commits, tags and trees (gitformat-signature aside, these formats are only described in git's
// documentation by example: "tree <id>\n", "parent <id>\n"..., and tree entries "<octal mode> <name>\0<raw id>").
// All of it is attacker-controlled. Tree entries are checked for names that would escape or corrupt an
// extracted archive (empty, ".", "..", ".git", containing "/"), for git's canonical order (which git's
// archive code, its index and its attribute lookups all rely on), and for unknown modes.

import type { Limits } from '../../limits.ts';
import { OID_BYTES, OID_HEX, corrupt, objectName, parseOidHex, type ObjectType, type Oid } from './object-id.ts';

export type EntryKind = 'file' | 'exec' | 'symlink' | 'tree' | 'gitlink';

export interface TreeEntry {
  kind: EntryKind;
  /** The name's raw bytes as a latin1 string (one char per byte: exact, and cheap to compare). */
  name: string;
  oid: Oid;
}

export interface Commit {
  tree: Oid;
  parents: Oid[];
  /** git's commit date: the committer timestamp (0 when git would not find one), up to 2^64-1. */
  date: bigint;
  /** The whole commit object, for pretty-format placeholders. */
  raw: Buffer;
}

export interface Tag {
  object: Oid;
  type: ObjectType;
}

const TREE_LINE = Buffer.from('tree ');
const PARENT_LINE = Buffer.from('parent ');
const U64_MAX = (1n << 64n) - 1n;

function isGitSpace(c: number): boolean {
  // git's own ctype (sane_ctype): space, tab, LF and CR only.
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}

export function parseCommit(data: Buffer, oid: Oid): Commit {
  const what = objectName(oid);
  let pos = 0;
  const readIdLine = (prefix: Buffer): Oid | null => {
    if (pos + prefix.length + OID_HEX + 1 > data.length || !data.subarray(pos, pos + prefix.length).equals(prefix)) return null;
    const hex = data.toString('latin1', pos + prefix.length, pos + prefix.length + OID_HEX);
    const id = parseOidHex(hex);
    if (!id || hex !== hex.toLowerCase() || data[pos + prefix.length + OID_HEX] !== 0x0a) throw corrupt(what, `malformed "${prefix.toString().trim()}" line in commit`);
    pos += prefix.length + OID_HEX + 1;
    return id;
  };
  const tree = readIdLine(TREE_LINE);
  if (!tree) throw corrupt(what, 'commit does not start with a tree line');
  const parents: Oid[] = [];
  for (;;) {
    const p = readIdLine(PARENT_LINE);
    if (!p) break;
    parents.push(p);
  }
  return { tree, parents, date: commitDate(data, pos), raw: data };
}

/**
 * The timestamp git's commit parser takes as the commit's date: the "author" line must come right after the
 * parents and the "committer" line right after it; the date is the digits after the committer line's last
 * ">" (leading blanks skipped). Anything else gives 0, as in git; a number too large saturates at 2^64-1.
 */
function commitDate(data: Buffer, start: number): bigint {
  if (start + 6 >= data.length || data.toString('latin1', start, start + 6) !== 'author') return 0n;
  let pos = data.indexOf(0x0a, start);
  if (pos < 0) return 0n;
  pos++;
  if (pos + 9 >= data.length || data.toString('latin1', pos, pos + 9) !== 'committer') return 0n;
  const eol = data.indexOf(0x0a, pos);
  if (eol < 0) return 0n;
  let p = eol;
  while (p > pos && data[p - 1] !== 0x3e /* > */) p--;
  if (p === pos) return 0n;
  while (p < eol && isGitSpace(data[p]!) && data[p] !== 0x0a) p++;
  let q = p;
  while (q < eol && data[q]! >= 0x30 && data[q]! <= 0x39) q++;
  if (q === p) return 0n;
  const n = BigInt(data.toString('latin1', p, q));
  return n > U64_MAX ? U64_MAX : n;
}

export function parseTag(data: Buffer, oid: Oid): Tag {
  const what = objectName(oid);
  const m = /^object ([0-9a-f]{40})\ntype (commit|tree|blob|tag)\n/.exec(data.toString('latin1', 0, Math.min(data.length, 128)));
  if (!m) throw corrupt(what, 'malformed tag header');
  return { object: parseOidHex(m[1]!)!, type: m[2] as ObjectType };
}

/** Tree entry names that must never reach an archive: they would escape or clobber on extraction. */
function badName(name: string): string | null {
  if (name === '') return 'an empty name';
  if (name === '.' || name === '..') return `the name "${name}"`;
  if (name.includes('/')) return 'a name containing "/"';
  // ".git" in any case, and the spellings Windows file systems treat as the same name (trailing dots and
  // spaces, the 8.3 short name GIT~1), as git's fsck does.
  const folded = name.toLowerCase().replace(/[. ]+$/, '');
  if (folded === '.git' || folded === 'git~1') return `the name "${name}"`;
  return null;
}

export function parseTree(data: Buffer, oid: Oid, limits: Limits): TreeEntry[] {
  const what = objectName(oid);
  const entries: TreeEntry[] = [];
  const names = new Set<string>();
  let prevKey = '';
  let pos = 0;
  while (pos < data.length) {
    if (entries.length >= limits.gitTreeEntries) throw corrupt(what, `tree has more than ${limits.gitTreeEntries} entries`);
    // "<octal mode> <name>\0<raw id>"
    let mode = 0;
    let digits = 0;
    while (pos < data.length && data[pos] !== 0x20) {
      const c = data[pos]! - 0x30;
      if (c < 0 || c > 7 || digits >= 7) throw corrupt(what, 'malformed mode in tree entry');
      mode = mode * 8 + c;
      digits++;
      pos++;
    }
    if (digits === 0 || pos >= data.length) throw corrupt(what, 'malformed mode in tree entry');
    pos++;
    const nul = data.indexOf(0, pos);
    if (nul < 0 || nul + 1 + OID_BYTES > data.length) throw corrupt(what, 'tree entry is truncated');
    const name = data.toString('latin1', pos, nul);
    const entryOid = data.subarray(nul + 1, nul + 1 + OID_BYTES);
    pos = nul + 1 + OID_BYTES;
    let kind: EntryKind;
    switch (mode & 0o170000) {
      case 0o100000: kind = mode & 0o100 ? 'exec' : 'file'; break;
      case 0o120000: kind = 'symlink'; break;
      case 0o040000: kind = 'tree'; break;
      case 0o160000: kind = 'gitlink'; break;
      default: throw corrupt(what, `tree entry ${JSON.stringify(name)} has the unsupported mode ${mode.toString(8)}`);
    }
    const bad = badName(name);
    if (bad) throw corrupt(what, `tree entry with ${bad}`, { object: oid.toString('hex') });
    // Git sorts entries by name bytes, a tree's name compared as if followed by "/".
    const key = kind === 'tree' ? name + '/' : name;
    if (entries.length > 0 && !(prevKey < key)) throw corrupt(what, `tree entries are not in git's order at ${JSON.stringify(name)}`);
    if (names.has(name)) throw corrupt(what, `tree has two entries named ${JSON.stringify(name)}`);
    names.add(name);
    prevKey = key;
    entries.push({ kind, name, oid: entryOid });
  }
  return entries;
}
