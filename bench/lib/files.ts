// Benchmark inputs: large deterministic files written in a streaming way (never held in memory), kept
// between runs and reused when their recorded sha256 still matches.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { once } from 'node:events';

const MiB = 1 << 20;

/** `size` bytes: a pseudo-random 1 MiB block, varied per MiB and per seed so no two blocks repeat. */
export async function ensureFile(dir: string, name: string, size: number, seed: number): Promise<{ path: string; sha256: string; size: number }> {
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, name);
  const meta = `${file}.sha256`;
  const recorded = await readFile(meta, 'utf8').catch(() => '');
  const have = await stat(file).catch(() => undefined);
  if (recorded && have?.size === size) return { path: file, sha256: recorded.trim(), size };
  const block = Buffer.alloc(MiB);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < MiB; i += 4) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    block.writeUInt32LE(x, i);
  }
  const hash = createHash('sha256');
  const out = createWriteStream(file);
  for (let written = 0, n = 0; written < size; n++) {
    const chunk = Buffer.from(block.subarray(0, Math.min(MiB, size - written)));
    chunk.writeUInt32LE(n, 0);
    chunk.writeUInt32LE(seed, 4);
    hash.update(chunk);
    if (!out.write(chunk)) await once(out, 'drain');
    written += chunk.length;
  }
  out.end();
  await once(out, 'close');
  const sha256 = hash.digest('hex');
  await writeFile(meta, sha256);
  return { path: file, sha256, size };
}
