// General file-system helpers shared by the store, the mirror and the trust layer: mkdir -p with the real
// cause, fsync of a file or a directory, the liveness check behind every "PID"-named temporary, and
// stat/readdir/readlink of what may be absent without taking a fault for an absence.
import { constants as fsc, readdirSync, statSync, type Stats } from 'node:fs';
import { mkdir, open, readdir, readlink, stat } from 'node:fs/promises';
import path from 'node:path';
import { fromSystemError, isNotFound } from '../errors.ts';

/**
 * True when PID names a live process (EPERM: alive, owned by someone else). For a file named with a PID
 * ask `isLiveOwner`: our own PID says nothing about who made a file.
 */
export function isProcessAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The PID-named temporaries and locks this process is writing or holding, by absolute path. One named with
 * our own PID that is not here was left by an earlier process that had the same PID: in a container every
 * run may be PID 1, so a temporary of a killed run would otherwise never be swept.
 */
const ownedHere = new Set<string>();

/** Say that this process is writing or holding FILE, named with its PID, until `disown(FILE)`. Call before creating it. */
export function own(file: string): void {
  ownedHere.add(path.resolve(file));
}

export function disown(file: string): void {
  ownedHere.delete(path.resolve(file));
}

/** Whether this process registered FILE with `own` (and has not disowned it). */
export function ownsHere(file: string): boolean {
  return ownedHere.has(path.resolve(file));
}

/**
 * Is the temporary or lock FILE, named with PID, owned by a live writer? Every sweep asks this: another
 * PID is alive or not; our own PID only when this process registered FILE (`own`); no PID, not at all.
 */
export function isLiveOwner(file: string, pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  return pid === process.pid ? ownsHere(file) : isProcessAlive(pid);
}

/**
 * mkdir -p that reports the real cause: a recursive mkdir says ENOENT where the first missing
 * component could not be made (a read-only file system, say), so retry that one step to learn why.
 */
export async function ensureDir(dir: string, what: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    let cause = err;
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      let missing = path.resolve(dir);
      while (await stat(path.dirname(missing)).then(() => false, () => true)) missing = path.dirname(missing);
      await mkdir(missing).catch((e) => (cause = e));
    }
    throw fromSystemError(cause, `${what}: cannot create ${dir}`);
  }
}

export async function fsyncFile(p: string): Promise<void> {
  const fh = await open(p, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

// Looking for something that may not be there: only ENOENT and ENOTDIR mean it is not (errors.ts
// isNotFound). EACCES, EIO, ELOOP and the like are faults of the disk or of the tree, thrown in our family
// naming the path, never taken for "not found".

export async function statIfExists(p: string): Promise<Stats | undefined> {
  try {
    return await stat(p);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw fromSystemError(err, p);
  }
}

export function statIfExistsSync(p: string): Stats | undefined {
  try {
    return statSync(p, { throwIfNoEntry: false }); // no exception for the common ENOENT: cheap in lookups
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw fromSystemError(err, p);
  }
}

/** A directory's names; none when it is not there. */
export async function readdirIfExists(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if (isNotFound(err)) return [];
    throw fromSystemError(err, dir);
  }
}

export function readdirIfExistsSync(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch (err) {
    if (isNotFound(err)) return [];
    throw fromSystemError(err, dir);
  }
}

/** A symlink's target; '' when there is none (nothing there, or not a symlink: EINVAL). */
export async function readlinkIfAny(p: string): Promise<string> {
  try {
    return await readlink(p);
  } catch (err) {
    if (isNotFound(err) || (err as NodeJS.ErrnoException).code === 'EINVAL') return '';
    throw fromSystemError(err, p);
  }
}
