// Fetch every distfile of a manifest into the store, verified, then export to a distfiles directory.
// Per file: the store first (a stored object is never downloaded again), then the per-object lock
// (two processes never download one file at once), then the sources in policy order.
import type { Dispatcher } from '../net/undici.ts';
import { SourcemeshError, fromSystemError, type ErrorCode } from '../errors.ts';
import type { Limits } from '../limits.ts';
import type { Distfile, Manifest } from '../manifest/distfile.ts';
import { digestsEqual } from '../store/digest.ts';
import { checkPinned } from '../store/pinned.ts';
import { exportObject, sweepExportTemps } from '../store/distdir.ts';
import { ensureDir } from '../fs/files.ts';
import { type StoredObject, type Store } from '../store/store.ts';
import { downloadFrom, type DownloadContext } from './download.ts';
import type { Outcome } from './reputation.ts';
import { canSegment, segmentedDownload, type SegmentOptions } from './segmented.ts';
import { planSources, type Mirror, type Policy, type Source } from './plan.ts';
import type { PieceMap } from './piece-map.ts';

export interface Rejection {
  source: string;
  role: Source['role'];
  code: ErrorCode;
  message: string;
}

export interface FileOutcome {
  name: string;
  sha256: string;
  status: 'fetched' | 'present' | 'failed';
  size?: number;
  /** The source that served the verified bytes (the main one, for a file taken in pieces), and whether it was a mirror or upstream. */
  source?: string;
  via?: Source['role'];
  /** For a file taken in pieces: every source that served some, with how much. */
  contributors?: Contributor[];
  /** How long getting it took, in ms (fetched files). */
  ms?: number;
  error?: { code: ErrorCode; message: string };
  /** Sources that failed or lied before the outcome, with why. */
  rejected: Rejection[];
}

export type FetchEvent =
  | { type: 'start'; name: string; size?: number }
  | { type: 'bytes'; name: string; delta: number }
  | { type: 'waiting'; name: string; holder: string }
  | { type: 'retry'; name: string; source: string; message: string; attempt: number; delayMs: number }
  | { type: 'rejected'; name: string; source: string; code: ErrorCode; message: string }
  | { type: 'done'; outcome: FileOutcome };

export interface FetchOptions {
  store: Store;
  /** Export verified files here by name; undefined: store only. */
  outDir?: string;
  mirrors: Mirror[];
  policy: Policy;
  offline: boolean;
  jobs: number;
  limits: Limits;
  dispatcher: Dispatcher;
  /** Per source and file (stream isolation over Tor); default: `dispatcher`. */
  dispatcherFor?: (source: Source, file: string) => Dispatcher;
  random?: () => number;
  signal?: AbortSignal;
  onEvent?: (e: FetchEvent) => void;
  /** Generate git snapshots ourselves (mirror sync; fetch once the archiver is built in). */
  openSnapshot?: DownloadContext['openSnapshot'];
  /** Split large files across sources; undefined: one source at a time. */
  segments?: SegmentOptions;
  /** Mirrors dropped for the rest of the run (label -> why); shared by every file of the run. */
  dropped?: Map<string, string>;
  /** Prefer mirrors by their record (reputation). */
  mirrorWeight?: (m: Mirror) => number;
  /** More sources for a distfile, after the planned ones (BitTorrent peers, `fetch --bittorrent`). */
  extraSources?: (d: Distfile) => Source[];
  /**
   * When no source of a distfile served it and none lied (E_NO_SOURCE): `mark` is taken before its
   * sources are planned; `wait` resolves true once more sources were found since (the file is then tried
   * again with them), or a sentence saying why not, added to the error; undefined: nothing to wait for
   * (`fetch --bittorrent`: peers looked for up to `--bt-wait`, src/torrent/swarm-fetch.ts).
   */
  sourceWait?: { mark(d: Distfile): number; wait(d: Distfile, mark: number, signal?: AbortSignal): Promise<true | string | undefined> };
  /** A piece layer checked against the distfile's merkleRoot (from a torrent), for segmented downloads. */
  pieceLayerFor?: DownloadContext['pieceLayerFor'];
  onPieceVerified?: DownloadContext['onPieceVerified'];
  /** Take each whole-file download's BEP 52 piece map with this piece length in its own pass (DownloadContext.hashPieces). */
  hashPieces?: number;
  /** Told the piece map of a file downloaded whole and verified, before its 'done' event (with hashPieces). */
  onHashedPieces?: (name: string, sha256: string, map: PieceMap) => void;
}

export interface Contributor {
  source: string;
  bytes: number;
}

export interface FetchReport {
  files: FileOutcome[];
  fetched: number;
  present: number;
  failed: number;
  /** Worst failure class: decides the exit status. */
  worst?: ErrorCode;
}

export async function fetchManifest(manifest: Manifest, options: FetchOptions): Promise<FetchReport> {
  const opts = { ...options, dropped: options.dropped ?? new Map<string, string>() };
  await opts.store.gc();
  if (opts.outDir) {
    await ensureDir(opts.outDir, 'distfiles directory');
    await sweepExportTemps(opts.outDir);
  }
  const files: FileOutcome[] = new Array(manifest.distfiles.length);
  let next = 0;
  const worker = async () => {
    while (next < manifest.distfiles.length && !opts.signal?.aborted) {
      const i = next++;
      files[i] = await fetchOne(manifest.distfiles[i]!, opts);
      opts.onEvent?.({ type: 'done', outcome: files[i]! });
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.jobs) }, worker));
  opts.signal?.throwIfAborted();
  const report: FetchReport = { files, fetched: 0, present: 0, failed: 0 };
  for (const f of files) {
    report[f.status]++;
    if (f.error) report.worst = worse(report.worst, f.error.code);
  }
  return report;
}

async function fetchOne(d: Distfile, opts: FetchOptions): Promise<FileOutcome> {
  // The sha256 of the bytes, once known: pinned, or (only tarSha256 pinned) of the bytes that verified.
  const outcome: FileOutcome = { name: d.name, sha256: d.sha256 ?? '', status: 'present', rejected: [] };
  try {
    let obj = await storedFor(d, opts.store);
    if (!obj) {
      // Only tarSha256 pinned: the lock and the partial are named by it (the bytes' sha256 is not known yet).
      const key = d.sha256 ?? d.tarSha256!;
      const lock = await opts.store.lock(key, opts.signal, (holder) => opts.onEvent?.({ type: 'waiting', name: d.name, holder }));
      try {
        obj = await storedFor(d, opts.store);
        if (!obj) {
          opts.onEvent?.({ type: 'start', name: d.name, size: d.size });
          const t0 = Date.now();
          const got = d.cleanse ? await acquireCleansed(d, opts, outcome.rejected) : await acquireWaiting(d, opts, outcome.rejected);
          outcome.ms = Date.now() - t0;
          obj = got.obj;
          outcome.status = 'fetched';
          outcome.source = got.source.label;
          outcome.via = got.source.role;
          if (got.contributors) outcome.contributors = got.contributors;
        }
      } finally {
        await lock?.release();
      }
    }
    outcome.size = obj.size;
    outcome.sha256 = obj.sha256;
    await opts.store.recordName(d.name, obj.sha256);
    if (opts.outDir) await exportObject(opts.outDir, d.name, obj);
  } catch (err) {
    if (opts.signal?.aborted) throw err;
    const e = err instanceof SourcemeshError ? err : fromSystemError(err, d.name);
    outcome.status = 'failed';
    outcome.error = { code: e.code, message: e.message.startsWith(`${d.name}: `) ? e.message : `${d.name}: ${e.message}` };
  }
  return outcome;
}

/**
 * The stored object for `d`: by its pinned sha256; with only tarSha256 pinned, the object last fetched
 * under its name, if its tar still has that digest.
 */
async function storedFor(d: Distfile, store: Store): Promise<StoredObject | undefined> {
  if (d.sha256 !== undefined) return store.get(d.sha256);
  const obj = await store.byName(d.name);
  return obj && (await checkPinned(obj.path, d, { sha256: obj.sha256, store })).ok ? obj : undefined;
}

/**
 * A distfile made by cleansing: a mirror may have the result under its name; otherwise the `from`
 * tarball (the store's, or fetched by its sha256 from the distfile's upstream sources) is cleansed and
 * the result checked against the pinned sha256.
 */
async function acquireCleansed(d: Distfile, opts: FetchOptions, rejected: Rejection[]): Promise<{ obj: StoredObject; source: Source; contributors?: Contributor[] }> {
  const recipe = d.cleanse!;
  const cleansedOnly: Distfile = { ...d, urls: [], git: undefined, cleanse: undefined };
  if (opts.mirrors.length && opts.policy !== 'upstream-only') {
    try {
      return await acquire(cleansedOnly, { ...opts, policy: 'mirrors-only' }, rejected);
    } catch (err) {
      if (opts.signal?.aborted || !(err instanceof SourcemeshError) || isLocalTrouble(err)) throw err;
    }
  }
  let from = await opts.store.get(recipe.from);
  let via: Source = { role: 'upstream', label: `store ${recipe.from}`, location: { type: 'file', path: from?.path ?? '' } };
  if (!from) {
    if (opts.policy === 'mirrors-only') throw new SourcemeshError('E_NO_SOURCE', `${d.name}: no mirror has it and its cleanse input ${recipe.from} is not in the store (policy mirrors-only)`, { name: d.name, rejected });
    const original: Distfile = { name: d.name, sha256: recipe.from, urls: d.urls, ...(d.git ? { git: d.git } : {}) };
    const lock = await opts.store.lock(recipe.from, opts.signal);
    try {
      from = await opts.store.get(recipe.from);
      if (!from) {
        const got = await acquire(original, { ...opts, mirrors: [], policy: 'upstream-only', segments: undefined }, rejected);
        from = got.obj;
        via = got.source;
      }
    } finally {
      await lock?.release();
    }
  }
  const { cleanseIntoStore } = await import('./cleansed.ts'); // the archiver, only for entries to cleanse
  const obj = await cleanseIntoStore(d, from, opts.store);
  return { obj, source: { ...via, label: `cleanse of ${via.label}` } };
}

/** `acquire`, tried again each time `opts.sourceWait` finds more sources after none served the file. */
async function acquireWaiting(d: Distfile, opts: FetchOptions, rejected: Rejection[]): ReturnType<typeof acquire> {
  for (;;) {
    const mark = opts.sourceWait?.mark(d);
    try {
      return await acquire(d, opts, rejected);
    } catch (err) {
      if (!opts.sourceWait || opts.signal?.aborted || !(err instanceof SourcemeshError) || err.code !== 'E_NO_SOURCE') throw err;
      const waited = await opts.sourceWait.wait(d, mark!, opts.signal);
      if (waited !== true) throw waited === undefined ? err : new SourcemeshError('E_NO_SOURCE', `${err.message}; ${waited}`, err.details);
    }
  }
}

/** Try each source until one serves bytes with the pinned digest; blame each one that did not. */
async function acquire(d: Distfile, opts: FetchOptions, rejected: Rejection[]): Promise<{ obj: StoredObject; source: Source; contributors?: Contributor[] }> {
  const random = opts.random ?? Math.random;
  const dropped = opts.dropped ?? new Map<string, string>();
  let sources = [...planSources(d, { mirrors: opts.mirrors, policy: opts.policy, offline: opts.offline, random, generateGit: opts.openSnapshot !== undefined, mirrorWeight: opts.mirrorWeight }), ...(opts.extraSources?.(d) ?? [])]
    .filter((s) => !dropped.has(s.label));
  if (sources.length === 0) {
    const why = opts.offline ? 'offline and no local mirror'
      : d.urls.length === 0 && d.git ? 'a git snapshot with no HTTP source; add a mirror that has it'
      : dropped.size ? 'every source was dropped earlier in this run' : `no mirror and no upstream URL under policy ${opts.policy}`;
    throw new SourcemeshError('E_NO_SOURCE', `${d.name}: nothing to fetch from (${why})`, { name: d.name });
  }
  const key = d.sha256 ?? d.tarSha256!;
  let partial = await opts.store.beginPartial(key);
  const restart = async () => {
    await opts.store.discardPartial(partial);
    partial = await opts.store.beginPartial(key);
  };
  // Every pinned hash of the partial's bytes (sha256 from the download's running hash; tarSha256 by
  // decompressing the partial). `sha256` is what the store names the object by.
  const verdict = async (digest: string, bytes: number, label: string): Promise<{ ok: true; sha256: string } | { ok: false; why: string }> => {
    if (d.sha256 !== undefined && !digestsEqual(digest, d.sha256)) return { ok: false, why: `${label} served ${bytes} bytes with sha256 ${digest}, expected ${d.sha256}` };
    if (d.tarSha256 === undefined) return { ok: true, sha256: digest };
    const c = await checkPinned(partial.path, d, { what: `${label}: ${d.name}`, sha256: digest, store: opts.store });
    return c.ok ? { ok: true, sha256: digest } : { ok: false, why: `${label} served ${bytes} bytes whose tar has sha256 ${c.actual}, expected tarSha256 ${d.tarSha256}` };
  };
  const reject = (label: string, role: Source['role'], code: ErrorCode, message: string) => {
    rejected.push({ source: label, role, code, message });
    opts.onEvent?.({ type: 'rejected', name: d.name, source: label, code, message });
    // BEP 19: a web seed that fails or lies is not asked again during the run. A 404 only says this
    // mirror lacks this file.
    if (role === 'mirror' && (code === 'E_CHECKSUM' || code === 'E_SIZE' || code === 'E_NETWORK')) dropped.set(label, message);
    // A peer that sent wrong bytes is banned for the run, as a lying mirror is.
    if (role === 'peer' && (code === 'E_CHECKSUM' || code === 'E_SIZE')) dropped.set(label, message);
  };
  const roleOf = (label: string) => sources.find((s) => s.label === label)?.role ?? 'mirror';
  const ctxFor = (label: string): DownloadContext => ({
    store: opts.store, dispatcher: opts.dispatcher, limits: opts.limits, random, signal: opts.signal, openSnapshot: opts.openSnapshot, pieceLayerFor: opts.pieceLayerFor, onPieceVerified: opts.onPieceVerified, hashPieces: opts.hashPieces,
    dispatcherFor: opts.dispatcherFor && ((s: Source) => opts.dispatcherFor!(s, d.name)),
    onBytes: (delta: number) => opts.onEvent?.({ type: 'bytes', name: d.name, delta }),
    onRetry: (err: SourcemeshError, attempt: number, delayMs: number) =>
      opts.onEvent?.({ type: 'retry', name: d.name, source: label, message: err.message, attempt, delayMs }),
  });

  // Large files from several sources at once, in pieces.
  let skip = new Set<string>();
  // (Pieces are checked against the pinned sha256: a file pinned by tarSha256 alone is taken whole.)
  if (opts.segments && d.sha256 !== undefined && canSegment(d, sources, opts.segments)) {
    try {
      const r = await segmentedDownload({ ...d, sha256: d.sha256 }, sources, partial, ctxFor('pieces'), opts.segments);
      for (const b of r.blame) reject(b.source, roleOf(b.source), b.code, b.message);
      if ('notSplit' in r) skip = new Set(r.blame.map((b) => b.source));
      else if (digestsEqual(r.digest, d.sha256)) {
        const v = await verdict(r.digest, r.bytes, 'pieces');
        if (!v.ok) throw new SourcemeshError('E_MANIFEST', `${d.name}: ${v.why} (the manifest's sha256 and tarSha256 disagree)`, { name: d.name });
        // No source of this run served any (every piece came from an interrupted run's partial): name
        // the first planned one.
        return { obj: await opts.store.commit(partial), source: r.used[0]?.source ?? sources[0]!, contributors: r.used.map((u) => ({ source: u.source.label, bytes: u.bytes })) };
      }
    } catch (err) {
      if (opts.signal?.aborted || !(err instanceof SourcemeshError) || isLocalTrouble(err)) throw err;
      for (const b of (err.details.blame as { source: string; code: ErrorCode; message: string }[] | undefined) ?? []) reject(b.source, roleOf(b.source), b.code, b.message);
    }
    // Not worth splitting, or pieces could not make a verified file: whole-file downloads from what is left.
    await restart();
    sources = sources.filter((s) => !dropped.has(s.label) && !skip.has(s.label));
  }

  for (const source of sources) {
    const ctx = ctxFor(source.label);
    try {
      let got = await downloadFrom(d, source, partial, ctx);
      let v = await verdict(got.digest, got.bytes, source.label);
      if (!v.ok && got.resumed) {
        // Part of the bytes came from an earlier attempt or source: before blaming this one, take
        // the whole file from it alone.
        await restart();
        got = await downloadFrom(d, source, partial, ctx);
        v = await verdict(got.digest, got.bytes, source.label);
      }
      if (v.ok) {
        const obj = await opts.store.commit({ ...partial, sha256: v.sha256 });
        if (got.pieceMap) opts.onHashedPieces?.(d.name, v.sha256, got.pieceMap);
        return { obj, source };
      }
      reject(source.label, source.role, 'E_CHECKSUM', v.why);
      await restart();
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      if (!(err instanceof SourcemeshError) || isLocalTrouble(err)) throw err; // no other source helps
      if (err.details.notYet === true) continue; // a peer that lacks the file yet: no fault of its own
      reject(source.label, source.role, err.code, err.message);
      if (err.code === 'E_SIZE') await restart();
    }
  }
  if (partial.size === 0) await opts.store.discardPartial(partial);
  const lied = rejected.some((r) => r.code === 'E_CHECKSUM' || r.code === 'E_SIZE');
  const summary = rejected.map(describeRejection).join('; ') || 'none answered';
  throw new SourcemeshError(lied ? 'E_CHECKSUM' : 'E_NO_SOURCE', `${d.name}: no source served it verified (${summary})`, { name: d.name, rejected });
}

function isLocalTrouble(err: SourcemeshError): boolean {
  return err.code === 'E_DISK_FULL' || err.code === 'E_PERMISSION' || (err.code === 'E_IO' && !err.details.notFound);
}

/** What a run says about each mirror, for the reputation record. */
export function mirrorOutcomes(report: FetchReport): Outcome[] {
  const out: Outcome[] = [];
  for (const f of report.files) {
    if (f.status === 'fetched' && f.via === 'mirror' && !f.contributors) out.push({ mirror: f.source!, bytes: f.size, ms: f.ms });
    for (const c of f.contributors ?? []) if (f.rejected.every((r) => r.source !== c.source)) out.push({ mirror: c.source, bytes: c.bytes, ms: Math.round((f.ms ?? 0) * (c.bytes / (f.size || 1))) });
    for (const r of f.rejected) {
      if (r.role !== 'mirror' || r.code === 'E_HTTP' && /HTTP 404|HTTP 410/.test(r.message)) continue;
      out.push(r.code === 'E_CHECKSUM' || r.code === 'E_SIZE' ? { mirror: r.source, lie: `${f.name}: ${r.message}` } : { mirror: r.source, failed: true });
    }
  }
  return out;
}

/** "SOURCE: what happened", without saying the source twice when the message already starts with it. */
export function describeRejection(r: { source: string; message: string }): string {
  return r.message.startsWith(r.source) ? r.message : `${r.source}: ${r.message}`;
}

const SEVERITY: Partial<Record<ErrorCode, number>> = { E_CHECKSUM: 3, E_SIZE: 3, E_VERIFY: 3 };

function worse(a: ErrorCode | undefined, b: ErrorCode): ErrorCode {
  if (a === undefined) return b;
  return (SEVERITY[b] ?? 1) > (SEVERITY[a] ?? 1) ? b : a;
}
