// One byte range of one source, read into memory: the unit of segmented fetches, blame and audits.
import { SourcemeshError } from '../errors.ts';
import type { DownloadContext } from './download.ts';
import { openFile } from './file.ts';
import { networkError, openHttp } from './http.ts';
import type { Source } from './plan.ts';
import type { Opened } from './transport.ts';

/**
 * Fetch bytes [start, end] of a source into memory; 'no-ranges' if it answered with the whole file.
 * A server may shorten a range that runs past the end of the file (RFC 9110 §14.1.2): `total` says
 * how long the file is, and only the first piece is asked for before it is known. `into`: a buffer to
 * fill (from its start) instead of a new one, when large enough; `body` is then a view of it.
 */
export async function readRange(source: Source, start: number, end: number, ctx: DownloadContext, signal: AbortSignal, knownSize?: number, into?: Buffer): Promise<{ body: Buffer; total?: number } | 'no-ranges'> {
  const loc = source.location;
  let opened: Opened;
  if (loc.type === 'http') opened = await openHttp(loc.url, { offset: start, end, signal, dispatcher: ctx.dispatcherFor?.(source) ?? ctx.dispatcher, limits: ctx.limits, shortEndOk: true });
  else if (loc.type === 'file') opened = await openFile(loc.path, { offset: start, end, signal, shortEndOk: true });
  else if (loc.type === 'opener') opened = await loc.open({ offset: start, end, signal, shortEndOk: true, into });
  else throw new SourcemeshError('E_INTERNAL', 'git snapshots are not fetched in pieces');
  if (!opened.ranged) {
    opened.cancel();
    return 'no-ranges';
  }
  const total = opened.total ?? knownSize;
  const want = Math.min(end, (total ?? end + 1) - 1) - start + 1;
  const buf = into && into.length >= want ? into.subarray(0, want) : Buffer.allocUnsafe(want);
  let got = 0;
  try {
    // Iterated, not piped: piping pieces from four mirrors measured slower (bench:mirrors 5.28 s against
    // 4.28 s, docs/BENCHMARKS.md). Lent: each chunk is copied into the piece before the next is asked
    // for, so its read memory is reused (src/net/socket-buffers.ts).
    for await (const chunk of opened.lend?.() ?? opened.body) {
      if (got + chunk.length > want) {
        opened.cancel();
        throw new SourcemeshError('E_SIZE', `${source.label} sent more than the ${want} bytes asked for (bytes ${start}-${end})`);
      }
      // A chunk the transport read into `into` in place (OpenOptions.into) is where it belongs already.
      if (chunk.buffer !== buf.buffer || chunk.byteOffset !== buf.byteOffset + got) buf.set(chunk, got);
      got += chunk.length;
    }
  } catch (err) {
    if (err instanceof SourcemeshError) throw err;
    throw networkError(err, opened.url);
  }
  if (got < want) throw new SourcemeshError('E_NETWORK', `${opened.url}: piece ended after ${got} of ${want} bytes`, { retryable: true });
  return { body: buf, total };
}

