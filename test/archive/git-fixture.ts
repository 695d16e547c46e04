// Repositories built with the real git for the archive conformance suite: deterministic (fixed dates and
// identities, no system or user configuration, HOME in a temporary directory), so that any difference
// between our tar and `git archive`'s is ours.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { archiveTar, type ArchiveTarOptions } from '../../src/archive/index.ts';

export const HOME = mkdtempSync(path.join(os.tmpdir(), 'sourcemesh-archive-home-'));
process.on('exit', () => rmSync(HOME, { recursive: true, force: true }));

let clock = 1_700_000_000;

export function gitEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME,
    XDG_CONFIG_HOME: path.join(HOME, '.config'),
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    LC_ALL: 'C',
    TZ: 'UTC',
    GIT_AUTHOR_NAME: 'A U Thor',
    GIT_AUTHOR_EMAIL: 'author@example.org',
    GIT_AUTHOR_DATE: `${clock} +0130`,
    GIT_COMMITTER_NAME: 'C O Mitter',
    GIT_COMMITTER_EMAIL: 'committer@example.org',
    GIT_COMMITTER_DATE: `${clock + 60} -0500`,
    ...extra,
  };
}

export function git(dir: string, args: string[], opts: { input?: string | Buffer; env?: Record<string, string> } = {}): Buffer {
  return execFileSync('git', args, { cwd: dir, input: opts.input, env: gitEnv(opts.env), maxBuffer: 1 << 30, stdio: ['pipe', 'pipe', 'pipe'] });
}

export function gitText(dir: string, args: string[], opts: { input?: string | Buffer; env?: Record<string, string> } = {}): string {
  return git(dir, args, opts).toString('utf8').trim();
}

export function tempRoot(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sourcemesh-archive-'));
  return dir;
}

export function initRepo(dir: string, bare = false): string {
  mkdirSync(dir, { recursive: true });
  git(dir, ['-c', 'init.defaultBranch=main', 'init', '-q', ...(bare ? ['--bare'] : []), '.']);
  return dir;
}

export type FileSpec = string | Buffer | { content: string | Buffer; exec?: boolean } | { symlink: string };

/** Write files into a work tree (paths may contain "/"). */
export function writeFiles(dir: string, files: Record<string, FileSpec>): void {
  for (const [name, spec] of Object.entries(files)) {
    const file = path.join(dir, name);
    mkdirSync(path.dirname(file), { recursive: true });
    rmSync(file, { force: true, recursive: true });
    if (typeof spec === 'string' || Buffer.isBuffer(spec)) writeFileSync(file, spec);
    else if ('symlink' in spec) symlinkSync(spec.symlink, file);
    else {
      writeFileSync(file, spec.content);
      chmodSync(file, spec.exec ? 0o755 : 0o644);
    }
  }
}

/** Commit everything in the work tree; each commit gets a later, distinct date. Returns the commit id. */
export function commitAll(dir: string, message = 'commit', extraEnv: Record<string, string> = {}): string {
  clock += 3600;
  git(dir, ['add', '-A']);
  git(dir, ['commit', '-q', '--allow-empty', '-m', message], { env: extraEnv });
  return gitText(dir, ['rev-parse', 'HEAD']);
}

export function makeRepo(dir: string, files: Record<string, FileSpec>, message = 'initial'): string {
  initRepo(dir);
  writeFiles(dir, files);
  return commitAll(dir, message);
}

export function gitArchive(dir: string, ref: string, prefix?: string): Buffer {
  return git(dir, ['archive', '--format=tar', ...(prefix !== undefined ? [`--prefix=${prefix}`] : []), ref]);
}

export async function ourArchive(opts: ArchiveTarOptions): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of archiveTar(opts)) chunks.push(c);
  return Buffer.concat(chunks);
}

/** Describe the tar entry whose header covers `offset`, for failure messages. */
function entryAt(tar: Buffer, offset: number): string {
  let pos = 0;
  while (pos + 512 <= tar.length) {
    const h = tar.subarray(pos, pos + 512);
    if (h.every((b) => b === 0)) return `end-of-archive zeros at ${pos}`;
    const name = h.toString('latin1', 0, 100).replace(/\0.*$/s, '');
    const size = parseInt(h.toString('latin1', 124, 136), 8) || 0;
    const end = pos + 512 + Math.ceil(size / 512) * 512;
    if (offset < end) return `entry ${JSON.stringify(name)} (type ${String.fromCharCode(h[156]!)}) at ${pos}, ${offset < pos + 512 ? `header byte ${offset - pos}` : `data byte ${offset - pos - 512}`}`;
    pos = end;
  }
  return `past the entries`;
}

export function tarDifference(ours: Buffer, theirs: Buffer): string | null {
  if (ours.equals(theirs)) return null;
  let i = 0;
  while (i < ours.length && i < theirs.length && ours[i] === theirs[i]) i++;
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex').slice(0, 16);
  return `tars differ at byte ${i} (ours ${ours.length} bytes ${sha(ours)}, git ${theirs.length} bytes ${sha(theirs)}): git's ${entryAt(theirs, i)}; ours ${entryAt(ours, i)}; ` +
    `git ${JSON.stringify(theirs.toString('latin1', Math.max(0, i - 16), i + 32))} ours ${JSON.stringify(ours.toString('latin1', Math.max(0, i - 16), i + 32))}`;
}

/** Compare our tar with git's for each (ref, prefix); throws with a precise description of the first difference. */
export async function assertSameArchive(dir: string, ref: string, prefix?: string, extra: Partial<ArchiveTarOptions> = {}): Promise<void> {
  const theirs = gitArchive(dir, ref, prefix);
  const ours = await ourArchive({ repoPath: dir, ref, prefix: prefix ?? '', ...extra });
  const diff = tarDifference(ours, theirs);
  if (diff) throw new Error(`${dir} ${ref} prefix=${JSON.stringify(prefix)}: ${diff}`);
}
