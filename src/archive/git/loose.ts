// Loose objects (gitformat-loose: "objects/XX/YYYY..."): the zlib-deflated bytes "<type> <size>\0<content>".
// The file is attacker-controlled: the header is parsed strictly, the declared size is checked against the
// limits before the content is inflated, and the content must inflate to exactly that size.

import { fstatSync, openSync, readSync } from 'node:fs';
import zlib from 'node:zlib';
import { fromSystemError, isNotFound } from '../../errors.ts';
import { corrupt, type ObjectType } from './object-id.ts';
import { inflateExact, inflateHeaded } from './inflate.ts';
import { inflateStream, maxCompressedBytes } from './pack.ts';

/** Loose files up to this size are read and inflated in one go. */
const SMALL_LOOSE_BYTES = 64 * 1024;
/** How much compressed data to inflate to find the header of a larger file. */
const HEADER_PROBE_BYTES = 4096;

export interface LooseHeader {
  type: ObjectType;
  size: number;
  /** Length of "<type> <size>\0". */
  headerLength: number;
  /** The file's length (compressed). */
  fileSize: number;
  /** The whole object when it was small enough to inflate at once. */
  whole: Buffer | null;
}

/** Parse "<type> <decimal size>\0" at the start of `out`; null when the NUL is not there yet. */
function parseHeader(out: Buffer, what: string): { type: ObjectType; size: number; headerLength: number } | null {
  const nul = out.indexOf(0);
  if (nul < 0) {
    if (out.length >= 32) throw corrupt(what, 'loose object header is malformed');
    return null;
  }
  const m = /^(blob|tree|commit|tag) (0|[1-9][0-9]{0,15})$/.exec(out.toString('latin1', 0, nul));
  if (!m) throw corrupt(what, 'loose object header is malformed');
  return { type: m[1] as ObjectType, size: Number(m[2]), headerLength: nul + 1 };
}

function readAt(fd: number, buf: Buffer, position: number, file: string): number {
  let done = 0;
  while (done < buf.length) {
    let n: number;
    try {
      n = readSync(fd, buf, done, buf.length - done, position + done);
    } catch (err) {
      throw fromSystemError(err, `reading ${file}`);
    }
    if (n === 0) break;
    done += n;
  }
  return done;
}

/**
 * Open a loose object's file, or null when there is none: the open is the lookup (issue 14: a stat to find
 * it and an open for each read before, two for a large object), and the caller reads and closes the fd.
 */
export function openLoose(file: string): number | null {
  try {
    return openSync(file, 'r');
  } catch (err) {
    if (isNotFound(err)) return null;
    throw fromSystemError(err, `opening ${file}`);
  }
}

/** Read the header of the loose object open at `fd`, and the whole object when the file is small. */
export function readLooseHeader(fd: number, file: string, what: string, maxWholeBytes: number): LooseHeader {
  const fileSize = fstatSync(fd).size;
  const head = Buffer.allocUnsafe(Math.min(fileSize, SMALL_LOOSE_BYTES));
  if (readAt(fd, head, 0, file) !== head.length) throw corrupt(what, 'loose object file changed while being read');
  const small = fileSize <= SMALL_LOOSE_BYTES;
  const maxWhole = Math.min(maxWholeBytes, 16 * 1024 * 1024);
  // On the reused zlib handle: the header first, then (small file, size within the bound) the content.
  const parse = (probe: Buffer) => {
    const h = parseHeader(probe, what);
    if (!h) throw corrupt(what, 'loose object header is malformed');
    return h;
  };
  const r = inflateHeaded(small ? head : head.subarray(0, HEADER_PROBE_BYTES), parse, (h) => small && h.size <= maxWhole, what);
  if (r) return { ...r.head, fileSize, whole: r.content };
  return readLooseHeaderPublic(head, fileSize, small, what, maxWhole);
}

/** The same through zlib.inflateSync, when the reused handle's internals are missing. */
function readLooseHeaderPublic(head: Buffer, fileSize: number, small: boolean, what: string, maxWhole: number): LooseHeader {
  if (small) {
    let out: Buffer | null = null;
    try {
      const max = maxWhole + 64;
      out = zlib.inflateSync(head, { maxOutputLength: max, chunkSize: Math.min(max, Math.max(1024, head.length * 4)) });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e?.code !== 'ERR_BUFFER_TOO_LARGE') throw corrupt(what, `zlib data is corrupt (${e?.message ?? String(err)})`, {}, err);
    }
    if (out) {
      const h = parseHeader(out, what);
      if (!h) throw corrupt(what, 'loose object header is malformed');
      if (out.length - h.headerLength !== h.size) throw corrupt(what, `inflates to ${out.length - h.headerLength} bytes, ${h.size} declared`);
      return { ...h, fileSize, whole: out.subarray(h.headerLength) };
    }
  }
  // Larger file: inflate only enough of the start to see the header.
  let probe: Buffer;
  try {
    probe = zlib.inflateSync(head.subarray(0, HEADER_PROBE_BYTES), { finishFlush: zlib.constants.Z_SYNC_FLUSH, maxOutputLength: 8 * 1024 * 1024 });
  } catch (err) {
    throw corrupt(what, `zlib data is corrupt (${(err as Error)?.message ?? String(err)})`, {}, err);
  }
  const h = parseHeader(probe, what);
  if (!h) throw corrupt(what, 'loose object header is malformed');
  return { ...h, fileSize, whole: null };
}

/** Inflate the loose object open at `fd` whole (its size already checked by the caller). */
export function readLooseWhole(fd: number, file: string, header: LooseHeader, what: string): Buffer {
  if (header.whole) return header.whole;
  const len = Math.min(header.fileSize, maxCompressedBytes(header.headerLength + header.size));
  const input = Buffer.allocUnsafe(len);
  if (readAt(fd, input, 0, file) !== len) throw corrupt(what, 'loose object file changed while being read');
  return inflateExact(input, header.headerLength + header.size, what).subarray(header.headerLength);
}

export function streamLoose(file: string, header: LooseHeader, what: string): AsyncGenerator<Buffer> {
  const end = Math.min(header.fileSize, maxCompressedBytes(header.headerLength + header.size));
  return inflateStream(file, 0, end, header.headerLength, header.size, what);
}
