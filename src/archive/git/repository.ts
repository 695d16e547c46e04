// Opening a local repository without git: find its git directory (a bare repository, a work tree's ".git"
// directory, or a ".git" file pointing elsewhere as in linked work trees and submodules), its common directory
// (gitrepository-layout(5), "commondir"), check that its format is one we read byte-exactly, and resolve and
// peel revisions to commits.

import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { SourcemeshError } from '../../errors.ts';
import { limitsWith, type Limits } from '../../limits.ts';
import { corrupt, objectName, oidHex, type Oid } from './object-id.ts';
import { parseCommit, parseTag, parseTree, type Commit, type TreeEntry } from './objects.ts';
import { ObjectDatabase, readSmallFile } from './odb.ts';
import { RefStore, resolveRevision, splitRevision } from './refs.ts';

export interface ResolvedCommit {
  /** The commit id after peeling tags: what git writes as the pax `comment`. */
  oid: Oid;
  commit: Commit;
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

function looksLikeGitDir(dir: string): boolean {
  return isFile(path.join(dir, 'HEAD')) && (isDir(path.join(dir, 'objects')) || isFile(path.join(dir, 'commondir')));
}

export class Repository {
  readonly gitDir: string;
  readonly commonDir: string;
  readonly odb: ObjectDatabase;
  readonly refs: RefStore;
  readonly limits: Limits;
  private shallow: Set<string> | null = null;

  private constructor(gitDir: string, commonDir: string, limits: Limits) {
    this.gitDir = gitDir;
    this.commonDir = commonDir;
    this.limits = limits;
    this.refs = new RefStore(gitDir, commonDir, limits);
    this.odb = new ObjectDatabase(path.join(commonDir, 'objects'), limits);
  }

  static open(repoPath: string, limits: Limits = limitsWith()): Repository {
    const root = path.resolve(repoPath);
    if (!isDir(root)) throw new SourcemeshError('E_INPUT', `${repoPath}: not a directory`, { repo: repoPath });
    let gitDir: string;
    const dotGit = path.join(root, '.git');
    if (isDir(dotGit)) gitDir = dotGit;
    else if (isFile(dotGit)) {
      // gitrepository-layout(5): a ".git" file holds "gitdir: <path>", relative to the file's directory.
      const m = /^gitdir: (.+?)[\r\n]*$/.exec(readSmallFile(dotGit, limits.gitRefFileBytes));
      if (!m) throw new SourcemeshError('E_INPUT', `${dotGit}: not a "gitdir:" file`, { repo: repoPath });
      gitDir = path.resolve(root, m[1]!);
    } else if (looksLikeGitDir(root)) gitDir = root;
    else throw new SourcemeshError('E_INPUT', `${repoPath}: not a git repository`, { repo: repoPath });
    if (!looksLikeGitDir(gitDir)) throw new SourcemeshError('E_INPUT', `${gitDir}: not a git directory`, { repo: repoPath });
    let commonDir = gitDir;
    const commonFile = path.join(gitDir, 'commondir');
    if (isFile(commonFile)) commonDir = path.resolve(gitDir, readSmallFile(commonFile, limits.gitRefFileBytes).trim());
    checkFormat(path.join(commonDir, 'config'), limits);
    const repo = new Repository(gitDir, commonDir, limits);
    try {
      // git archive honours replacement objects and grafts by default; we do not implement them.
      if (repo.refs.hasRefsUnder('refs/replace/')) {
        throw new SourcemeshError('E_UNSUPPORTED', `${repoPath}: the repository has replace refs (refs/replace/), which git archive would apply`, { repo: repoPath });
      }
      if (existsSync(path.join(commonDir, 'info', 'grafts'))) {
        throw new SourcemeshError('E_UNSUPPORTED', `${repoPath}: the repository has info/grafts, which git archive would apply`, { repo: repoPath });
      }
    } catch (err) {
      repo.close();
      throw err;
    }
    return repo;
  }

  close(): void {
    this.odb.close();
  }

  /**
   * Resolve `rev` (a name or id, then "~N", "^N", "^{commit}" steps) and peel annotated tags down to a
   * commit; a tree or blob is refused. A shallow commit has no parents, as in git.
   */
  resolveCommit(rev: string): ResolvedCommit {
    const split = splitRevision(rev);
    if (!split) throw new SourcemeshError('E_UNSUPPORTED', `${JSON.stringify(rev)}: only names and ids followed by ~N, ^N or ^{commit} are supported`, { ref: rev });
    let at = this.peelToCommit(resolveRevision(split.name, this.refs, this.odb), rev);
    for (const step of split.steps) {
      if (step.op === 'peel' || (step.op === '^' && step.n === 0)) continue;
      for (let i = 0; i < (step.op === '~' ? step.n : 1); i++) {
        const parents = this.isShallow(at.oid) ? [] : at.commit.parents;
        const parent = parents[step.op === '~' ? 0 : step.n - 1];
        if (!parent) throw new SourcemeshError('E_INPUT', `${rev}: commit ${oidHex(at.oid)} has no ${step.op === '~' ? 'parent' : `parent number ${step.n}`}`, { ref: rev });
        at = this.peelToCommit(parent, rev);
      }
    }
    return at;
  }

  private peelToCommit(start: Oid, rev: string): ResolvedCommit {
    let oid = start;
    for (let depth = 0; ; depth++) {
      const obj = this.odb.read(oid);
      if (obj.type === 'commit') return { oid, commit: parseCommit(obj.data, oid) };
      if (obj.type === 'tag') {
        if (depth >= this.limits.gitTagDepth) throw corrupt(objectName(oid), `tags nested deeper than ${this.limits.gitTagDepth}`);
        const tag = parseTag(obj.data, oid);
        oid = tag.object;
        const target = this.odb.read(oid);
        if (target.type !== tag.type) throw corrupt(objectName(oid), `tag says it points to a ${tag.type}, it is a ${target.type}`);
        continue;
      }
      if (obj.type === 'tree') {
        // git archives a bare tree with no commit id and the current time as mtime: not reproducible.
        throw new SourcemeshError('E_UNSUPPORTED', `${rev}: names a tree, not a commit; archiving a tree is not reproducible`, { ref: rev, object: oidHex(oid) });
      }
      throw new SourcemeshError('E_INPUT', `${rev}: names a ${obj.type}, not a commit`, { ref: rev, object: oidHex(oid) });
    }
  }

  readTree(oid: Oid): TreeEntry[] {
    return parseTree(this.odb.read(oid, 'tree').data, oid, this.limits);
  }

  /** $GIT_DIR/info/attributes (shared by linked work trees), or null. */
  infoAttributes(): Buffer | null {
    const file = path.join(this.commonDir, 'info', 'attributes');
    if (!isFile(file)) return null;
    return readSmallFile(file, 100_000_000, true);
  }

  /** Commits recorded in $GIT_DIR/shallow: git treats them as having no parents. */
  isShallow(oid: Oid): boolean {
    if (!this.shallow) {
      const file = path.join(this.commonDir, 'shallow');
      const set = new Set<string>();
      if (isFile(file)) {
        for (const line of readSmallFile(file, this.limits.gitPackedRefsBytes).split('\n')) if (line) set.add(line.trim());
      }
      this.shallow = set;
    }
    return this.shallow.has(oidHex(oid));
  }
}

/**
 * gitrepository-layout(5), "config": refuse what we cannot read exactly. SHA-256 repositories
 * (extensions.objectFormat) would need 32-byte ids everywhere (see object-id.ts); reftable
 * (extensions.refStorage) keeps refs in another format; repository format versions above 1 may add more.
 */
function checkFormat(configFile: string, limits: Limits): void {
  if (!isFile(configFile)) return;
  const text = readSmallFile(configFile, limits.gitRefFileBytes);
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[;#].*$/, '').trim();
    const sec = /^\[\s*([A-Za-z0-9.-]+)(?:\s+"[^"]*")?\s*\]/.exec(line);
    if (sec) {
      section = sec[1]!.toLowerCase();
      continue;
    }
    const kv = /^([A-Za-z][A-Za-z0-9-]*)\s*(?:=\s*(.*))?$/.exec(line);
    if (!kv) continue;
    const key = `${section}.${kv[1]!.toLowerCase()}`;
    const value = (kv[2] ?? 'true').trim().replace(/^"(.*)"$/, '$1').toLowerCase();
    if (key === 'core.repositoryformatversion' && Number(value) > 1) {
      throw new SourcemeshError('E_UNSUPPORTED', `${configFile}: repository format version ${value} is not supported`);
    }
    if (key === 'extensions.objectformat' && value !== 'sha1') {
      throw new SourcemeshError('E_UNSUPPORTED', `${configFile}: ${value} repositories are not supported (SHA-1 only)`);
    }
    if (key === 'extensions.refstorage' && value !== 'files') {
      throw new SourcemeshError('E_UNSUPPORTED', `${configFile}: ref storage "${value}" is not supported`);
    }
  }
}
