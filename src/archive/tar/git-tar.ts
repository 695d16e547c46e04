// The walk `git archive --format=tar --prefix P/ <commit>` does (git 2.39, default configuration), reproduced
// entry for entry (the facts are measured in notes/git-tar-and-gzip.md and checked against git in
// test/archive/):
// - a pax global header carrying `comment=<commit id>` (and `mtime=` when the committer time does not fit the
//   11-digit field, every header's mtime then being capped);
// - with a prefix ending in "/", an entry for it first (named after the root tree);
// - then the tree in its stored order, depth first; a directory entry is written just before the first
//   non-directory entry below it, so empty trees never appear, and a directory marked export-ignore is skipped
//   with everything below it;
// - modes normalised with tar.umask 0002: 0775 for directories, submodules and executables, 0664 for other
//   files, 0777 for symlinks; submodules as empty directories;
// - paths over 100 bytes split into ustar prefix and name at a "/", else a pax `path=` record in a header
//   named "<id>.paxheader" and the entry named "<id>.data"; symlink targets over 100 bytes in `linkpath=`;
//   sizes over the ustar maximum in `size=`;
// - file contents converted per attributes (ident, eol, export-subst), except blobs over 512 MiB without
//   export-subst, which git streams untouched.

import { SourcemeshError } from '../../errors.ts';
import { parseAttributes, ATTR_MAX_FILE_BYTES, type AttrValue } from '../attributes/parse.ts';
import { AttributeRules, type AttrFrame } from '../attributes/stack.ts';
import { conversionFor, expandIdent, needsContent, NO_CONVERSION, toCrlf, type FilterPolicy } from '../attributes/convert.ts';
import { expandExportSubst, type SubstContext } from '../attributes/export-subst.ts';
import { corrupt, objectName, oidHex, OID_HEX, type Oid } from '../git/object-id.ts';
import type { TreeEntry } from '../git/objects.ts';
import type { Repository, ResolvedCommit } from '../git/repository.ts';
import { HeaderTemplate, paxRecord, TYPE_DIR, TYPE_FILE, TYPE_PAX, TYPE_PAX_GLOBAL, TYPE_SYMLINK, USTAR_MAX } from './header.ts';
import { TarBlocker } from './writer.ts';

/** git's core.bigFileThreshold default: larger blobs are archived without conversion (unless export-subst). */
const BIG_FILE_THRESHOLD = 512 * 1024 * 1024;
/** Blobs above this many bytes are streamed rather than held whole, when no conversion needs them whole. */
const STREAM_ABOVE = 16 * 1024 * 1024;
/** git's FALLBACK_DEFAULT_ABBREV. */
const MIN_ABBREV = 7;

export interface GitTarOptions {
  repo: Repository;
  resolved: ResolvedCommit;
  /** Raw prefix, already validated ("" for none). */
  prefix: string;
  filters: FilterPolicy;
  chunkBytes?: number;
}

interface Frame {
  entries: TreeEntry[];
  next: number;
  /** Path of this directory relative to the tree root, with a trailing "/" ("" for the root). */
  dir: string;
  attr: AttrFrame;
  /** The directory entry still to be written before the first non-directory below it. */
  pending: { oid: Oid; path: string } | null;
}

function msb(n: number): number {
  let r = 0;
  while (n >= 2) {
    n = Math.floor(n / 2);
    r++;
  }
  return r;
}

export async function* gitTar(opts: GitTarOptions): AsyncGenerator<Buffer> {
  const { repo, resolved, prefix, filters } = opts;
  const limits = repo.limits;
  const odb = repo.odb;
  const out = new TarBlocker(opts.chunkBytes);
  const commitHex = oidHex(resolved.oid);
  const date = resolved.commit.date;
  const mtime = date > BigInt(USTAR_MAX) ? USTAR_MAX : Number(date);

  // ---- entries ----
  const headers = new HeaderTemplate(mtime);
  const writeEntry = (path: string, oid: Oid, type: number, mode: number, size: number, linkname: Buffer | null): void => {
    let records: Buffer[] | null = null;
    let name = path;
    let pfx = '';
    if (path.length > 100) {
      // Split at the last "/" that leaves a prefix of at most 154 bytes (never at a directory's own
      // trailing slash); if the rest is still over 100 bytes, use a pax path record instead.
      let i = path.length;
      if (i > 1 && path.charCodeAt(i - 1) === 0x2f) i--;
      if (i > 155) i = 155;
      do i--;
      while (i > 0 && path.charCodeAt(i) !== 0x2f);
      const rest = path.length - i - 1;
      if (i > 0 && rest <= 100) {
        pfx = path.slice(0, i);
        name = path.slice(i + 1);
      } else {
        name = `${oidHex(oid)}.data`;
        records = [paxRecord('path', Buffer.from(path, 'latin1'))];
      }
    }
    let link = '';
    if (linkname) {
      if (linkname.length > 100) {
        link = `see ${oidHex(oid)}.paxheader`;
        (records ??= []).push(paxRecord('linkpath', linkname));
      } else link = linkname.toString('latin1');
    }
    let sizeField = type === TYPE_FILE ? size : 0;
    if (type === TYPE_FILE && size > USTAR_MAX) {
      sizeField = 0;
      (records ??= []).push(paxRecord('size', Buffer.from(String(size), 'latin1')));
    }
    if (records) {
      const payload = Buffer.concat(records);
      const [b, at] = out.headerSlot();
      headers.write(b, at, `${oidHex(oid)}.paxheader`, 0o666, payload.length, TYPE_PAX, '', '');
      out.data(payload);
    }
    const [b, at] = out.headerSlot();
    headers.write(b, at, name, mode, sizeField, type, link, pfx);
  };

  const checkPath = (path: string): void => {
    if (path.length > limits.gitPathBytes) throw corrupt(`path ${JSON.stringify(path.slice(0, 100))}...`, `longer than the limit of ${limits.gitPathBytes} bytes`);
  };

  // ---- global header ----
  {
    const records = [paxRecord('comment', Buffer.from(commitHex, 'latin1'))];
    if (date > BigInt(USTAR_MAX)) records.push(paxRecord('mtime', Buffer.from(date.toString(), 'latin1')));
    const payload = Buffer.concat(records);
    const [b, at] = out.headerSlot();
    headers.write(b, at, 'pax_global_header', 0o666, payload.length, TYPE_PAX_GLOBAL, '', '');
    out.data(payload);
  }

  // ---- the prefix's own entry (git collapses trailing slashes for it only) ----
  if (prefix.endsWith('/')) {
    let len = prefix.length;
    while (len > 1 && prefix[len - 2] === '/') len--;
    writeEntry(prefix.slice(0, len), resolved.commit.tree, TYPE_DIR, 0o775, 0, null);
  }

  // ---- attributes ----
  const readAttributes = (entries: TreeEntry[], macrosAllowed: boolean): AttrFrame['rules'] => {
    const e = entries.find((x) => x.name === '.gitattributes');
    if (!e || (e.kind !== 'file' && e.kind !== 'exec' && e.kind !== 'symlink')) return [];
    const blob = odb.blob(e.oid, ATTR_MAX_FILE_BYTES - 1);
    if (!blob.data) return []; // git ignores attribute files of 100 MiB or more
    return parseAttributes(blob.data, macrosAllowed);
  };
  const infoBytes = repo.infoAttributes();
  const infoRules = infoBytes ? parseAttributes(infoBytes, true) : null;
  const rootEntries = repo.readTree(resolved.commit.tree);
  const rootRules = readAttributes(rootEntries, true);
  const rules = new AttributeRules(rootRules, infoRules);
  const infoActive = (infoRules ?? []).some((r) => r.kind === 'pattern');
  const frames: Frame[] = [{ entries: rootEntries, next: 0, dir: '', attr: { base: '', rules: rootRules }, pending: null }];
  const attrFrames: AttrFrame[] = [frames[0]!.attr];
  let activeFrames = rootRules.length > 0 ? 1 : 0;
  const NONE = new Map<string, AttrValue>();
  const attributesOf = (path: string, isDir: boolean): Map<string, AttrValue> =>
    infoActive || activeFrames > 0 ? rules.lookup(attrFrames, path, isDir) : NONE;

  // ---- export-subst context, built on first use ----
  let subst: SubstContext | null = null;
  let abbrevMin = 0;
  const substContext = (path: string): SubstContext => {
    if (!subst) {
      const parents = repo.isShallow(resolved.oid) ? [] : resolved.commit.parents;
      subst = {
        commitOid: resolved.oid,
        commit: resolved.commit,
        parents,
        path,
        abbrev: (oid: Oid) => {
          if (abbrevMin === 0) {
            // git's automatic abbreviation: about half the bits of the (packed) object count, at least 7.
            abbrevMin = Math.max(MIN_ABBREV, Math.ceil((msb(odb.approximateObjectCount()) + 1) / 2));
          }
          return oidHex(oid).slice(0, abbrevMin >= OID_HEX ? OID_HEX : odb.uniqueAbbrevLength(oid, abbrevMin));
        },
      };
    }
    subst.path = path;
    return subst;
  };

  // ---- the walk ----
  {
    while (frames.length > 0) {
      const top = frames[frames.length - 1]!;
      if (top.next >= top.entries.length) {
        frames.pop();
        const f = attrFrames.pop()!;
        if (f.rules.length > 0) activeFrames--;
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
        if (attr.rules.length > 0) activeFrames++;
        frames.push({ entries, next: 0, dir: rel + '/', attr, pending: { oid: e.oid, path: prefix + rel + '/' } });
        attrFrames.push(attr);
        continue;
      }
      // A non-directory: the directories above it that are not written yet come first, even if it is
      // itself export-ignored.
      for (const f of frames) {
        if (f.pending) {
          writeEntry(f.pending.path, f.pending.oid, TYPE_DIR, 0o775, 0, null);
          f.pending = null;
        }
      }
      const isGitlink = e.kind === 'gitlink';
      const attrs = attributesOf(rel, isGitlink);
      if (attrs.get('export-ignore') === true) continue;
      const path = prefix + rel + (isGitlink ? '/' : '');
      checkPath(path);
      if (isGitlink) {
        writeEntry(path, e.oid, TYPE_DIR, 0o775, 0, null);
      } else if (e.kind === 'symlink') {
        const blob = odb.blob(e.oid, limits.gitPathBytes);
        if (!blob.data) throw corrupt(objectName(e.oid), `symlink target longer than ${limits.gitPathBytes} bytes`);
        writeEntry(path, e.oid, TYPE_SYMLINK, 0o777, 0, blob.data);
      } else {
        const mode = e.kind === 'exec' ? 0o775 : 0o664;
        const conv = attrs.size > 0 ? conversionFor(attrs, rel, filters) : NO_CONVERSION;
        const converting = needsContent(conv);
        if (!converting) {
          const r = odb.openBlob(e.oid, STREAM_ABOVE);
          if (r.kind === 'inflate') {
            writeEntry(path, e.oid, TYPE_FILE, mode, r.size, null);
            // Inflate straight into the output buffer when it has room; the scratch byte after the content
            // is overwritten by the padding or the next header.
            const slot = out.reserveData(r.size);
            if (slot) r.readInto(slot[0], slot[1]);
            else out.data(r.read(), false);
            out.pad(r.size);
            for (const c of out.take()) yield c;
            continue;
          }
        }
        const blob = odb.blob(e.oid, converting ? (conv.exportSubst ? Infinity : BIG_FILE_THRESHOLD) : STREAM_ABOVE);
        let data = blob.data;
        if (converting && !(blob.size > BIG_FILE_THRESHOLD && !conv.exportSubst)) {
          if (!data) throw new SourcemeshError('E_UNSUPPORTED', `${rel}: ${blob.size} bytes are too many to convert in memory`, { path: rel });
          if (conv.ident) data = expandIdent(data, oidHex(e.oid));
          if (conv.eol !== 'none') data = toCrlf(data, conv.eol);
          if (conv.exportSubst) data = expandExportSubst(data, substContext(rel));
        }
        if (data) {
          writeEntry(path, e.oid, TYPE_FILE, mode, data.length, null);
          out.data(data);
        } else {
          writeEntry(path, e.oid, TYPE_FILE, mode, blob.size, null);
          for (const c of out.beginPassThrough()) yield c;
          for await (const chunk of blob.stream!) {
            out.passedThrough(chunk.length);
            yield chunk;
          }
          out.pad(blob.size);
        }
      }
      for (const c of out.take()) yield c;
    }
    for (const c of out.finish()) yield c;
  }
}
