// A distfiles directory: files by their plain names, as live-bootstrap expects them. We export store
// objects into it (hard links where possible) and check it against a manifest.
import { lstat, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { fromSystemError } from '../errors.ts';
import type { Distfile } from '../manifest/distfile.ts';
import { digestsEqual, sha256File } from './digest.ts';
import { checkPinned } from './pinned.ts';
import { disown, fsyncDir, isLiveOwner, own } from '../fs/files.ts';
import { linkOrCopy, type StoredObject } from './store.ts';

const TEMP_RE = /^\.(.+)\.(\d+)\.sourcemesh-tmp$/;

/** Place `obj` at DIR/NAME atomically. An existing file with the right bytes is left alone. */
export async function exportObject(dir: string, name: string, obj: StoredObject): Promise<'exported' | 'present'> {
  const dest = path.join(dir, name);
  try {
    const [have, want] = await Promise.all([lstat(dest).catch(() => undefined), lstat(obj.path)]);
    if (have?.isFile()) {
      if (have.ino === want.ino && have.dev === want.dev) return 'present';
      if (have.size === want.size && digestsEqual(await sha256File(dest), obj.sha256)) return 'present';
    }
    const temp = path.join(dir, `.${name}.${process.pid}.sourcemesh-tmp`);
    own(temp);
    try {
      await rm(temp, { force: true });
      await linkOrCopy(obj.path, temp);
      await rename(temp, dest);
    } finally {
      disown(temp);
    }
    await fsyncDir(dir);
    return 'exported';
  } catch (err) {
    throw fromSystemError(err, `${dest}: cannot export`);
  }
}

/** Remove temporary files left in DIR by exports of processes that died (or of an earlier run with our PID). */
export async function sweepExportTemps(dir: string): Promise<number> {
  let n = 0;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const m = TEMP_RE.exec(name);
    if (m && !isLiveOwner(path.join(dir, name), Number(m[2]))) {
      await rm(path.join(dir, name), { force: true });
      n++;
    }
  }
  return n;
}

export interface DirReport {
  ok: string[];
  missing: string[];
  /** `field` is set when the file's tarSha256 (not its sha256) is what differs. */
  mismatched: { name: string; expected: string; actual: string; field?: 'tarSha256' }[];
  extra: string[];
}

/** Hash every expected file of DIR (streamed) and list what is missing, wrong or unexpected. */
export async function verifyDir(dir: string, distfiles: Distfile[], jobs = 4): Promise<DirReport> {
  const report: DirReport = { ok: [], missing: [], mismatched: [], extra: [] };
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    throw fromSystemError(err, `${dir}: cannot read the distfiles directory`);
  }
  const present = new Set(names);
  const expected = new Set(distfiles.map((d) => d.name));
  report.extra = names.filter((n) => !expected.has(n) && !TEMP_RE.test(n)).sort();
  let next = 0;
  const worker = async () => {
    while (next < distfiles.length) {
      const d = distfiles[next++]!;
      if (!present.has(d.name)) {
        report.missing.push(d.name);
        continue;
      }
      // Every pinned hash: sha256, and tarSha256 (the decompressed tar's) when the manifest pins it.
      const c = await checkPinned(path.join(dir, d.name), d).catch((err) => { throw fromSystemError(err, `${path.join(dir, d.name)}`); });
      if (c.ok) report.ok.push(d.name);
      else report.mismatched.push({ name: d.name, expected: c.expected, actual: c.actual, ...(c.field === 'tarSha256' ? { field: c.field } : {}) });
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, jobs) }, worker));
  report.ok.sort();
  report.missing.sort();
  report.mismatched.sort((a, b) => (a.name < b.name ? -1 : 1));
  return report;
}
