// The canonical tar checksum, `tarSha256`: the sha256 of a tarball's decompressed tar stream, the same
// whichever compressor (gzip, xz, bzip2, none) made the file. A manifest may pin it beside or instead of
// the file's own sha256, so that a mirror may regenerate a snapshot with another compressor.
// Decompression, with its bounds on hostile input, is compression/decompress.ts; here only the hashing.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { Compression } from '../compression/decompress.ts';
import { SourcemeshError, fromSystemError } from '../errors.ts';

export interface TarDigest {
  /** sha256 of the decompressed tar stream. */
  tarSha256: string;
  /** sha256 of the file as it is. */
  sha256: string;
  compression: Compression;
  /** Size of the decompressed tar stream. */
  tarBytes: number;
}

/** Both digests of a file in one streaming read. */
export async function tarDigestOfFile(file: string, what = file): Promise<TarDigest> {
  // Loaded here, not with the store: the decompressors (xz's WebAssembly, bzip2, zlib) are some 6-8 MB of a
  // fetch's RSS that only a manifest pinning a tarSha256 needs (docs/BENCHMARKS.md, bench:mirrors, issue 21).
  const { decompressedChunks, sniffCompression } = await import('../compression/decompress.ts');
  const fileHash = createHash('sha256');
  const tarHash = createHash('sha256');
  let compression: Compression = 'none';
  async function* read(): AsyncGenerator<Uint8Array> {
    let first = true;
    for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) {
      const c = chunk as Buffer;
      if (first) compression = sniffCompression(c);
      first = false;
      fileHash.update(c);
      yield c;
    }
  }
  let tarBytes = 0;
  try {
    for await (const chunk of decompressedChunks(read(), what)) {
      tarHash.update(chunk);
      tarBytes += chunk.length;
    }
  } catch (err) {
    throw err instanceof SourcemeshError ? err : fromSystemError(err, what);
  }
  return { tarSha256: tarHash.digest('hex'), sha256: fileHash.digest('hex'), compression, tarBytes };
}

export async function tarSha256File(file: string, what = file): Promise<string> {
  return (await tarDigestOfFile(file, what)).tarSha256;
}
