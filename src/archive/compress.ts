// Compressing a tar stream as a snapshot asks: `gzip-n` and `zlib` with our own deflate (the bytes
// depend on our code only), `none` as is, and `xz` / `bzip2` by the installed tools, run as live-bootstrap's
// mirror.sh runs them (`xz -T1 -LEVEL`, `bzip2 -LEVEL`): xz's output is stable across 5.2 to 5.8 with
// `-T1` and a preset (docs/GIT-ARCHIVE.md, "xz"); no pure-JS encoder matches it.
import { spawn } from 'node:child_process';
import { pipeline } from 'node:stream/promises';
import { crc32 } from 'node:zlib';
import { SourcemeshError } from '../errors.ts';
import type { Compression } from '../manifest/distfile.ts';
import { gzipHeader, gzipTrailer } from './deflate/gzip-container.ts';
import { DEFAULT_LEVEL, deflateParameters, type DeflateFlavour } from './deflate/levels.ts';
import { DeflateEngine } from './deflate/lz77.ts';

/**
 * Gzip `source` with our deflate, pull-based: a chunk of input is read only when the consumer asks for
 * more output, so memory stays flat. Byte-identical to `createDeflateStream` whatever the chunking.
 */
export async function* gzipChunks(source: AsyncIterable<Uint8Array>, flavour: DeflateFlavour, level = DEFAULT_LEVEL): AsyncGenerator<Uint8Array> {
  const params = deflateParameters(flavour, level);
  let pending: Uint8Array[] = [];
  const engine = new DeflateEngine(params, (bytes) => pending.push(bytes));
  let crc = 0;
  let size = 0;
  yield gzipHeader(params.level);
  for await (const chunk of source) {
    crc = crc32(chunk, crc);
    size += chunk.length;
    engine.write(chunk);
    if (pending.length) {
      const out = pending;
      pending = [];
      yield* out;
    }
  }
  engine.end();
  yield* pending;
  yield gzipTrailer(crc, size);
}

/** The default level of each compression when the manifest gives none (what mirror.sh's tools use). */
export function defaultLevel(compression: Compression): number | undefined {
  switch (compression) {
    case 'gzip-n': case 'zlib': return DEFAULT_LEVEL;
    case 'xz': return 6;
    case 'bzip2': return 9;
    case 'none': return undefined;
  }
}

/** Compress a tar stream as `compression` says. */
export function compressChunks(source: AsyncIterable<Uint8Array>, compression: Compression, level?: number, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
  switch (compression) {
    case 'gzip-n': case 'zlib': return gzipChunks(source, compression, level ?? DEFAULT_LEVEL);
    case 'none': return passThrough(source);
    case 'xz': return throughTool(source, ['xz', '-T1', `-${checkLevel('xz', level ?? 6, 0)}`, '-c'], signal);
    case 'bzip2': return throughTool(source, ['bzip2', `-${checkLevel('bzip2', level ?? 9, 1)}`, '-c'], signal);
    default: throw new SourcemeshError('E_UNSUPPORTED', `unknown compression ${JSON.stringify(compression)}`);
  }
}

function checkLevel(tool: string, level: number, min: number): number {
  if (!Number.isInteger(level) || level < min || level > 9) throw new SourcemeshError('E_USAGE', `${tool}: level ${level} is not an integer from ${min} to 9`);
  return level;
}

async function* passThrough(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  yield* source;
}

/** Feed `source` into a tool's stdin (with backpressure) and yield its stdout; fail unless it exits 0. */
async function* throughTool(source: AsyncIterable<Uint8Array>, argv: string[], signal?: AbortSignal): AsyncGenerator<Uint8Array> {
  const proc = spawn(argv[0]!, argv.slice(1), { signal, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => { if (stderr.length < 4096) stderr += d.toString(); });
  const exit = new Promise<number | null>((resolve, reject) => {
    proc.on('error', (err) => reject(new SourcemeshError('E_UNSUPPORTED', `${argv[0]}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not installed' : err.message}`)));
    proc.on('close', (code) => resolve(code));
  });
  exit.catch(() => {}); // observed below; an early failure must not be an unhandled rejection
  // stream.pipeline keeps one set of listeners for the whole feed (a 'drain' and a 'close' listener per
  // wait stayed behind after each 'drain': MaxListenersExceededWarning after ten waits on one tool).
  // An error of the source is ours to report; one of stdin (EPIPE: the tool died) its exit status explains.
  let feedError: unknown;
  async function* watched(): AsyncGenerator<Uint8Array> {
    try {
      yield* source;
    } catch (err) {
      feedError = err;
      throw err;
    }
  }
  const feed = pipeline(watched(), proc.stdin!).catch(() => {
    if (feedError !== undefined) proc.kill();
  });
  proc.stdin!.on('error', () => {}); // EPIPE when the tool died: its exit status says why
  try {
    for await (const chunk of proc.stdout!) yield chunk as Uint8Array;
    await feed;
    if (feedError) throw feedError;
    const code = await exit;
    if (code !== 0) throw new SourcemeshError('E_ARCHIVE', `${argv[0]} exited ${code}: ${stderr.trim().split('\n').at(-1) ?? ''}`);
  } finally {
    if (proc.exitCode === null) proc.kill();
  }
}
