// Reading a small input file whole (a manifest, a key, a policy, an admission list, a TLS certificate),
// bounded while reading: the size stat reports is not trusted, since a FIFO (`<(...)`), a device such
// as /dev/zero or a file that grows has none or a wrong one. The one reader for every such file.

import { open } from 'node:fs/promises';
import { fromSystemError, isNotFound, isSourcemeshError, SourcemeshError, type ErrorCode } from '../errors.ts';

const CHUNK = 64 * 1024;

/**
 * A file's bytes, refused with `tooLarge` (default E_FORMAT) past `max` bytes, never holding more than
 * `max + 1`. Missing, a directory or a link loop: E_INPUT; no permission or a failing disk: their own codes; each
 * naming the file and `what` it is.
 */
export async function readBoundedBytes(file: string, max: number, what: string, tooLarge: ErrorCode = 'E_FORMAT'): Promise<Buffer> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    throw inputError(err, `${file}: cannot read the ${what}`);
  }
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const buf = Buffer.allocUnsafe(Math.min(CHUNK, max + 1 - total));
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      chunks.push(buf.subarray(0, bytesRead));
      total += bytesRead;
      if (total > max) throw new SourcemeshError(tooLarge, `${file}: the ${what} is larger than ${max} bytes (its limit)`, { file });
    }
    return Buffer.concat(chunks, total);
  } catch (err) {
    if (isSourcemeshError(err)) throw err;
    throw inputError(err, `${file}: cannot read the ${what}`);
  } finally {
    await fh.close();
  }
}

/** readBoundedBytes as UTF-8 text. */
export async function readBoundedFile(file: string, max: number, what: string, tooLarge: ErrorCode = 'E_FORMAT'): Promise<string> {
  return (await readBoundedBytes(file, max, what, tooLarge)).toString('utf8');
}

/** A path that names no readable file is the user's input to fix (E_INPUT); a failing disk stays E_IO. */
export function inputError(err: unknown, what: string): SourcemeshError {
  const e = fromSystemError(err, what);
  const errno = (err as NodeJS.ErrnoException | undefined)?.code;
  return isNotFound(err) || errno === 'EISDIR' || errno === 'ELOOP' ? new SourcemeshError('E_INPUT', e.message, e.details, { cause: err }) : e;
}
