// `mirror sync`: bring a mirror root up to date with a manifest, taking bytes only from upstream (the
// manifest's URLs, and git snapshots we generate from upstream's repositories), never from other
// mirrors. Files already published are re-verified every run; one that no longer matches is moved to
// quarantine and fetched again. Nothing is published before its sha256 matched.
import { lstat, mkdir, realpath, rename, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Dispatcher } from '../net/undici.ts';
import { SourcemeshError, fromSystemError } from '../errors.ts';
import { fetchManifest, type FetchEvent, type FileOutcome } from '../fetch/fetcher.ts';
import { headSize } from '../fetch/http.ts';
import { availableParallelism } from 'node:os';
import type { Limits } from '../limits.ts';
import type { Distfile, Manifest } from '../manifest/distfile.ts';
import { digestsEqual, sha256File } from '../store/digest.ts';
import { checkPinned } from '../store/pinned.ts';
import { writeFileDurable } from '../fs/durable-file.ts';
import { ensureDir } from '../fs/files.ts';
import { Store } from '../store/store.ts';
import type { SignerKey } from '../trust/note.ts';
import { writeDerivedAttestations } from '../attest/derived.ts';
import { ATTESTATIONS_DIR } from '../attest/files.ts';
import { ensureRepo } from './git-repo.ts';
import { indexRoot, indexedFile, type FileIndex, type IndexedFile } from './file-index.ts';
import { publishHashLinks, type HashLinkReport } from './hash-links.ts';
import { buildInventory, writeInventory } from './inventory.ts';
import { snapshotOpener, type SnapshotGenerator } from './snapshot.ts';
import { PieceLayerThreads } from './piece-layer-thread.ts';
import type { PieceMap } from '../fetch/piece-map.ts';
import { stateDirOf } from './state-dir.ts';

export interface SyncOptions {
  root: string;
  /** Refuse, before writing anything, when the mirror would hold more than this. */
  maxBytes?: number;
  limits: Limits;
  dispatcher: Dispatcher;
  generator: SnapshotGenerator;
  jobs: number;
  random?: () => number;
  signal?: AbortSignal;
  onEvent?: (e: FetchEvent) => void;
  now?: () => Date;
  /** The node key: when given, the run ends by publishing a signed inventory of the root. */
  key?: SignerKey;
  /** The node key's file, never listed even if hard-linked into the root. */
  keyFile?: string;
  /** Also write ROOT/sha256/HEX hard links, for a static server in front (src/mirror/hash-links.ts). */
  staticLinks?: boolean;
}

export interface SyncReport {
  /** The snapshot generator that made this run's git snapshots (`sourcemesh archive` or `git archive`). */
  generator: string;
  added: FileOutcome[];
  unchanged: string[];
  quarantined: { name: string; expected: string; actual: string; movedTo: string }[];
  failed: FileOutcome[];
  /** The signed inventory written at the end of the run (when a node key was given). */
  inventory?: { path: string; files: number };
  /** Attestations written this run (when a node key was given): one per file made or downloaded. */
  attestations?: string[];
  /** ROOT/sha256/HEX links for a static server (with staticLinks). */
  hashLinks?: HashLinkReport;
}

export { stateDirOf }; // its home is state-dir.ts (serve finds its key without loading this module)

export async function syncMirror(manifest: Manifest, opts: SyncOptions): Promise<SyncReport> {
  const root = path.resolve(opts.root);
  const state = stateDirOf(root);
  await ensureDir(root, 'mirror root');
  const store = await Store.open(path.join(state, 'store'));
  const report: SyncReport = { generator: opts.generator.name, added: [], unchanged: [], quarantined: [], failed: [] };
  // No file the inventory lists is hashed before this moment (see buildInventory).
  const started = opts.now?.() ?? new Date();

  // 1. Re-verify what is published.
  const missing: Distfile[] = [];
  let publishedBytes = 0;
  // name -> sha256 of the bytes verified this run (pinned, or, for tarSha256 alone, of what verified).
  const verifiedSha = new Map<string, string>();
  for (const d of manifest.distfiles) {
    const file = path.join(root, d.name);
    const info = await lstat(file).catch(() => undefined);
    if (!info) {
      missing.push(d);
      continue;
    }
    // A pinned sha256 identifies the bytes; a file pinned by tarSha256 alone is decompressed and its tar hashed.
    const check = !info.isFile() ? { ok: false as const, expected: d.sha256 ?? d.tarSha256!, actual: 'not a regular file' }
      : d.sha256 !== undefined ? await sha256File(file).then((actual) => digestsEqual(actual, d.sha256!) ? { ok: true as const, sha256: actual } : { ok: false as const, expected: d.sha256!, actual }, (err) => { throw fromSystemError(err, file); })
      : await checkPinned(file, d, { store });
    if (check.ok) {
      report.unchanged.push(d.name);
      verifiedSha.set(d.name, check.sha256);
      publishedBytes += info.size;
      continue;
    }
    report.quarantined.push({ name: d.name, expected: check.expected, actual: check.actual, movedTo: await quarantine(root, file, store, d, opts.now?.() ?? new Date()) });
    missing.push(d);
  }

  // 2. The byte cap, checked before anything is written.
  if (opts.maxBytes !== undefined && missing.length) await checkCap(missing, publishedBytes, opts);

  // 3. Fetch from upstream only, into the mirror's own store, published by hard link.
  // 4. Piece layers (BEP 52) beside the files, for clients that pin a merkle root. A file downloaded
  // whole has its layer from the download's own pass (its 16 KiB blocks hashed on a thread as they
  // arrive, src/fetch/hash-thread.ts); any other (already published, or made by a snapshot generator...)
  // is read back and hashed on threads, as many at once as there are cores. Each file's layer is written
  // as soon as the file is verified and published, while the others are still downloading.
  const threads = new PieceLayerThreads(availableParallelism());
  const hashed = new Map<string, { sha256: string; map: PieceMap }>();
  const layers = new LayerJobs((d, sha) => {
    const h = hashed.get(d.name);
    hashed.delete(d.name);
    return publishPieceLayer(root, d, sha, threads, h && digestsEqual(h.sha256, sha) ? h.map : undefined);
  });
  for (const d of manifest.distfiles) if (verifiedSha.has(d.name)) layers.add(d, verifiedSha.get(d.name)!);
  try {
    if (missing.length) {
      const byName = new Map(missing.map((d) => [d.name, d]));
      const fetched = await fetchManifest({ ...manifest, distfiles: missing }, {
        store, outDir: root, mirrors: [], policy: 'upstream-only', offline: false, jobs: opts.jobs, limits: opts.limits,
        dispatcher: opts.dispatcher, random: opts.random, signal: opts.signal,
        hashPieces: PIECE_LAYER_LENGTH, onHashedPieces: (name, sha256, map) => hashed.set(name, { sha256, map }),
        onEvent: (e) => {
          if (e.type === 'done' && e.outcome.status !== 'failed') layers.add(byName.get(e.outcome.name)!, e.outcome.sha256);
          opts.onEvent?.(e);
        },
        openSnapshot: snapshotOpener(state, opts.generator),
      });
      for (const f of fetched.files) {
        (f.status === 'failed' ? report.failed : report.added).push(f);
        if (f.status !== 'failed') verifiedSha.set(f.name, f.sha256);
      }
    }
  } finally {
    // No thread outlives the run, even one that failed or was aborted; the first error is thrown. An
    // aborted run does not wait for the layers still to make.
    if (opts.signal?.aborted) await threads.close();
    await layers.settle();
    await threads.close();
  }
  layers.throwIfFailed();
  const failed = new Set(report.failed.map((f) => f.name));

  // 5. What this node derived this run, attested with its key (docs/FORMATS.md, "Attestations").
  // The clone is there: the ref the snapshot was made from resolves without the network (a ref that moved
  // since would resolve to its new commit only after a fetch, which this never does).
  if (opts.key) {
    report.attestations = await writeDerivedAttestations(path.join(root, ATTESTATIONS_DIR), manifest, report.added, opts.key, {
      resolveCommit: async (d) => (await ensureRepo(d.git!.repo, d.git!.ref, stateDirOf(root), opts.signal, { offline: true })).commit, now: opts.now?.() ?? new Date(),
    });
  }

  // 6. The signed inventory of everything the root serves, as `serve` would list it.
  if (opts.key || opts.staticLinks) {
    const verified = new Map<string, string>(manifest.distfiles.filter((d) => !failed.has(d.name)).map((d) => [d.name, verifiedSha.get(d.name)!]));
    const index = await indexPublished(root, verified, opts);
    if (opts.key) report.inventory = await publishInventory(root, index, started, opts.key, opts);
    // 7. What a static server needs to answer /sha256/HEX as serve does.
    if (opts.staticLinks) report.hashLinks = await publishHashLinks(root, index);
  }
  return report;
}

/**
 * Index the root as `serve` does. Files this run verified keep the hash it checked (as serve keeps
 * hashes across reindexing, by inode, size, mtime and ctime); anything else in the root is hashed now.
 */
async function indexPublished(root: string, verified: Map<string, string>, opts: SyncOptions): Promise<FileIndex> {
  const rootReal = await realpath(root);
  const byName = new Map<string, IndexedFile>();
  for (const [name, sha256] of verified) {
    const file = path.join(rootReal, name);
    const st = await lstat(file).catch(() => undefined);
    if (st?.isFile()) byName.set(name, indexedFile(name, file, st, sha256));
  }
  const previous: FileIndex = { byName, bySha256: new Map(), pieces: new Map(), skipped: [], hashedBytes: 0 };
  const exclude = opts.keyFile ? await stat(opts.keyFile).then((s) => [{ dev: s.dev, ino: s.ino }], () => []) : [];
  return indexRoot(root, { previous, exclude });
}

/** Sign the listing of the root as `serve` would list it. */
async function publishInventory(root: string, index: FileIndex, started: Date, key: SignerKey, opts: SyncOptions) {
  const files = [...index.byName.values()].map((f) => ({ name: f.name, size: f.size, sha256: f.sha256 }));
  const file = await writeInventory(root, buildInventory(files, key, started, opts.limits));
  return { path: file, files: files.length };
}

/**
 * The piece-layer jobs of a run, started as they are added (the threads bound how many run at once). The
 * first failure is kept and thrown by throwIfFailed, once settle() has waited for every job.
 */
class LayerJobs {
  private readonly running = new Set<Promise<void>>();
  private failure: { err: unknown } | undefined;
  private readonly job: (d: Distfile, sha256: string) => Promise<void>;

  constructor(job: (d: Distfile, sha256: string) => Promise<void>) {
    this.job = job;
  }

  add(d: Distfile, sha256: string): void {
    const p: Promise<void> = this.job(d, sha256).catch((err) => {
      this.failure ??= { err };
    }).finally(() => this.running.delete(p));
    this.running.add(p);
  }

  async settle(): Promise<void> {
    while (this.running.size) await Promise.all(this.running);
  }

  throwIfFailed(): void {
    if (this.failure) throw this.failure.err;
  }
}

/**
 * ROOT/sha256/HEX.pieces for files of more than one piece, written once, atomically; from `hashed` (the
 * download's own pass over these bytes) when given, else read back on a thread.
 */
async function publishPieceLayer(root: string, d: Distfile, sha256: string, threads: PieceLayerThreads, hashed?: PieceMap): Promise<void> {
  const file = path.join(root, d.name);
  const out = path.join(root, 'sha256', `${sha256}.pieces`);
  if ((await stat(file)).size <= PIECE_LAYER_LENGTH || (await stat(out).catch(() => undefined))) return;
  const map = hashed ?? await threads.pieceMap(file, PIECE_LAYER_LENGTH);
  if (d.merkleRoot && map.root.toString('hex') !== d.merkleRoot) {
    throw new SourcemeshError('E_MANIFEST', `${d.name}: its verified bytes have merkle root ${map.root.toString('hex')}, the manifest says ${d.merkleRoot}`);
  }
  await ensureDir(path.dirname(out), 'mirror piece layers');
  await writeFileDurable(out, Buffer.concat(map.layer), 'cannot write the piece layer');
}

const PIECE_LAYER_LENGTH = 1 << 20;

/** Move a published file that no longer verifies out of the served tree, with its store object. */
async function quarantine(root: string, file: string, store: Store, d: Distfile, now: Date): Promise<string> {
  const dir = path.join(stateDirOf(root), 'quarantine');
  await mkdir(dir, { recursive: true });
  const dest = path.join(dir, `${d.name}.${now.toISOString().replace(/[:.]/g, '-')}`);
  // A published file is a hard link to the store object: if its bytes changed in place, so did the
  // object's, and the object must not be published again.
  const obj = d.sha256 !== undefined ? await store.get(d.sha256) : await store.byName(d.name);
  const [fi, oi] = await Promise.all([stat(file), obj ? stat(obj.path) : undefined]);
  if (obj && oi && fi.ino === oi.ino && fi.dev === oi.dev) await rename(obj.path, `${dest}.object`);
  await rename(file, dest);
  return dest;
}

async function checkCap(missing: Distfile[], publishedBytes: number, opts: SyncOptions): Promise<void> {
  let total = publishedBytes;
  const over: string[] = [];
  for (const d of missing) {
    const size = d.size ?? (await firstAnnouncedSize(d.urls, opts));
    if (size === undefined) continue; // a generated snapshot of unknown size: counted once made
    if (total + size > opts.maxBytes!) over.push(`${d.name} (${size} bytes)`);
    else total += size;
  }
  if (over.length) {
    throw new SourcemeshError('E_DISK_FULL', `--max-bytes ${opts.maxBytes}: ${over.length} file(s) do not fit after ${total} bytes: ${over.join(', ')}`, { over });
  }
}

async function firstAnnouncedSize(urls: string[], opts: SyncOptions): Promise<number | undefined> {
  for (const url of urls) {
    const size = await headSize(url, opts.dispatcher, opts.limits, opts.signal);
    if (size !== undefined) return size;
  }
  return undefined;
}
