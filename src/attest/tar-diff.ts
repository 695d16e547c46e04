// The first tar entry where two snapshots differ, for a rebuilder's mismatch report. Both tars are read as
// streams of 512-byte blocks (POSIX ustar, with pax extended headers as `git archive` writes them); each
// entry is its header blocks and data, summarised by its path and a sha256, so nothing is held whole.
// Both inputs are attacker-controlled (a tarball made from a hostile repository): sizes are checked and a
// pax header is bounded by limits.tarPaxHeaderBytes.
import { createHash } from 'node:crypto';
import { SourcemeshError } from '../errors.ts';
import type { Limits } from '../limits.ts';

const BLOCK = 512;

export interface TarEntrySummary {
  /** The entry's path (a pax `path` record wins over the ustar name and prefix). */
  readonly path: string;
  /** Its position among the entries (0 is the first), pax headers counted with the entry they describe. */
  readonly index: number;
  /** sha256 of the entry's bytes: its headers (pax included) and its data blocks. */
  readonly sha256: string;
}

function octalField(b: Buffer, at: number, len: number): number {
  // GNU base-256 (high bit set) for sizes past 8 GiB: read as a big-endian number.
  if ((b[at]! & 0x80) !== 0) {
    let n = 0;
    for (let i = at + 1; i < at + len; i++) n = n * 256 + b[i]!;
    return n;
  }
  const s = b.toString('latin1', at, at + len).replace(/[\0 ]+$/g, '').trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new SourcemeshError('E_ARCHIVE', `tar header: a size field "${s.slice(0, 20)}" is not octal`);
  return Number.parseInt(s, 8);
}

function cString(b: Buffer, at: number, len: number): string {
  const end = b.indexOf(0, at);
  return b.toString('utf8', at, end < 0 || end > at + len ? at + len : end);
}

/** Entry summaries of a tar stream, in order; the end-of-archive blocks end it. */
export async function* tarEntries(chunks: AsyncIterable<Uint8Array>, limits: Pick<Limits, 'tarPaxHeaderBytes'>): AsyncGenerator<TarEntrySummary> {
  let buf = Buffer.alloc(0);
  let index = 0;
  let hash = createHash('sha256');
  let paxPath: string | undefined;
  let remaining = 0; // data bytes (rounded to blocks) left of the current entry
  let collectingPax: Buffer[] | undefined;
  let current: string | undefined;
  for await (const chunk of chunks) {
    buf = buf.length ? Buffer.concat([buf, chunk]) : Buffer.from(chunk);
    let at = 0;
    while (buf.length - at >= BLOCK) {
      const block = buf.subarray(at, at + BLOCK);
      at += BLOCK;
      if (remaining > 0) {
        hash.update(block);
        collectingPax?.push(block);
        remaining -= BLOCK;
        if (remaining > 0) continue;
        if (collectingPax) {
          const text = Buffer.concat(collectingPax).toString('utf8');
          const m = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(text);
          if (m) paxPath = m[1];
          collectingPax = undefined;
          continue; // the entry it describes follows
        }
        yield { path: current!, index: index++, sha256: hash.digest('hex') };
        hash = createHash('sha256');
        continue;
      }
      if (block.every((x) => x === 0)) return;
      const type = block[156]!;
      const size = octalField(block, 124, 12);
      hash.update(block);
      const padded = Math.ceil(size / BLOCK) * BLOCK;
      if (type === 0x78 || type === 0x67) { // pax extended ('x') or global ('g') header
        if (size > limits.tarPaxHeaderBytes) throw new SourcemeshError('E_ARCHIVE', `tar: a pax header of ${size} bytes (limit ${limits.tarPaxHeaderBytes})`);
        if (type === 0x67) {
          // A global header (git archive's commit id) is an entry of its own.
          current = 'pax_global_header';
          if (padded === 0) {
            yield { path: current, index: index++, sha256: hash.digest('hex') };
            hash = createHash('sha256');
          }
          remaining = padded;
          continue;
        }
        collectingPax = [];
        remaining = padded;
        if (padded === 0) collectingPax = undefined;
        continue;
      }
      const prefix = cString(block, 345, 155);
      const name = cString(block, 0, 100);
      current = paxPath ?? (prefix ? `${prefix}/${name}` : name);
      paxPath = undefined;
      // Links, directories and the like carry no data whatever their size field says.
      remaining = type === 0x30 || type === 0 || type === 0x37 ? padded : 0;
      if (remaining === 0) {
        yield { path: current, index: index++, sha256: hash.digest('hex') };
        hash = createHash('sha256');
      }
    }
    buf = buf.subarray(at);
  }
  if (remaining > 0 || buf.length) throw new SourcemeshError('E_ARCHIVE', 'tar: the archive ends inside an entry');
}

export interface TarDifference {
  /** The first entry that differs; undefined when one archive ends first (`missing` says which). */
  readonly index: number;
  readonly ours?: string;
  readonly theirs?: string;
}

/** The first entry where the two tars differ (path or bytes), or undefined when every entry is the same. */
export async function firstDifference(ours: AsyncIterable<Uint8Array>, theirs: AsyncIterable<Uint8Array>, limits: Pick<Limits, 'tarPaxHeaderBytes'>): Promise<TarDifference | undefined> {
  const a = tarEntries(ours, limits);
  const b = tarEntries(theirs, limits);
  try {
    for (;;) {
      const [x, y] = await Promise.all([a.next(), b.next()]);
      if (x.done && y.done) return undefined;
      if (x.done || y.done || x.value.path !== y.value.path || x.value.sha256 !== y.value.sha256) {
        const index = x.done ? (y.value as TarEntrySummary).index : x.value.index;
        return { index, ...(x.done ? {} : { ours: x.value.path }), ...(y.done ? {} : { theirs: y.value.path }) };
      }
    }
  } finally {
    await Promise.allSettled([a.return(undefined), b.return(undefined)]);
  }
}
