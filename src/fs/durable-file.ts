// Small files that must never be seen half-written, nor lost after we said they were written: written
// under a temporary name of their own, fsynced, renamed over the final name, and the directory fsynced
// so that the rename itself survives a crash.
import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { fromSystemError } from '../errors.ts';
import { fsyncDir } from './files.ts';

/** Replace FILE with `data`, atomically and durably; `what` names the file in an error. */
export async function writeFileDurable(file: string, data: string | Uint8Array, what = 'cannot write', mode = 0o644): Promise<void> {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
  try {
    const fh = await open(temp, 'wx', mode);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(temp, file);
    await fsyncDir(path.dirname(file));
  } catch (err) {
    await rm(temp, { force: true });
    throw fromSystemError(err, `${file}: ${what}`);
  }
}
