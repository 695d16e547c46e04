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
  const start = Math.min(opts.offset, size);
  const stream = createReadStream(file, { start, highWaterMark: 1 << 20, signal: opts.signal });
  return { body: stream, start, total: size, url: pathToFileURL(file).href, cancel: () => stream.destroy() };
}
