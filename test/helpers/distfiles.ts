// Deterministic test distfiles and manifests built from them.
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { MANIFEST_FORMAT, type Distfile, type Manifest } from '../../src/manifest/distfile.ts';
import { formatManifest } from '../../src/manifest/write.ts';
import { tempDir } from './run.ts';

/** `size` pseudo-random bytes from a seed (xorshift32), the same on every run. */
export function bytes(size: number, seed = 1): Buffer {
  const buf = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    buf[i] = x & 0xff;
  }
  return buf;
}

export const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

export function distfile(name: string, body: Buffer, urls: string[], extra: Partial<Distfile> = {}): Distfile {
  return { name, sha256: sha256(body), urls, ...extra };
}

export async function writeManifest(dir: string, distfiles: Distfile[], name = 'test'): Promise<string> {
  const m: Manifest = { format: MANIFEST_FORMAT, name, distfiles: [...distfiles].sort((a, b) => (a.name < b.name ? -1 : 1)) };
  const file = path.join(dir, 'manifest.json');
  await writeFile(file, formatManifest(m));
  return file;
}

/**
 * A temporary directory with `root/` holding `files` and `manifest.json` pinning each file's sha256 and
 * size, its one URL unreachable (port 9): the start of the seed and torrent tests. A file is given by its
 * size (its bytes then seeded by the size plus `salt`, its URL `http://127.0.0.1:9/NAME`) or by its bytes
 * and, optionally, its URL.
 */
export async function rootWithFiles(t: { after(fn: () => unknown): void }, files: Record<string, number | { body: Buffer; url?: string }>, name: string, salt = 0) {
  const dir = await tempDir(t);
  const root = path.join(dir, 'root');
  await mkdir(root);
  const distfiles: Distfile[] = [];
  for (const [file, given] of Object.entries(files)) {
    const body = typeof given === 'number' ? bytes(given, given + salt) : given.body;
    await writeFile(path.join(root, file), body);
    distfiles.push(distfile(file, body, [(typeof given === 'number' ? undefined : given.url) ?? `http://127.0.0.1:9/${file}`], { size: body.length }));
  }
  const manifest = await writeManifest(dir, distfiles, name);
  return { dir, root, manifest, distfiles, expected: Object.fromEntries(distfiles.map((d) => [d.name, d.sha256!])) };
}
