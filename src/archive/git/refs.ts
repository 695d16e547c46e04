// Resolving a revision the way `git rev-parse` does for the forms we accept (gitrevisions(7), "<refname>"
// and "<sha1>"): a full object id; then a ref name tried under git's rules in order, "X", "refs/X",
// "refs/tags/X", "refs/heads/X", "refs/remotes/X", "refs/remotes/X/HEAD" (the first that exists wins, as in
// git, which only warns when several do); then "describe" output "...-g<hex>"; then an abbreviated id of at
// least 4 digits, which must name exactly one object. Ref names are checked with git-check-ref-format's
// rules before they become file names, so a hostile name cannot walk out of the repository.
// After the name, the ancestry suffixes "~N", "^N" and the peeling "^{commit}", "^{}" (splitRevision);
// the other revision syntax (":path", "@{...}", "^{tree}", ranges) is refused rather than half-implemented.

import path from 'node:path';
import { SourcemeshError } from '../../errors.ts';
import { readdirIfExistsSync, statIfExistsSync } from '../../fs/files.ts';
import type { Limits } from '../../limits.ts';
import { OID_HEX, corrupt, isHex, parseOidHex, type Oid } from './object-id.ts';
import { readSmallFile, type ObjectDatabase } from './odb.ts';

const DWIM_RULES = ['%s', 'refs/%s', 'refs/tags/%s', 'refs/heads/%s', 'refs/remotes/%s', 'refs/remotes/%s/HEAD'];
/** git's MINIMUM_ABBREV: shorter hex strings are never taken as object ids. */
const MIN_ABBREV = 4;

/** git-check-ref-format(1), with one-level names allowed (HEAD, or a rule's "X"). */
export function isValidRefName(name: string): boolean {
  if (name === '' || name === '@' || name.length > 4096) return false;
  if (name.startsWith('/') || name.endsWith('/') || name.endsWith('.') || name.includes('//')) return false;
  if (name.includes('..') || name.includes('@{')) return false;
  if (/[\x00-\x20\x7f~^:?*[\\]/.test(name)) return false;
  for (const part of name.split('/')) {
    if (part.startsWith('.') || part.endsWith('.lock')) return false;
  }
  return true;
}

function isPerWorktree(name: string): boolean {
  return !name.startsWith('refs/') || /^refs\/(bisect|worktree|rewritten)\//.test(name);
}

export class RefStore {
  private readonly gitDir: string;
  private readonly commonDir: string;
  private readonly limits: Limits;
  private packed: Map<string, Oid> | null = null;

  constructor(gitDir: string, commonDir: string, limits: Limits) {
    this.gitDir = gitDir;
    this.commonDir = commonDir;
    this.limits = limits;
  }

  /** packed-refs: "<id> <name>" lines, "^<id>" peeled lines, a "# pack-refs with:" header. */
  packedRefs(): Map<string, Oid> {
    if (this.packed) return this.packed;
    const map = new Map<string, Oid>();
    const file = path.join(this.commonDir, 'packed-refs');
    if (statIfExistsSync(file)) {
      const text = readSmallFile(file, this.limits.gitPackedRefsBytes);
      for (const line of text.split('\n')) {
        if (line === '' || line.startsWith('#') || line.startsWith('^')) continue;
        const oid = parseOidHex(line.slice(0, OID_HEX));
        const name = line.slice(OID_HEX + 1);
        if (!oid || line[OID_HEX] !== ' ' || !isValidRefName(name)) throw corrupt(file, `unexpected line ${JSON.stringify(line.slice(0, 80))}`);
        map.set(name, oid);
      }
    }
    this.packed = map;
    return map;
  }

  /** Resolve a ref name (following symbolic refs); null when it does not exist or is broken. */
  read(name: string, depth = 0): Oid | null {
    if (!isValidRefName(name)) return null;
    const file = path.join(isPerWorktree(name) ? this.gitDir : this.commonDir, name);
    // A ref that is not there is looked for elsewhere; a ref that cannot be read is an error (ELOOP, EIO).
    if (statIfExistsSync(file)?.isFile()) {
      const text = readSmallFile(file, this.limits.gitRefFileBytes);
      if (text.startsWith('ref:')) {
        if (depth >= this.limits.gitSymrefDepth) throw corrupt(file, `symbolic refs nested deeper than ${this.limits.gitSymrefDepth}`);
        const target = text.slice(4).replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, '');
        return this.read(target, depth + 1);
      }
      // A loose ref holds an id, optionally followed by whitespace and anything (FETCH_HEAD's description).
      const oid = parseOidHex(text.slice(0, OID_HEX));
      if (oid && (text.length === OID_HEX || /[ \t\r\n]/.test(text[OID_HEX]!))) return oid;
      return null; // git ignores a broken ref here and tries the next rule
    }
    if (name.startsWith('refs/')) return this.packedRefs().get(name) ?? null;
    return null;
  }

  /** Whether any ref exists under `prefix` (loose or packed). */
  hasRefsUnder(prefix: string): boolean {
    for (const name of this.packedRefs().keys()) if (name.startsWith(prefix)) return true;
    return hasFiles(path.join(this.commonDir, prefix));
  }
}

function hasFiles(dir: string): boolean {
  const st = statIfExistsSync(dir);
  if (!st) return false;
  if (!st.isDirectory()) return st.isFile();
  for (const name of readdirIfExistsSync(dir)) if (hasFiles(path.join(dir, name))) return true;
  return false;
}

/** One step after the name: `~n` (n-th first-parent ancestor), `^n` (n-th parent, 0 = the commit), or peel. */
export type RevisionStep = { op: '~' | '^'; n: number } | { op: 'peel' };

/**
 * Split "NAME<steps>" (gitrevisions(7): "<rev>~<n>", "<rev>^<n>", "<rev>^{commit}", "<rev>^{}"); "~" and "^"
 * alone mean 1. Null when `rev` has other syntax after the first "~" or "^".
 */
export function splitRevision(rev: string): { name: string; steps: RevisionStep[] } | null {
  const at = rev.search(/[~^]/);
  if (at <= 0) return at < 0 ? { name: rev, steps: [] } : null;
  const steps: RevisionStep[] = [];
  const re = /~(\d*)|\^\{(commit)?\}|\^(\d*)/y;
  re.lastIndex = at;
  while (re.lastIndex < rev.length) {
    const m = re.exec(rev);
    if (!m) return null;
    const digits = m[1] ?? m[3];
    if (digits === undefined) steps.push({ op: 'peel' });
    else {
      const n = digits === '' ? 1 : Number(digits);
      if (!Number.isSafeInteger(n) || digits.length > 9) return null;
      steps.push({ op: m[1] !== undefined ? '~' : '^', n });
    }
  }
  return { name: rev.slice(0, at), steps };
}

/** Resolve `rev` to an object id (not yet peeled). E_INPUT when nothing matches or an abbreviation is ambiguous. */
export function resolveRevision(rev: string, refs: RefStore, odb: ObjectDatabase): Oid {
  const name = rev === '@' ? 'HEAD' : rev;
  const full = parseOidHex(name);
  if (full) {
    if (!odb.has(full)) throw new SourcemeshError('E_INPUT', `${rev}: no such object in the repository`, { ref: rev });
    return full;
  }
  if (isValidRefName(name)) {
    for (const rule of DWIM_RULES) {
      const oid = refs.read(rule.replace('%s', name));
      if (oid) return oid;
    }
  } else if (/[~^:]|@\{|\.\./.test(name)) {
    throw new SourcemeshError('E_UNSUPPORTED', `${JSON.stringify(rev)}: only ref names and object ids are supported, not revision expressions`, { ref: rev });
  } else if (!isHex(name.toLowerCase())) {
    throw new SourcemeshError('E_INPUT', `${JSON.stringify(rev)}: not a valid ref name or object id`, { ref: rev });
  }
  const describe = /-g([0-9a-fA-F]+)$/.exec(name);
  if (describe) {
    const oid = shortId(describe[1]!, rev, odb, false);
    if (oid) return oid;
  }
  const oid = shortId(name, rev, odb, true);
  if (oid) return oid;
  throw new SourcemeshError('E_INPUT', `${rev}: no such ref or object in the repository`, { ref: rev });
}

function shortId(hex: string, rev: string, odb: ObjectDatabase, ambiguityIsError: boolean): Oid | null {
  const lower = hex.toLowerCase();
  if (lower.length < MIN_ABBREV || lower.length > OID_HEX || !isHex(lower)) return null;
  const found = odb.findByPrefix(lower, 1);
  if (found.length > 1) {
    if (!ambiguityIsError) return null;
    throw new SourcemeshError('E_INPUT', `${rev}: short object id is ambiguous (${found.join(', ')}...)`, { ref: rev, candidates: found });
  }
  return found.length === 1 ? Buffer.from(found[0]!, 'hex') : null;
}
