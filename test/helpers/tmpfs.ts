// A real small or read-only file system for tests (needs root, as CI has), unmounted and removed afterwards.
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export async function mountTmpfs(t: { after(fn: () => Promise<void>): void }, options: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sourcemesh-tmpfs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir]);
  t.after(async () => {
    execFileSync('umount', ['-l', dir]);
    await rm(dir, { recursive: true, force: true });
  });
  return dir;
}
