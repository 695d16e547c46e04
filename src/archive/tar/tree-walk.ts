// The order `git archive` visits a commit's tree in (docs/GIT-ARCHIVE.md, "Order"): the stored order, depth
// first; a directory's entry is due just before the first non-directory entry below it (so empty trees never
// appear, and a directory whose files are all export-ignored still does), and a directory marked
// export-ignore is skipped with everything below it. Attributes come from each directory's .gitattributes
// and the repository's info/attributes, as the walk enters and leaves directories.

import { parseAttributes, ATTR_MAX_FILE_BYTES, type AttrValue } from '../attributes/parse.ts';
import { AttributeRules, type AttrFrame } from '../attributes/stack.ts';
import { corrupt, objectName, type Oid } from '../git/object-id.ts';
import type { TreeEntry } from '../git/objects.ts';
import type { Repository } from '../git/repository.ts';

export type WalkStep =
  /** A directory entry now due (written before the leaf that follows it). */
  | { kind: 'directory'; oid: Oid; path: string }
  /** A file, symlink or submodule that is not export-ignored; `rel` is relative to the tree root. */
  | { kind: 'leaf'; entry: TreeEntry; rel: string; attrs: Map<string, AttrValue> };

interface Frame {
  entries: TreeEntry[];
  next: number;
  /** This directory's path relative to the tree root, with a trailing "/" ("" for the root). */
  dir: string;
  attr: AttrFrame;
  /** This directory's entry, still to be written before the first non-directory below it. */
  pending: { oid: Oid; path: string } | null;
}

const NO_ATTRIBUTES = new Map<string, AttrValue>();

export function* walkTree(repo: Repository, rootTree: Oid, prefix: string): Generator<WalkStep> {
  const limits = repo.limits;
  const readAttributes = (entries: TreeEntry[], macrosAllowed: boolean): AttrFrame['rules'] => {
    const e = entries.find((x) => x.name === '.gitattributes');
    if (!e || (e.kind !== 'file' && e.kind !== 'exec' && e.kind !== 'symlink')) return [];
    const blob = repo.odb.blob(e.oid, ATTR_MAX_FILE_BYTES - 1);
    if (!blob.data) return []; // git ignores attribute files of 100 MiB or more
    return parseAttributes(blob.data, macrosAllowed);
  };
  const checkPath = (path: string): void => {
    if (path.length > limits.gitPathBytes) throw corrupt(`path ${JSON.stringify(path.slice(0, 100))}...`, `longer than the limit of ${limits.gitPathBytes} bytes`);
  };

  const infoBytes = repo.infoAttributes();
  const infoRules = infoBytes ? parseAttributes(infoBytes, true) : null;
  const infoActive = (infoRules ?? []).some((r) => r.kind === 'pattern');
  const rootEntries = repo.readTree(rootTree);
  const rootRules = readAttributes(rootEntries, true);
  const rules = new AttributeRules(rootRules, infoRules);
  const frames: Frame[] = [{ entries: rootEntries, next: 0, dir: '', attr: { base: '', rules: rootRules }, pending: null }];
  const attrFrames: AttrFrame[] = [frames[0]!.attr];
  // Most trees have no attributes at all: skip the lookup while no frame has rules.
  let framesWithRules = rootRules.length > 0 ? 1 : 0;
  const attributesOf = (path: string, isDir: boolean): Map<string, AttrValue> =>
    infoActive || framesWithRules > 0 ? rules.lookup(attrFrames, path, isDir) : NO_ATTRIBUTES;

  while (frames.length > 0) {
    const top = frames[frames.length - 1]!;
    if (top.next >= top.entries.length) {
      frames.pop();
      if (attrFrames.pop()!.rules.length > 0) framesWithRules--;
      continue;
    }
    const e = top.entries[top.next++]!;
    const rel = top.dir + e.name;
    if (e.kind === 'tree') {
      if (attributesOf(rel, true).get('export-ignore') === true) continue;
      if (frames.length > limits.gitTreeDepth) throw corrupt(objectName(e.oid), `trees nested deeper than ${limits.gitTreeDepth}`);
      checkPath(prefix + rel + '/');
      const entries = repo.readTree(e.oid);
      const attr: AttrFrame = { base: rel, rules: readAttributes(entries, false) };
      if (attr.rules.length > 0) framesWithRules++;
      frames.push({ entries, next: 0, dir: rel + '/', attr, pending: { oid: e.oid, path: prefix + rel + '/' } });
      attrFrames.push(attr);
      continue;
    }
    // A non-directory: the directories above it not yet written come first, even if it is export-ignored.
    for (const f of frames) {
      if (f.pending) {
        yield { kind: 'directory', oid: f.pending.oid, path: f.pending.path };
        f.pending = null;
      }
    }
    const attrs = attributesOf(rel, e.kind === 'gitlink');
    if (attrs.get('export-ignore') === true) continue;
    checkPath(prefix + rel + (e.kind === 'gitlink' ? '/' : ''));
    yield { kind: 'leaf', entry: e, rel, attrs };
  }
}
