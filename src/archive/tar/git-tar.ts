// The tar stream `git archive --format=tar --prefix P/ <commit>` writes (git 2.39, default configuration),
// reproduced entry for entry; the facts are in docs/GIT-ARCHIVE.md and checked against git in test/archive/.
// This module puts the parts together: the global header and the prefix's own entry (entry-writer.ts), the
// walk in git's order with attributes (tree-walk.ts), and each file's content, converted per attributes
// (ident, eol, export-subst) except for blobs over 512 MiB without export-subst, which git streams untouched.

import { SourcemeshError } from '../../errors.ts';
import type { AttrValue } from '../attributes/parse.ts';
import { conversionFor, expandIdent, needsContent, NO_CONVERSION, toCrlf, type FilterPolicy } from '../attributes/convert.ts';
import { expandExportSubst, type SubstContext } from '../attributes/export-subst.ts';
import { corrupt, objectName, oidHex, OID_HEX, type Oid } from '../git/object-id.ts';
import type { TreeEntry } from '../git/objects.ts';
import type { BlobContent } from '../git/odb.ts';
import type { Repository, ResolvedCommit } from '../git/repository.ts';
import { EntryWriter } from './entry-writer.ts';
import { TYPE_DIR, TYPE_FILE, TYPE_SYMLINK, USTAR_MAX } from './header.ts';
import { walkTree } from './tree-walk.ts';
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
  /** The blocker to write through (its owner may recycle the chunks); else one of chunkBytes. */
  out?: TarBlocker;
}

export async function* gitTar(opts: GitTarOptions): AsyncGenerator<Buffer> {
  const { repo, resolved, prefix } = opts;
  const out = opts.out ?? new TarBlocker(opts.chunkBytes);
  const date = resolved.commit.date;
  const entries = new EntryWriter(out, date > BigInt(USTAR_MAX) ? USTAR_MAX : Number(date));
  const substContext = lazySubstContext(repo, resolved);

  entries.globalHeader(oidHex(resolved.oid), date);
  if (prefix.endsWith('/')) {
    // The prefix's own entry, named after the root tree; git collapses trailing slashes for it only.
    let len = prefix.length;
    while (len > 1 && prefix[len - 2] === '/') len--;
    entries.entry(prefix.slice(0, len), resolved.commit.tree, TYPE_DIR, 0o775, 0, null);
  }
  for (const step of walkTree(repo, resolved.commit.tree, prefix)) {
    if (step.kind === 'directory') {
      entries.entry(step.path, step.oid, TYPE_DIR, 0o775, 0, null);
      continue;
    }
    const { entry, rel, attrs } = step;
    const path = prefix + rel;
    if (entry.kind === 'gitlink') entries.entry(path + '/', entry.oid, TYPE_DIR, 0o775, 0, null);
    else if (entry.kind === 'symlink') {
      const blob = repo.odb.blob(entry.oid, repo.limits.gitPathBytes);
      if (!blob.data) throw corrupt(objectName(entry.oid), `symlink target longer than ${repo.limits.gitPathBytes} bytes`);
      entries.entry(path, entry.oid, TYPE_SYMLINK, 0o777, 0, blob.data);
    } else {
      const big = fileEntry(repo, out, entries, entry, path, rel, attrs, opts.filters, substContext);
      if (big) {
        for (const c of out.beginPassThrough()) yield c;
        for await (const chunk of big.stream) {
          out.passedThrough(chunk.length);
          yield chunk;
        }
        out.pad(big.size);
      }
    }
    for (const c of out.take()) yield c;
  }
  for (const c of out.finish()) yield c;
}

/**
 * A regular or executable file: header, content (converted or held whole) and padding; or, for a blob
 * streamed unconverted, its header and the stream, for the caller to pass through and pad. A plain
 * function, not a generator per file: most files need no stream, and thousands of async generators each
 * cost a promise round trip (issue 14).
 */
function fileEntry(
  repo: Repository,
  out: TarBlocker,
  entries: EntryWriter,
  e: TreeEntry,
  path: string,
  rel: string,
  attrs: Map<string, AttrValue>,
  filters: FilterPolicy,
  substContext: (path: string) => SubstContext,
): { size: number; stream: AsyncIterable<Buffer> } | null {
  const mode = e.kind === 'exec' ? 0o775 : 0o664;
  const conv = attrs.size > 0 ? conversionFor(attrs, rel, filters) : NO_CONVERSION;
  const converting = needsContent(conv);
  let blob: BlobContent;
  if (!converting) {
    const r = repo.odb.openBlob(e.oid, STREAM_ABOVE);
    if (r.kind === 'inflate') {
      entries.entry(path, e.oid, TYPE_FILE, mode, r.size, null);
      // Inflate straight into the output buffer when it has room; the scratch byte after the content is
      // overwritten by the padding or the next header.
      const slot = out.reserveData(r.size);
      if (slot) r.readInto(slot[0], slot[1]);
      else out.data(r.read(), false);
      out.pad(r.size);
      return null;
    }
    // Held whole or streamed (a loose object): what blob() would give, already read (one open of the file).
    blob = r;
  } else blob = repo.odb.blob(e.oid, conv.exportSubst ? Infinity : BIG_FILE_THRESHOLD);
  let data = blob.data;
  if (converting && !(blob.size > BIG_FILE_THRESHOLD && !conv.exportSubst)) {
    if (!data) throw new SourcemeshError('E_UNSUPPORTED', `${rel}: ${blob.size} bytes are too many to convert in memory`, { path: rel });
    if (conv.ident) data = expandIdent(data, oidHex(e.oid));
    if (conv.eol !== 'none') data = toCrlf(data, conv.eol);
    if (conv.exportSubst) data = expandExportSubst(data, substContext(rel));
  }
  if (data) {
    entries.entry(path, e.oid, TYPE_FILE, mode, data.length, null);
    out.data(data);
    return null;
  }
  entries.entry(path, e.oid, TYPE_FILE, mode, blob.size, null);
  return { size: blob.size, stream: blob.stream! };
}

/** export-subst's context, built on first use (most trees never need it: it counts objects for %h). */
function lazySubstContext(repo: Repository, resolved: ResolvedCommit): (path: string) => SubstContext {
  let subst: SubstContext | null = null;
  let abbrevMin = 0;
  return (path) => {
    subst ??= {
      commitOid: resolved.oid,
      commit: resolved.commit,
      parents: repo.isShallow(resolved.oid) ? [] : resolved.commit.parents,
      path,
      abbrev: (oid: Oid) => {
        // git's automatic abbreviation: about half the bits of the (packed) object count, at least 7.
        if (abbrevMin === 0) abbrevMin = Math.max(MIN_ABBREV, Math.ceil((31 - Math.clz32(Math.max(1, repo.odb.approximateObjectCount())) + 1) / 2));
        return oidHex(oid).slice(0, abbrevMin >= OID_HEX ? OID_HEX : repo.odb.uniqueAbbrevLength(oid, abbrevMin));
      },
    };
    subst.path = path;
    return subst;
  };
}
