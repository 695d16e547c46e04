// ROOT/sha256/HEX for a static web server in front of a mirror root (`mirror sync --static-links`,
// docs/OPERATIONS.md "Serving with nginx"). `serve` answers /sha256/HEX from its index in memory; a
// stock server can only answer with a file of that name, so sync writes one: a hard link to the
// verified file (never a symlink, which nginx is told not to follow, and never a copy). Links are made
// under a hidden temporary name and renamed into place, so a link is either whole and correct or absent.
//
// What the root no longer serves is taken away: a HEX (or HEX.pieces) whose hash no file of the index
// has any more is removed, so the static server answers 404 where `serve` would.
import { link, lstat, readdir, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { fromSystemError } from '../errors.ts';
import { ensureDir, fsyncDir } from '../fs/files.ts';
import type { FileIndex } from './file-index.ts';

export interface HashLinkReport {
  /** Links made or replaced this run. */
  linked: number;
  /** Links and piece layers removed: their hash is no longer served. */
  removed: number;
  /** Files that could not be linked (another file system under the root), with the cause. */
  skipped: { name: string; why: string }[];
}

const HEX_NAME = /^[0-9a-f]{64}$/;
const PIECES_NAME = /^([0-9a-f]{64})\.pieces$/;
/** Our temporary names: hidden, so no server ever answers with a link being made. */
const TEMP_NAME = /^\.[0-9a-f]{64}\.link-\d+$/;

/** Make ROOT/sha256/HEX a hard link to the indexed file of each hash; remove the ones of hashes gone. */
export async function publishHashLinks(root: string, index: FileIndex): Promise<HashLinkReport> {
  const dir = path.join(root, 'sha256');
  await ensureDir(dir, 'mirror hash links');
  const report: HashLinkReport = { linked: 0, removed: 0, skipped: [] };
  for (const [hex, f] of index.bySha256) {
    const out = path.join(dir, hex);
    const st = await lstat(out).catch(() => undefined);
    if (st?.isFile() && st.dev === f.dev && st.ino === f.ino) continue;
    const temp = path.join(dir, `.${hex}.link-${process.pid}`);
    await unlink(temp).catch(() => undefined);
    try {
      await link(f.path, temp);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EXDEV' || code === 'EPERM' || code === 'EMLINK') {
        report.skipped.push({ name: f.name, why: fromSystemError(err, `cannot hard-link ${f.path} to ${out}`).message });
        continue;
      }
      throw fromSystemError(err, `cannot hard-link ${f.path} to ${out}`);
    }
    await rename(temp, out).catch((err) => {
      throw fromSystemError(err, `cannot rename ${temp} to ${out}`);
    });
    report.linked++;
  }
  for (const entry of await readdir(dir)) {
    const pieces = PIECES_NAME.exec(entry);
    const gone = HEX_NAME.test(entry) ? !index.bySha256.has(entry) : pieces ? !index.bySha256.has(pieces[1]!) : TEMP_NAME.test(entry);
    if (!gone) continue;
    const st = await lstat(path.join(dir, entry)).catch(() => undefined);
    if (st === undefined || st.isDirectory()) continue;
    await unlink(path.join(dir, entry)).catch((err) => {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fromSystemError(err, `cannot remove ${path.join(dir, entry)}`);
    });
    if (!TEMP_NAME.test(entry)) report.removed++;
  }
  // The names are durable before sync reports success.
  await fsyncDir(dir);
  return report;
}
