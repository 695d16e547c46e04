// Decompression of the streams a tarball comes in: gzip with node:zlib, xz with xz-decompress (xz-embedded
// as WebAssembly), bzip2 with our own decoder (bzip2.ts). Used by tarSha256
// (store/tar-digest.ts) and by cleansing (archive/cleanse.ts). Every byte decompressed here is
// attacker-controlled: the output is bounded by a ratio to the input read and by an absolute cap
// (src/limits.ts), so a decompression bomb is refused early instead of burning hours.
import { Readable, pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import xzDecompress from 'xz-decompress';
import { SourcemeshError, fromSystemError } from '../errors.ts';
import { LIMITS, type Limits } from '../limits.ts';
import { bunzip2 } from './bzip2.ts';

export type DecompressionLimits = Pick<Limits, 'decompressionRatio' | 'decompressionFloorBytes' | 'decompressedTarBytes'>;

export type Compression = 'gzip' | 'xz' | 'bzip2' | 'none';

/** Recognise the compressor from the first bytes (RFC 1952, the .xz and bzip2 magic numbers). */
export function sniffCompression(head: Uint8Array): Compression {
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 6 && head[0] === 0xfd && head[1] === 0x37 && head[2] === 0x7a && head[3] === 0x58 && head[4] === 0x5a && head[5] === 0x00) return 'xz';
  if (head[0] === 0x42 && head[1] === 0x5a && head[2] === 0x68 && head[3]! >= 0x31 && head[3]! <= 0x39) return 'bzip2';
  return 'none';
}

/**
 * Decompress `source` (sniffed from its first bytes), yielding the decompressed bytes. `what` names the
 * input in errors; a corrupt or truncated stream is E_ARCHIVE. The work is bounded (docs/ERRORS.md): the
 * output may exceed the compressed bytes read so far at most `decompressionRatio` times (plus
 * `decompressionFloorBytes`, so that small files never trip it), and never `decompressedTarBytes` in all. A
 * decompression bomb then costs time in proportion to the bytes its sender had to send, and never memory.
 */
export async function* decompressedChunks(source: AsyncIterable<Uint8Array>, what: string, limits: DecompressionLimits = LIMITS): AsyncGenerator<Uint8Array> {
  const it = source[Symbol.asyncIterator]();
  // Enough bytes to recognise the format; the chunks read are replayed in front of the rest.
  const head: Uint8Array[] = [];
  let headBytes = 0;
  let ended = false;
  while (headBytes < 6) {
    const r = await it.next();
    if (r.done) { ended = true; break; }
    head.push(r.value);
    headBytes += r.value.length;
  }
  const kind = sniffCompression(Buffer.concat(head));
  // Every byte read from `source` (untrusted), counted as it is handed to the decoder.
  let read = 0;
  async function* replay(): AsyncGenerator<Uint8Array> {
    for (const c of head) {
      read += c.length;
      yield c;
    }
    if (ended) return;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      read += r.value.length;
      yield r.value;
    }
  }
  let out = 0;
  try {
    for await (const chunk of decoded(kind, replay())) {
      out += chunk.length;
      if (out > limits.decompressedTarBytes) {
        throw new SourcemeshError('E_ARCHIVE', `${what}: decompresses to more than ${limits.decompressedTarBytes} bytes (the limit for any tarball)`, { compression: kind, maxBytes: limits.decompressedTarBytes });
      }
      if (out > limits.decompressionFloorBytes + limits.decompressionRatio * read) {
        throw new SourcemeshError('E_ARCHIVE', `${what}: refused as a decompression bomb: its first ${read} ${kind} bytes decompress to more than ${out - chunk.length} bytes, over ${limits.decompressionRatio} times as many`, { compression: kind, read, out, ratio: limits.decompressionRatio });
      }
      yield chunk;
    }
  } catch (err) {
    if (err instanceof SourcemeshError) throw err;
    const e = err as NodeJS.ErrnoException;
    if (e?.syscall) throw fromSystemError(err, what);
    throw new SourcemeshError('E_ARCHIVE', `${what}: corrupt or truncated ${kind} stream (${describe(err)})`, { compression: kind }, { cause: err });
  } finally {
    await it.return?.();
  }
}

function describe(err: unknown): string {
  const m = (err as Error)?.message ?? String(err);
  if (/get_next_output failed with error code 8|unexpected end/i.test(m)) return `${m}; truncated?`;
  return m;
}

async function* decoded(kind: Compression, input: AsyncGenerator<Uint8Array>): AsyncGenerator<Uint8Array> {
  switch (kind) {
    case 'none':
      yield* input;
      return;
    case 'gzip': {
      // pipeline destroys every stage with the first error, so iterating the last one throws it.
      const gunzip = pipeline(Readable.from(input, { objectMode: false }), createGunzip(), () => {});
      for await (const chunk of gunzip) yield chunk as Uint8Array;
      return;
    }
    case 'xz': {
      const stream = new xzDecompress.XzReadableStream(ReadableStream.from(input) as ReadableStream<Uint8Array>);
      for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) yield chunk;
      return;
    }
    case 'bzip2':
      yield* bunzip2(input);
      return;
  }
}
