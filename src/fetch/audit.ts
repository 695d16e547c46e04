// Audit: does a mirror faithfully replicate upstream (or another mirror)? Random byte ranges of random
// files are compared between the two, without downloading everything. A difference is evidence: the
// file, the range, and both hashes.
import { SourcemeshError } from '../errors.ts';
import type { Distfile } from '../manifest/distfile.ts';
import { sha256Hex } from '../store/digest.ts';
import type { DownloadContext } from './download.ts';
import { mirrorSource, type Mirror, type Source } from './plan.ts';
import { readRange } from './range.ts';

export interface AuditOptions {
  /** Fraction of each sampled file's bytes to compare (and of files to sample). */
  sample: number;
  /** Compare against a mirror; absent: the manifest's upstream URLs. */
  against?: Mirror;
  rangeBytes: number;
}

export interface AuditFinding {
  name: string;
  range?: [number, number];
  mirror?: string;
  reference?: string;
  problem: string;
}

export interface AuditReport {
  mirror: string;
  reference: string;
  files: number;
  ranges: number;
  bytes: number;
  differences: AuditFinding[];
  /** Files that could not be compared (missing on one side, network trouble). */
  skipped: AuditFinding[];
}

/**
 * ceil(fraction x n) of `items`, at least one, chosen at random without repeats (a partial Fisher-Yates
 * shuffle of the indexes), in their original order. A fixed count, not a coin per file: with coins, an
 * audit of a few files could compare none and report the mirror faithful.
 */
export function sampleFiles<T>(items: readonly T[], fraction: number, random: () => number): T[] {
  const index = items.map((_, i) => i);
  const count = Math.min(items.length, Math.max(1, Math.ceil(fraction * items.length)));
  for (let i = 0; i < count; i++) {
    const j = i + Math.floor(random() * (index.length - i));
    [index[i], index[j]] = [index[j]!, index[i]!];
  }
  return index.slice(0, count).sort((a, b) => a - b).map((i) => items[i]!);
}

export async function auditMirror(mirror: Mirror, distfiles: Distfile[], ctx: DownloadContext, opts: AuditOptions): Promise<AuditReport> {
  const report: AuditReport = { mirror: mirrorSource(mirror, { name: '', sha256: '', urls: [] }).label, reference: opts.against ? mirrorSource(opts.against, { name: '', sha256: '', urls: [] }).label : 'upstream', files: 0, ranges: 0, bytes: 0, differences: [], skipped: [] };
  const chosen = sampleFiles(distfiles, opts.sample, ctx.random);
  for (const d of chosen) {
    const audited = mirrorSource(mirror, d);
    const references: Source[] = opts.against ? [mirrorSource(opts.against, d)] : d.urls.map((url) => ({ role: 'upstream', label: url, location: { type: 'http', url } }));
    if (!references.length) {
      report.skipped.push({ name: d.name, problem: 'no upstream URL to compare with' });
      continue;
    }
    // The first range also tells each side's size: a size difference is a difference.
    const firstEnd = opts.rangeBytes - 1;
    const mine = await attempt(() => readRange(audited, 0, firstEnd, ctx, signalOf(ctx), undefined));
    if (failed(mine)) {
      report.skipped.push({ name: d.name, mirror: audited.label, problem: mine.error });
      continue;
    }
    let theirs: Awaited<ReturnType<typeof readRange>> | Failed = { error: 'no reference answered' };
    let reference = references[0]!;
    for (const r of references) {
      theirs = await attempt(() => readRange(r, 0, firstEnd, ctx, signalOf(ctx), undefined));
      reference = r;
      if (!failed(theirs)) break;
    }
    if (failed(theirs)) {
      report.skipped.push({ name: d.name, reference: reference.label, problem: theirs.error });
      continue;
    }
    report.files++;
    if (mine === 'no-ranges' || theirs === 'no-ranges') {
      report.skipped.push({ name: d.name, problem: `${mine === 'no-ranges' ? audited.label : reference.label} does not serve byte ranges` });
      continue;
    }
    if (mine.total !== theirs.total) {
      report.differences.push({ name: d.name, mirror: audited.label, reference: reference.label, problem: `size ${mine.total} on the mirror, ${theirs.total} on ${reference.label}` });
      continue;
    }
    const size = mine.total ?? mine.body.length;
    const compare = (start: number, a: Buffer, b: Buffer) => {
      report.ranges++;
      report.bytes += a.length;
      const [ha, hb] = [sha256Hex(a), sha256Hex(b)];
      if (ha !== hb) report.differences.push({ name: d.name, range: [start, start + a.length - 1], mirror: audited.label, reference: reference.label, problem: `bytes ${start}-${start + a.length - 1}: sha256 ${ha} on the mirror, ${hb} on ${reference.label}` });
      return ha === hb;
    };
    if (!compare(0, mine.body, theirs.body)) continue;
    const more = Math.ceil((size * opts.sample) / opts.rangeBytes) - 1;
    for (let i = 0; i < more && size > opts.rangeBytes; i++) {
      const start = Math.floor(ctx.random() * (size - opts.rangeBytes));
      const end = start + opts.rangeBytes - 1;
      const [a, b] = await Promise.all([attempt(() => readRange(audited, start, end, ctx, signalOf(ctx), size)), attempt(() => readRange(reference, start, end, ctx, signalOf(ctx), size))]);
      if (failed(a) || failed(b) || a === 'no-ranges' || b === 'no-ranges') {
        report.skipped.push({ name: d.name, range: [start, end], problem: failed(a) ? a.error : failed(b) ? b.error : 'ranges refused' });
        break;
      }
      if (!compare(start, a.body, b.body)) break;
    }
  }
  return report;
}

const signalOf = (ctx: DownloadContext) => ctx.signal ?? new AbortController().signal;

type Failed = { error: string };
const failed = (x: unknown): x is Failed => typeof x === 'object' && x !== null && 'error' in x;

async function attempt<T>(fn: () => Promise<T>): Promise<T | Failed> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof SourcemeshError) return { error: err.message };
    throw err;
  }
}
