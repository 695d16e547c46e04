// General file-system helpers shared by the store, the mirror and the trust layer: mkdir -p with the real
// cause, fsync of a file or a directory, and the liveness check behind every "PID"-named temporary.
import { constants as fsc } from 'node:fs';
import { mkdir, open, stat } from 'node:fs/promises';
import path from 'node:path';
import { fromSystemError } from '../errors.ts';

/** True when PID names a live process (EPERM: alive, owned by someone else). */
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
