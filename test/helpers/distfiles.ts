// Deterministic test distfiles and manifests built from them.
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { MANIFEST_FORMAT, type Distfile, type Manifest } from '../../src/manifest/distfile.ts';
import { formatManifest } from '../../src/manifest/write.ts';

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
