// Local clones of upstream repositories, kept in a mirror's state directory, so that git snapshots are
// made from upstream's objects by us rather than downloaded from a forge's snapshot endpoint.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { SourcemeshError, fromSystemError, isSourcemeshError } from '../errors.ts';
import { ensureDir, statIfExists } from '../fs/files.ts';
import { isLocalRepo } from '../manifest/distfile.ts';

const run = promisify(execFile);

/**
 * Options for every git call: no prompts, no system or user configuration, and only transports that
 * cannot run commands (`ext::` and friends stay forbidden).
 */
export const GIT_SAFE_CONFIG = [
  '-c', 'protocol.allow=never',
  '-c', 'protocol.https.allow=always',
  '-c', 'protocol.http.allow=always',
  '-c', 'protocol.git.allow=always',
  '-c', 'protocol.file.allow=always',
  '-c', 'core.fsmonitor=false',
];

/** `--offline`: later `-c` win, so only the local transport is left (nothing git does can reach the network). */
const GIT_LOCAL_ONLY = ['-c', 'protocol.https.allow=never', '-c', 'protocol.http.allow=never', '-c', 'protocol.git.allow=never'];

export function gitEnv(): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, GIT_TERMINAL_PROMPT: '0', GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', LC_ALL: 'C', HOME: process.env.HOME };
}

/**
 * The SOCKS proxy git's own connections go through (`--proxy`, `--tor`), per repository (stream
 * isolation); undefined: direct. Set once by the command that runs sync.
 */
let proxyFor: ((repo: string) => string | undefined) | undefined;

export function routeGitThrough(fn: ((repo: string) => string | undefined) | undefined): void {
  proxyFor = fn;
}

/**
 * What a clone or fetch of `repo` adds when a proxy is set: git's HTTP(S) transport through it (libcurl
 * takes socks5h:// URLs, names resolved by the proxy), in the environment so that credentials stay out
 * of the process list; and only the http(s) and local transports: git:// and ssh:// would connect directly.
 */
function viaProxy(repo: string): { args: string[]; env: NodeJS.ProcessEnv } {
  const proxy = proxyFor?.(repo);
  if (!proxy) return { args: [], env: {} };
  const transports = ['protocol.allow=never', 'protocol.http.allow=always', 'protocol.https.allow=always', 'protocol.file.allow=always'];
  return { args: transports.flatMap((c) => ['-c', c]), env: { GIT_CONFIG_COUNT: '1', GIT_CONFIG_KEY_0: 'http.proxy', GIT_CONFIG_VALUE_0: proxy } };
}

export async function git(args: string[], opts: { cwd?: string; signal?: AbortSignal; repo?: string; offline?: boolean } = {}): Promise<string> {
  try {
    const proxy = opts.repo !== undefined ? viaProxy(opts.repo) : { args: [], env: {} };
    const { stdout } = await run('git', [...GIT_SAFE_CONFIG, ...proxy.args, ...(opts.offline ? GIT_LOCAL_ONLY : []), ...args], { cwd: opts.cwd, env: { ...gitEnv(), ...proxy.env }, signal: opts.signal, maxBuffer: 16 << 20 });
    return stdout;
  } catch (err) {
    const e = err as { code?: string | number; stderr?: string; message: string };
    if (e.code === 'ENOENT') throw new SourcemeshError('E_UNSUPPORTED', 'git is not installed (needed to clone repositories for git snapshots)');
    const why = (e.stderr ?? e.message).trim().split('\n').filter(Boolean).at(-1) ?? 'failed';
    throw new SourcemeshError('E_ARCHIVE', `git ${args.filter((a) => !a.startsWith('-')).slice(0, 2).join(' ')}: ${why}`, { retryable: false, exitCode: typeof e.code === 'number' ? e.code : undefined });
  }
}

/** Where a repository's bare clone lives: readable, and distinct for distinct URLs. */
export function cloneDirFor(stateDir: string, repo: string): string {
  const readable = repo.replace(/^[a-z]+:\/\//i, '').replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._]+/, '').slice(0, 100);
  const tag = createHash('sha256').update(repo).digest('hex').slice(0, 12);
  return path.join(stateDir, 'git', `${readable}-${tag}.git`);
}

/**
 * A bare clone of `repo` that contains `ref`, cloned or fetched as needed; returns the clone and the
 * commit `ref` names. A clone is made under a temporary name and renamed, so a crash never leaves a
 * half-cloned repository under the final name. `offline` (`fetch --offline`): a repository on this
 * machine is cloned and fetched as ever, but a remote one only used as its clone in the store already
 * is, never cloned nor fetched (README, `fetch`).
 */
export async function ensureRepo(repo: string, ref: string, stateDir: string, signal?: AbortSignal, opts: { offline?: boolean } = {}): Promise<{ dir: string; commit: string }> {
  const dir = cloneDirFor(stateDir, repo);
  // Several distfiles of one repository are fetched at once: one clone or fetch at a time per clone.
  const previous = busy.get(dir) ?? Promise.resolve();
  const mine = previous.catch(() => {}).then(() => ensureRepoNow(dir, repo, ref, signal, Boolean(opts.offline)));
  const tail = mine.catch(() => {});
  busy.set(dir, tail);
  try {
    return await mine;
  } finally {
    if (busy.get(dir) === tail) busy.delete(dir);
  }
}

const busy = new Map<string, Promise<unknown>>();

async function ensureRepoNow(dir: string, repo: string, ref: string, signal: AbortSignal | undefined, offline: boolean): Promise<{ dir: string; commit: string }> {
  const noNetwork = offline && !isLocalRepo(repo);
  // Only a clone that is not there is made; one that cannot be looked at (ELOOP, EIO) is an error.
  if (!(await statIfExists(dir))) {
    if (noNetwork) throw new SourcemeshError('E_NO_SOURCE', `${repo}: not cloned in the store (${dir}), and --offline does not clone`, { repo, ref });
    await ensureDir(path.dirname(dir), 'git state');
    const temp = `${dir}.${process.pid}.tmp`;
    await rm(temp, { recursive: true, force: true });
    await git(['clone', '--bare', '--quiet', '--', repo, temp], { signal, repo, offline });
    // Another process may have finished its clone first: keep that one.
    await rename(temp, dir).catch(async (err) => {
      if (!(await statIfExists(dir))) throw fromSystemError(err, `cannot move the clone of ${repo} to ${dir}`);
      await rm(temp, { recursive: true, force: true });
    });
  }
  let commit = await resolveCommit(dir, ref, signal);
  if (!commit) {
    if (noNetwork) throw new SourcemeshError('E_NO_SOURCE', `${repo}: no commit "${ref}" in the local clone ${dir} (--offline: not fetched)`, { repo, ref });
    await git(['fetch', '--quiet', '--tags', '--force', '--prune', 'origin', '+refs/heads/*:refs/heads/*'], { cwd: dir, signal, repo, offline });
    commit = await resolveCommit(dir, ref, signal);
  }
  if (!commit) throw new SourcemeshError('E_ARCHIVE', `${repo}: no commit "${ref}" after fetching`, { repo, ref });
  return { dir, commit };
}

async function resolveCommit(dir: string, ref: string, signal?: AbortSignal): Promise<string | undefined> {
  try {
    return (await git(['rev-parse', '--verify', '--quiet', '--end-of-options', `${ref}^{commit}`], { cwd: dir, signal })).trim() || undefined;
  } catch (err) {
    // --verify --quiet exits 1, saying nothing, when the name names no commit; anything else (a clone
    // that is not a repository, an abort) is reported, not taken for a ref to fetch.
    if (isSourcemeshError(err, 'E_ARCHIVE') && err.details.exitCode === 1) return undefined;
    throw err;
  }
}
