// Benchmark inputs: large deterministic pseudo-random files, written in a streaming way (one chunk in
// memory at a time), kept between runs and reused only when their bytes still hash to what was
// recorded when they were made.
import { createCipheriv, createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, lstat, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import path from 'node:path';

const CHUNK = 1 << 20;
// The content is the AES-256-CTR keystream under a key derived from the seed: incompressible, no
// repeated blocks, identical on every machine and OpenSSL version. Bump the tag to change the content.
const GENERATOR = 'aes-256-ctr-keystream/v1';

export interface FileSpec {
  name: string;
  size: number;
  seed: number;
}

export interface BenchFile extends FileSpec {
  path: string;
  sha256: string;
}

interface Recorded {
  generator: string;
  seed: number;
  size: number;
  sha256: string;
}

/**
 * Make sure DIR holds a directory of our own (not a symlink planted in a shared /tmp, not another
 * user's), readable by others: nginx workers may run as another user.
 */
export async function ensureOwnDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const s = await lstat(dir);
  const uid = process.getuid?.();
  if (!s.isDirectory() || (uid !== undefined && s.uid !== uid)) throw new Error(`${dir}: not a directory owned by this user; remove it or set BENCH_DIR`);
  await chmod(dir, 0o755);
}

/** Hash a file as a stream (1 MiB reads). */
export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: CHUNK })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * DIR/NAME with `size` bytes of content fixed by `seed`. An existing file is reused when its sidecar
 * (NAME.json) says it was made by this generator with this seed and size and the file still hashes to
 * the recorded sha256; otherwise it is written again (to a temporary name, renamed when complete).
 */
export async function ensureFile(dir: string, spec: FileSpec, log: (line: string) => void = () => {}): Promise<BenchFile> {
  await ensureOwnDir(dir);
  const file = path.join(dir, spec.name);
  const sidecar = `${file}.json`;
  const recorded = await readFile(sidecar, 'utf8').then((t) => JSON.parse(t) as Recorded, () => undefined);
  const have = await stat(file).catch(() => undefined);
  if (recorded && have?.isFile() && recorded.generator === GENERATOR && recorded.seed === spec.seed && recorded.size === spec.size && have.size === spec.size) {
    if ((await sha256File(file)) === recorded.sha256) return { ...spec, path: file, sha256: recorded.sha256 };
    log(`${spec.name}: content changed since it was generated; writing it again`);
  }
  log(`generating ${spec.name} (${(spec.size / CHUNK).toFixed(0)} MiB)`);
  await rm(sidecar, { force: true });
  const key = createHash('sha256').update(`sourcemesh-bench ${spec.seed}`).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(CHUNK);
  const hash = createHash('sha256');
  const temp = `${file}.${process.pid}.tmp`;
  const out = createWriteStream(temp, { mode: 0o644 });
  try {
    for (let written = 0; written < spec.size;) {
      const n = Math.min(CHUNK, spec.size - written);
      const chunk = cipher.update(n === CHUNK ? zeros : zeros.subarray(0, n));
      hash.update(chunk);
      if (!out.write(chunk)) await once(out, 'drain');
      written += n;
    }
    out.end();
    await once(out, 'close');
  } catch (err) {
    out.destroy();
    await rm(temp, { force: true });
    throw err;
  }
  await rename(temp, file);
  const sha256 = hash.digest('hex');
  await writeFile(sidecar, `${JSON.stringify({ generator: GENERATOR, seed: spec.seed, size: spec.size, sha256 } satisfies Recorded)}\n`);
  return { ...spec, path: file, sha256 };
}
