// What every transport hands the downloader: a body that starts at byte `start` of the file.
import { SourcemeshError, type ErrorCode } from '../errors.ts';

export interface Opened {
  body: AsyncIterable<Uint8Array>;
  /**
   * Feed the body to a sink chunk by chunk instead of iterating it (HTTP: no promise per chunk); read
   * the body through pipeBody(), which falls back to iteration for transports without it.
   */
  pipe?: (sink: (chunk: Buffer) => void | Promise<void>) => Promise<void>;
  /**
   * The body for a consumer that copies each chunk before it asks for the next: a chunk is good only until
   * then (HTTP: its read memory is reused, src/net/socket-buffers.ts). Iterate `body` where absent.
   */
  lend?: () => AsyncIterable<Uint8Array>;
  /** Offset of the body's first byte in the whole file (0 unless a range was granted). */
  start: number;
  /** The source honoured the requested range (HTTP 206, or a local file). */
  ranged: boolean;
  /** Length of the whole file, when the source said so. */
  total?: number;
  /** Validators for a later If-Range (RFC 9110 §13.1.5): a strong ETag or Last-Modified. */
  etag?: string;
  lastModified?: string;
  /** Where the bytes really came from, after redirects. */
  url: string;
  /** Stop reading and release the connection. */
  cancel(): void;
}

export interface OpenOptions {
  /** Ask for the bytes from this offset on (RFC 9110 Range)... */
  offset: number;
  /** ...up to and including this one (a piece); absent: to the end. */
  end?: number;
  /** Accept a range cut short at the end of the file (RFC 9110 §14.1.2), for a first piece of unknown size. */
  shortEndOk?: boolean;
  /** Only resume if the representation is still this one (If-Range); else send the whole file. */
  ifRange?: string;
  signal?: AbortSignal;
  /**
   * Memory the transport may read the range into in place (byte `offset + k` at `into[k]`), when it is
   * long enough for all of it; the body's chunks are then views of it, each at its place. A peer's
   * blocks land there straight from the connection's read memory (src/torrent/peer-source.ts).
   */
  into?: Uint8Array;
}

/** Errors that may go away if we try again later (network trouble, 5xx). */
export function transferError(code: ErrorCode, message: string, retryable: boolean, details: Record<string, unknown> = {}, cause?: unknown): SourcemeshError {
  // `retryable` as given wins over one in `details` (details copied from an earlier error say its own).
  return new SourcemeshError(code, message, { ...details, retryable }, cause === undefined ? undefined : { cause });
}

export function isRetryable(err: unknown): boolean {
  return err instanceof SourcemeshError && err.details.retryable === true;
}

/**
 * Every chunk of `opened`'s body to `sink`, in order; a promise from the sink holds the body until it
 * settles. Rejects with the transport's or the sink's error (the body is then cancelled).
 */
export async function pipeBody(opened: Opened, sink: (chunk: Buffer) => void | Promise<void>): Promise<void> {
  if (opened.pipe) return opened.pipe(sink);
  for await (const chunk of opened.body) {
    const wait = sink(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    if (wait) await wait;
  }
}
