// `torrent create`: a manifest's verified distfiles turned into torrents (docs/FORMATS.md, "Torrents"),
// one per distfile or one for the whole manifest. Only bytes that hash to the manifest's sha256 go into a
// torrent; the BEP 52 pieces root is the manifest's merkleRoot: a file whose root disagrees is refused,
// and a missing merkleRoot is filled from the bytes. Same manifest, same files and options: same bytes.
import { lstat } from 'node:fs/promises';
import path from 'node:path';
import { SourcemeshError, asSourcemeshError, isNotFound } from '../errors.ts';
import { BLOCK, isPieceLength } from '../fetch/piece-map.ts';
import { LIMITS } from '../limits.ts';
import type { Distfile, Manifest } from '../manifest/index.ts';
import { digestsEqual } from '../store/digest.ts';
import { Store } from '../store/store.ts';
import { hashTorrentFiles } from './file-hashes.ts';
import { byNameBytes, makeTorrent, v1Layout, type FileHashes, type TorrentVersion } from './metainfo.ts';

/** Where the verified bytes are: a mirror root or distfiles directory (by name), or the store (by sha256). */
export type ByteSource = { kind: 'root'; root: string } | { kind: 'store'; store: string };

export interface CreateOptions {
  version: TorrentVersion;
  multiFile: boolean;
  webSeeds: string[];
  trackers: string[];
  /** A fixed piece length; otherwise `autoPieceLength` of the largest file. */
  pieceLength?: number;
}

export interface CreatedTorrent {
  /** The torrent's name: the distfile's, or the manifest's for --multi-file. */
  name: string;
  /** The file name to write it under (NAME.torrent). */
  fileName: string;
  bytes: Buffer;
  infoHashV1?: string;
  infoHashV2?: string;
  magnet: string;
  pieceLength: number;
  files: { name: string; size: number; merkleRoot: string }[];
}

export interface CreateResult {
  torrents: CreatedTorrent[];
  failed: { name: string; code: string; message: string }[];
  /** Distfiles whose merkleRoot was missing and is now known (to write back into the manifest). */
  filled: Map<string, string>;
}

/**
 * The piece length for a file (or a torrent's largest file) of `size` bytes: the smallest power of two of
 * at least 16 KiB that gives at most 1,024 pieces, and no more than 1 MiB (the piece length of the layers
 * mirrors publish at /sha256/HEX.pieces, docs/FORMATS.md, Mirror layout). A rule, so torrents are
 * deterministic.
 */
export function autoPieceLength(size: number): number {
  let p = BLOCK;
  while (p < 1 << 20 && Math.ceil(size / p) > 1024) p *= 2;
  return p;
}

export async function createTorrents(manifest: Manifest, source: ByteSource, opts: CreateOptions): Promise<CreateResult> {
  if (opts.pieceLength !== undefined && (!isPieceLength(opts.pieceLength) || opts.pieceLength > LIMITS.torrentMaxPieceLength)) {
    throw new SourcemeshError('E_USAGE', `--piece-length ${opts.pieceLength}: must be a power of two from 16 KiB to ${LIMITS.torrentMaxPieceLength / (1 << 20)} MiB`);
  }
  const store = source.kind === 'store' ? await Store.open(source.store) : undefined;
  const result: CreateResult = { torrents: [], failed: [], filled: new Map() };
  const located: { d: Distfile; file: string; size: number }[] = [];
  for (const d of manifest.distfiles) {
    try {
      located.push({ d, ...(await locate(d, source, store)) });
    } catch (err) {
      const e = asSourcemeshError(err);
      result.failed.push({ name: d.name, code: e.code, message: e.message });
    }
  }
  const groups = opts.multiFile ? (located.length ? [located] : []) : located.map((l) => [l]);
  for (const group of groups) {
    try {
      result.torrents.push(await createOne(opts.multiFile ? manifest.name : group[0]!.d.name, group, opts, result.filled));
    } catch (err) {
      const e = asSourcemeshError(err);
      for (const l of group) result.failed.push({ name: l.d.name, code: e.code, message: e.message });
    }
  }
  return result;
}

async function locate(d: Distfile, source: ByteSource, store: Store | undefined): Promise<{ file: string; size: number }> {
  // A torrent is made of verified bytes only: without a pinned sha256 there is nothing to verify against.
  if (d.sha256 === undefined) throw new SourcemeshError('E_UNSUPPORTED', `${d.name}: the manifest pins no sha256, so its bytes cannot be verified for a torrent`);
  const file = store ? (await store.get(d.sha256))?.path : path.join(source.kind === 'root' ? source.root : '', d.name);
  const st = file ? await lstat(file).catch((err) => (isNotFound(err) ? undefined : Promise.reject(err))) : undefined;
  if (!file || !st) throw new SourcemeshError('E_VERIFY', `${d.name}: not in ${source.kind === 'root' ? source.root : `the store ${source.store}`}`);
  if (!st.isFile()) throw new SourcemeshError('E_VERIFY', `${file}: not a regular file`);
  if (d.size !== undefined && st.size !== d.size) throw new SourcemeshError('E_SIZE', `${file}: ${st.size} bytes, the manifest pins ${d.size}`);
  return { file, size: st.size };
}

async function createOne(name: string, group: { d: Distfile; file: string; size: number }[], opts: CreateOptions, filled: Map<string, string>): Promise<CreatedTorrent> {
  const ordered = byNameBytes(group.map((g) => ({ ...g, name: g.d.name })));
  const pieceLength = opts.pieceLength ?? autoPieceLength(Math.max(...ordered.map((g) => g.size)));
  const layout = v1Layout(ordered, pieceLength, opts.version, opts.multiFile);
  const hashed = await hashTorrentFiles(ordered.map((g, i) => ({ path: g.file, pad: layout[i]!.pad })), pieceLength, opts.version !== 'v2');
  const files: FileHashes[] = ordered.map((g, i) => {
    const h = hashed.files[i]!;
    if (h.size !== g.size) throw new SourcemeshError('E_SIZE', `${g.file}: changed while it was read (${g.size} bytes, then ${h.size})`);
    if (!digestsEqual(h.sha256, g.d.sha256!)) throw new SourcemeshError('E_CHECKSUM', `${g.file}: sha256 ${h.sha256}, the manifest pins ${g.d.sha256}`, { expected: g.d.sha256, actual: h.sha256 });
    const root = h.root.toString('hex');
    // The bytes are the manifest's (sha256 above), so a different merkleRoot is the manifest's own fault.
    if (g.d.merkleRoot !== undefined && g.d.merkleRoot !== root) throw new SourcemeshError('E_MANIFEST', `${g.d.name}: its verified bytes have merkle root ${root}, the manifest says ${g.d.merkleRoot}`);
    if (g.d.merkleRoot === undefined) filled.set(g.d.name, root);
    return { name: g.d.name, size: h.size, root: h.root, layer: h.layer };
  });
  const made = makeTorrent({ name, files, multiFile: opts.multiFile, pieceLength, version: opts.version, v1Pieces: hashed.v1Pieces, webSeeds: opts.webSeeds, trackers: opts.trackers });
  return {
    name,
    fileName: `${name}.torrent`,
    bytes: made.bytes,
    infoHashV1: made.infoHashV1?.toString('hex'),
    infoHashV2: made.infoHashV2?.toString('hex'),
    magnet: made.magnet,
    pieceLength,
    files: files.map((f) => ({ name: f.name, size: f.size, merkleRoot: f.root.toString('hex') })),
  };
}
