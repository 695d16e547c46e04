// Local directory mirrors (a USB disk, an NFS share): read NAME from the directory.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import { fromSystemError } from '../errors.ts';
import { transferError, type OpenOptions, type Opened } from './transport.ts';

export async function openFile(file: string, opts: OpenOptions): Promise<Opened> {
  let size: number;
  try {
    const s = await stat(file);
    if (!s.isFile()) throw transferError('E_IO', `${file}: not a regular file`, false, { notFound: true });
    size = s.size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw transferError('E_IO', `${file}: not found`, false, { notFound: true });
    throw fromSystemError(err, file);
  }
  const end = opts.end !== undefined && opts.shortEndOk ? Math.min(opts.end, size - 1) : opts.end;
  if (end !== undefined && (end >= size || end < opts.offset)) throw transferError('E_HTTP', `${file}: bytes ${opts.offset}-${opts.end} past the end (${size} bytes)`, false, { rangeNotSatisfiable: true });
  const start = Math.min(opts.offset, size);
  const stream = createReadStream(file, { start, ...(end !== undefined ? { end } : {}), highWaterMark: 1 << 20, signal: opts.signal });
  return { body: stream, start, ranged: true, total: size, url: pathToFileURL(file).href, cancel: () => stream.destroy() };
}
