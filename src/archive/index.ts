// The archiver's API: a tar of a commit of a local repository, byte-identical to
// `git archive --format=tar [--prefix P] REF` of git 2.39 with default configuration, read with our own
// object reader (no git binary). The CLI and mirror sync call this; compression is applied by the caller.

import { Readable } from 'node:stream';
import { SourcemeshError } from '../errors.ts';
import { limitsWith, type Limits } from '../limits.ts';
import type { FilterPolicy } from './attributes/convert.ts';
import { oidHex } from './git/object-id.ts';
import { Repository, type ResolvedCommit } from './git/repository.ts';
import { gitTar } from './tar/git-tar.ts';
import { TarBlocker } from './tar/writer.ts';

export type { FilterPolicy } from './attributes/convert.ts';

export interface ArchiveTarOptions {
  /** A repository: its work tree, its .git directory, or a bare repository. */
  repoPath: string;
  /** A ref name (tag, branch, HEAD, ...) or a full or abbreviated commit or tag id. */
  ref: string;
  /** Prepended to every path, as git's --prefix; "name/" also adds an entry for the directory. */
  prefix?: string;
  /** A `filter=` attribute: E_UNSUPPORTED (default), or ignored as git does when no driver is configured. */
  filters?: FilterPolicy;
  limits?: Partial<Limits>;
  /** Approximate size of the chunks yielded (default 512 KiB). */
  chunkBytes?: number;
  /** The repository at repoPath already open (its packs read once for several archives); the caller closes it. */
  repository?: Repository;
}

export interface PreparedArchive {
  /** The commit archived (tags peeled): the pax global header's comment. */
  readonly commitId: string;
  readonly treeId: string;
  /** The committer timestamp git uses as every entry's mtime. */
  readonly mtime: bigint;
  /** The tar stream; it can be consumed once, and closes the repository when done or abandoned. */
  chunks(): AsyncGenerator<Buffer>;
  /** Release the repository without reading the stream. */
  close(): void;
  /** The consumer has written `chunk` out and keeps nothing of it: its buffer may be reused for the stream. */
  recycle(chunk: Uint8Array): void;
}

/** Check a --prefix: raw bytes are kept as given, but nothing that would escape or hit .git when extracted. */
export function checkPrefix(prefix: string, limits: Limits): void {
  const bad = (cause: string) => new SourcemeshError('E_INPUT', `prefix ${JSON.stringify(prefix)}: ${cause}`, { prefix });
  if (prefix.length > limits.gitPathBytes) throw bad('too long');
  if (prefix.includes('\0')) throw bad('contains a NUL byte');
  if (prefix.startsWith('/')) throw bad('is an absolute path');
  for (const part of prefix.split('/')) {
    if (part === '..') throw bad('contains a ".." component');
    if (part.toLowerCase() === '.git') throw bad('contains a ".git" component');
  }
}

/** Resolve the ref and check the options now (errors surface here), returning the stream to read later. */
export function openArchive(opts: ArchiveTarOptions): PreparedArchive {
  const limits = limitsWith(opts.limits);
  // The prefix goes into the tar byte for byte: a JavaScript string is taken as UTF-8.
  const prefix = Buffer.from(opts.prefix ?? '', 'utf8').toString('latin1');
  checkPrefix(opts.prefix ?? '', limits);
  const borrowed = opts.repository;
  const repo = borrowed ?? Repository.open(opts.repoPath, limits);
  const release = () => { if (!borrowed) repo.close(); };
  let resolved: ResolvedCommit;
  try {
    resolved = repo.resolveCommit(opts.ref);
  } catch (err) {
    release();
    throw err;
  }
  let used = false;
  const out = new TarBlocker(opts.chunkBytes);
  return {
    commitId: oidHex(resolved.oid),
    treeId: oidHex(resolved.commit.tree),
    mtime: resolved.commit.date,
    close: release,
    recycle: (chunk) => out.recycle(chunk),
    async *chunks() {
      if (used) throw new SourcemeshError('E_INTERNAL', 'an archive stream can be read only once');
      used = true;
      try {
        yield* gitTar({ repo, resolved, prefix, filters: opts.filters ?? 'error', out });
      } finally {
        release();
      }
    },
  };
}

/** The tar as an async generator of Buffers (pull-based: nothing is read ahead of the consumer). */
export async function* archiveTar(opts: ArchiveTarOptions): AsyncGenerator<Buffer> {
  yield* openArchive(opts).chunks();
}

/** The tar as a Node Readable (backpressure from the generator). */
export function archiveTarStream(opts: ArchiveTarOptions): Readable {
  return Readable.from(archiveTar(opts), { objectMode: false });
}
