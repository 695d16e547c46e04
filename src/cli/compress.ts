// `sourcemesh compress [FILE|-] [-o OUT|-]`: a file or stdin gzipped by our own deflate, byte-identical
// to GNU gzip 1.12's `gzip -n -LEVEL` (`gzip-n`) or to zlib 1.2.13's gzip writer (`zlib`), the two
// meanings of a manifest's `git.compression` (docs/FORMATS.md): a `gzip -n` for machines without GNU
// gzip. Streams both ways; the output follows the output-path rules (src/fs/durable-file.ts).
import { createHash } from 'node:crypto';
import { createReadStream, fstatSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { isatty } from 'node:tty';
import { Command } from 'commander';
import { gzipChunks } from '../archive/compress.ts';
import { DEFAULT_LEVEL, DEFLATE_FLAVOURS, type DeflateFlavour } from '../archive/deflate/index.ts';
import { SourcemeshError, fromSystemError, isNotFound } from '../errors.ts';
import { writeChunksToStdout, writeOutputChunks } from '../fs/durable-file.ts';
import { type Io } from './output.ts';

interface CompressFlags {
  output?: string;
  compression?: string;
  level?: string;
  json?: boolean;
}

// Reads of 1 MiB ahead of the compressor: the next read overlaps the deflate of this one (GNU gzip reads
// 32 KiB at a time and waits for each).
const READ_AHEAD = 1 << 20;

export function compressCommand(io: Io): Command {
  return new Command('compress')
    .description('gzip a file or stdin, byte-identical to GNU gzip -n (gzip-n, default) or to zlib\'s gzip writer (zlib), without gzip')
    .argument('[file]', 'the file to compress; `-` or none for stdin')
    .option('-o, --output <file>', 'where to write the .gz (`-` or none for stdout)')
    .option('--compression <flavour>', 'gzip-n (GNU gzip 1.12 `gzip -n`) or zlib (zlib 1.2.13, as `git archive --format=tar.gz`)', 'gzip-n')
    .option('--level <n>', 'compression level 1 to 9', String(DEFAULT_LEVEL))
    .option('--json', 'print the result as JSON (on stderr when the output is stdout)')
    .action(async (file: string | undefined, o: CompressFlags) => {
      // Checked here rather than by commander's choices, so a bad value is one line in the error family.
      const compression = o.compression as DeflateFlavour;
      if (!DEFLATE_FLAVOURS.includes(compression)) {
        throw new SourcemeshError('E_USAGE', `--compression ${o.compression}: expected gzip-n or zlib (xz and bzip2 are their own tools)`);
      }
      if (!/^[1-9]$/.test(o.level ?? '')) throw new SourcemeshError('E_USAGE', `--level ${o.level}: expected a whole number from 1 to 9`);
      const level = Number(o.level);
      const toStdout = o.output === undefined || o.output === '-';
      // As gzip does: compressed bytes on a terminal are of no use and may upset it.
      if (toStdout && isatty(1)) throw new SourcemeshError('E_USAGE', 'refusing to write compressed data to a terminal: give -o FILE or redirect stdout');
      const fromStdin = file === undefined || file === '-';
      const inputName = fromStdin ? 'standard input' : file;

      // The input is opened before the output, so a missing input leaves nothing behind.
      const input = fromStdin ? stdinChunks() : await fileChunks(file);
      const inputHash = o.json ? createHash('sha256') : undefined;
      let inputBytes = 0;
      async function* source(): AsyncGenerator<Uint8Array> {
        try {
          for await (const chunk of input) {
            inputHash?.update(chunk);
            inputBytes += chunk.length;
            yield chunk;
          }
        } catch (err) {
          throw fromSystemError(err, `${inputName}: cannot read`);
        }
      }
      const body = gzipChunks(source(), compression, level);
      const written = toStdout ? await writeChunksToStdout(body) : await writeOutputChunks(o.output!, body);
      if (o.json) {
        const result = {
          input: fromStdin ? '-' : path.resolve(file), output: toStdout ? '-' : path.resolve(o.output!), compression, level,
          inputBytes, inputSha256: inputHash!.digest('hex'), bytes: written.bytes, sha256: written.sha256,
        };
        (toStdout ? io.stderr : io.stdout).write(JSON.stringify(result) + '\n');
      }
    });
}

/** FILE in chunks; a missing file or a directory is E_INPUT, found before anything is written. */
async function fileChunks(file: string): Promise<AsyncIterable<Uint8Array>> {
  let fh: FileHandle;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    throw inputError(err, file);
  }
  try {
    if ((await fh.stat()).isDirectory()) throw new SourcemeshError('E_INPUT', `${file}: is a directory; give a file to compress`, { file });
  } catch (err) {
    await fh.close();
    throw inputError(err, file);
  }
  return fh.createReadStream({ highWaterMark: READ_AHEAD });
}

/** Standard input in chunks: a regular file (`< FILE`) read as a file, anything else as a stream. */
function stdinChunks(): AsyncIterable<Uint8Array> {
  let regular: boolean;
  try {
    regular = fstatSync(0).isFile();
  } catch (err) {
    throw fromSystemError(err, 'standard input: cannot read'); // closed (EBADF)
  }
  return regular ? createReadStream('', { fd: 0, autoClose: false, highWaterMark: READ_AHEAD }) : process.stdin;
}

/** A missing input (ENOENT, ENOTDIR only) is E_INPUT; permissions and disk faults keep their codes. */
function inputError(err: unknown, file: string): SourcemeshError {
  if (isNotFound(err)) return new SourcemeshError('E_INPUT', fromSystemError(err, `${file}: cannot read`).message, { file }, { cause: err });
  return fromSystemError(err, `${file}: cannot read`);
}
