// Real git repositories for tests: deterministic commits, no user or system configuration.
import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

export function gitIn(dir: string, args: string[], input?: Buffer | string): Buffer {
  return execFileSync('git', args, {
    cwd: dir,
    input,
    maxBuffer: 1 << 30,
    env: {
      PATH: process.env.PATH, HOME: dir, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', LC_ALL: 'C', TZ: 'UTC',
      GIT_AUTHOR_NAME: 'Test', GIT_AUTHOR_EMAIL: 'test@example.org', GIT_AUTHOR_DATE: '1700000000 +0000',
      GIT_COMMITTER_NAME: 'Test', GIT_COMMITTER_EMAIL: 'test@example.org', GIT_COMMITTER_DATE: '1700000000 +0000',
    },
  });
}

/** A repository with the given files committed; returns the commit id. */
export async function makeRepo(dir: string, files: Record<string, string | Buffer>): Promise<string> {
  await mkdir(dir, { recursive: true });
  gitIn(dir, ['init', '-q', '-b', 'main']);
  return commitFiles(dir, files, 'initial');
}

export async function commitFiles(dir: string, files: Record<string, string | Buffer>, message: string): Promise<string> {
  for (const [name, body] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await writeFile(path.join(dir, name), body);
  }
  gitIn(dir, ['add', '-A']);
  gitIn(dir, ['commit', '-q', '-m', message]);
  return gitIn(dir, ['rev-parse', 'HEAD']).toString().trim();
}

/** What live-bootstrap's mirror.sh produces: `git archive --prefix P REF | gzip -n -LEVEL`. */
export function gitArchiveGzip(dir: string, prefix: string, ref: string, level = 6): Buffer {
  const tar = gitIn(dir, ['archive', '--format=tar', `--prefix=${prefix}`, ref]);
  return execFileSync('gzip', ['-n', `-${level}`], { input: tar, maxBuffer: 1 << 30 });
}
