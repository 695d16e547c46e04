import { createHash, timingSafeEqual, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';

/** Stream a file (or its first `end` bytes) through `hash`; never holds the file in memory. */
export async function hashFile(file: string, hash: Hash = createHash('sha256'), end?: number): Promise<Hash> {
  if (end === 0) return hash;
  const stream = createReadStream(file, { highWaterMark: 1 << 20, ...(end !== undefined ? { end: end - 1 } : {}) });
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash;
}

/** Hex SHA-256 of bytes or of a string's UTF-8 encoding, in one call. */
export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export async function sha256File(file: string): Promise<string> {
  return (await hashFile(file)).digest('hex');
}

/** Constant-time comparison of two hex digests of equal length (docs/ARCHITECTURE.md, "Conventions"). */
export function digestsEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}
