// The torrents we make, and the reading of any torrent (attacker-controlled: a peer, a web page or a
// user hands it to us). BEP 3 (v1 info dictionary), BEP 52 (v2: `file tree`, `pieces root`, `piece
// layers`, `meta version` 2), hybrids (both in one info dictionary, BEP 52 "Upgrade path", with BEP 47
// pad files aligning every file to a piece boundary, as libtorrent 2.0 writes them), BEP 12 announce-list
// and BEP 19 url-list. Pure: the file hashes come in, the bytes go out.
import { createHash } from 'node:crypto';
import { SourcemeshError } from '../errors.ts';
import { isPieceLength, verifyPieceLayer } from '../fetch/piece-map.ts';
import { LIMITS, type Limits } from '../limits.ts';
import { BReader, bdict, bkey, decode, encode, type BDict, type BValue } from './bencode.ts';

export type TorrentVersion = 'v1' | 'v2' | 'hybrid';

/** What a torrent needs to know about one file, computed from its verified bytes. */
export interface FileHashes {
  name: string;
  size: number;
  /** BEP 52 pieces root (the manifest's merkleRoot); 32 zero bytes for an empty file. */
  root: Buffer;
  /** BEP 52 piece layer at the torrent's piece length; empty when the file fits in one piece. */
  layer: Buffer[];
}

export interface TorrentSpec {
  /** Single file: the file's name; multi-file: the directory name. */
  name: string;
  files: FileHashes[];
  multiFile: boolean;
  pieceLength: number;
  version: TorrentVersion;
  /** v1 piece hashes (SHA-1, 20 bytes each) over the files as laid out by `v1Layout`, for v1 and hybrid. */
  v1Pieces?: Buffer;
  webSeeds: string[];
  trackers: string[];
}

export interface MadeTorrent {
  bytes: Buffer;
  infoHashV1?: Buffer;
  infoHashV2?: Buffer;
  magnet: string;
}

/**
 * How the v1 byte stream is laid out: each file, then (hybrids of several files) a pad of zeros up to the
 * next piece boundary after every non-empty file, the last one included (libtorrent 2.0.8 does the same;
 * BEP 47). The v1 pieces are SHA-1 of each piece of that stream.
 */
export function v1Layout(files: { name: string; size: number }[], pieceLength: number, version: TorrentVersion, multiFile: boolean): { name: string; size: number; pad: number }[] {
  const padded = version === 'hybrid' && multiFile;
  return files.map((f) => ({ name: f.name, size: f.size, pad: padded && f.size % pieceLength ? pieceLength - (f.size % pieceLength) : 0 }));
}

/** Files in byte order of their UTF-8 names: the order of a `file tree` dictionary and so of the v1 list. */
export function byNameBytes<T extends { name: string }>(files: T[]): T[] {
  return [...files].sort((a, b) => Buffer.compare(Buffer.from(a.name, 'utf8'), Buffer.from(b.name, 'utf8')));
}

export function makeTorrent(spec: TorrentSpec): MadeTorrent {
  const { pieceLength, version } = spec;
  if (!isPieceLength(pieceLength)) throw new SourcemeshError('E_USAGE', `piece length ${pieceLength}: must be a power of two of at least 16 KiB`);
  if (!spec.multiFile && spec.files.length !== 1) throw new SourcemeshError('E_INTERNAL', 'a single-file torrent needs exactly one file');
  const files = byNameBytes(spec.files);
  const v1 = version !== 'v2';
  const v2 = version !== 'v1';
  if (v1 && spec.v1Pieces === undefined) throw new SourcemeshError('E_INTERNAL', 'v1 pieces are needed for a v1 or hybrid torrent');

  const info: [string, BValue | undefined][] = [['name', Buffer.from(spec.name, 'utf8')], ['piece length', pieceLength]];
  if (v2) {
    const leaf = (f: FileHashes): BDict => bdict([['', bdict([['length', f.size], ['pieces root', f.size > 0 ? f.root : undefined]])]]);
    // BEP 52: the tree holds the files themselves; `name` is only the directory a client suggests for them.
    const tree: BDict = new Map();
    if (spec.multiFile) for (const f of files) tree.set(bkey(f.name), leaf(f));
    else tree.set(bkey(spec.name), leaf(files[0]!));
    info.push(['file tree', tree], ['meta version', 2]);
  }
  if (v1) {
    info.push(['pieces', spec.v1Pieces]);
    if (spec.multiFile) {
      const list: BValue[] = [];
      for (const f of v1Layout(files, pieceLength, version, true)) {
        list.push(bdict([['length', f.size], ['path', [Buffer.from(f.name, 'utf8')]]]));
        if (f.pad) list.push(bdict([['attr', Buffer.from('p')], ['length', f.pad], ['path', [Buffer.from('.pad'), Buffer.from(String(f.pad))]]]));
      }
      info.push(['files', list]);
    } else info.push(['length', files[0]!.size]);
  }
  const infoDict = bdict(info);

  const top: [string, BValue | undefined][] = [['info', infoDict]];
  if (spec.trackers.length) {
    top.push(['announce', Buffer.from(spec.trackers[0]!, 'utf8')]);
    // BEP 12: one tier per tracker, tried in the order given.
    if (spec.trackers.length > 1) top.push(['announce-list', spec.trackers.map((t) => [Buffer.from(t, 'utf8')])]);
  }
  if (v2) {
    const layers: BDict = new Map();
    for (const f of files) if (f.layer.length > 0) layers.set(f.root.toString('latin1'), Buffer.concat(f.layer));
    top.push(['piece layers', layers]);
  }
  if (spec.webSeeds.length) top.push(['url-list', spec.webSeeds.map((u) => Buffer.from(u, 'utf8'))]);

  const infoBytes = encode(infoDict);
  const infoHashV1 = v1 ? createHash('sha1').update(infoBytes).digest() : undefined;
  const infoHashV2 = v2 ? createHash('sha256').update(infoBytes).digest() : undefined;
  return { bytes: encode(bdict(top)), infoHashV1, infoHashV2, magnet: magnetLink(spec.name, infoHashV1, infoHashV2, spec.trackers, spec.webSeeds) };
}

/** A magnet link (BEP 9; `urn:btmh:` with the multihash of SHA-256, 0x12 0x20, for v2, BEP 52). */
export function magnetLink(name: string, v1?: Buffer, v2?: Buffer, trackers: string[] = [], webSeeds: string[] = []): string {
  const parts: string[] = [];
  if (v1) parts.push(`xt=urn:btih:${v1.toString('hex')}`);
  if (v2) parts.push(`xt=urn:btmh:1220${v2.toString('hex')}`);
  parts.push(`dn=${encodeURIComponent(name)}`);
  for (const t of trackers) parts.push(`tr=${encodeURIComponent(t)}`);
  for (const w of webSeeds) parts.push(`ws=${encodeURIComponent(w)}`);
  return `magnet:?${parts.join('&')}`;
}

// ---- reading ---------------------------------------------------------------------------------------

export interface TorrentFile {
  /** Path inside the torrent (for a single-file torrent, the torrent's name). */
  path: string[];
  size: number;
  /** BEP 52 pieces root, when the torrent is v2 or hybrid and the file is not empty. */
  root?: Buffer;
  /** Verified against `root`; empty when the file fits in one piece. */
  layer: Buffer[];
}

export interface Torrent {
  name: string;
  pieceLength: number;
  version: TorrentVersion;
  multiFile: boolean;
  /** Real files, pad files left out. */
  files: TorrentFile[];
  v1Pieces?: Buffer;
  /** Bytes of the v1 layout, pad files included (what `v1Pieces` cover); v1 and hybrid torrents only. */
  v1Size?: number;
  /** Where each of `files` starts in the v1 layout, after the pad files (BEP 47) before it; v1 and hybrid torrents only. */
  v1Offsets?: number[];
  infoHashV1?: Buffer;
  infoHashV2?: Buffer;
  webSeeds: string[];
  trackers: string[];
  /** BEP 12 tiers: the announce-list when there is one (clients that read it ignore announce), else [[announce]]. */
  trackerTiers: string[][];
}

/** Where each file that is not a pad file starts in the v1 byte stream (every file, pads included, end to end). */
function offsetsOfReal(files: { size: number; pad: boolean }[]): number[] {
  const out: number[] = [];
  let at = 0;
  for (const f of files) {
    if (!f.pad) out.push(at);
    at += f.size;
  }
  return out;
}

type ReadLimits = Pick<Limits, 'bencodeDepth' | 'bencodeItems' | 'torrentFiles' | 'torrentMaxPieceLength'>;

/** Parse and check a torrent: every field we use, hybrid halves agreeing, piece layers against roots. */
export function readTorrent(bytes: Buffer, what: string, limits: ReadLimits = LIMITS): Torrent {
  const r = new BReader(what);
  const top = r.dict(decode(bytes, what, limits), 'the torrent');
  const info = r.dict(top.get('info'), 'info');
  const name = r.text(info.get('name'), 'info.name');
  const nameProblem = pathElementProblem(name);
  if (nameProblem) r.fail(`info.name ${JSON.stringify(name)} ${nameProblem}`);
  const pieceLength = r.int(info.get('piece length'), 'info.piece length', 1, limits.torrentMaxPieceLength);
  const hasV2 = info.has('meta version');
  const hasV1 = info.has('pieces');
  if (hasV2 && r.int(info.get('meta version'), 'info.meta version') !== 2) r.fail(`info.meta version ${String(info.get('meta version'))}: only version 2 is known (BEP 52)`);
  if (!hasV1 && !hasV2) r.fail('info has neither pieces (v1) nor meta version (v2)');
  if (hasV2 && !isPieceLength(pieceLength)) r.fail(`piece length ${pieceLength} is not a power of two of at least 16 KiB (BEP 52)`);
  const version: TorrentVersion = hasV1 && hasV2 ? 'hybrid' : hasV2 ? 'v2' : 'v1';

  let v2Files: TorrentFile[] | undefined;
  let multiFile = false;
  if (hasV2) {
    const tree = r.dict(info.get('file tree'), 'info.file tree');
    const layers = top.has('piece layers') ? r.dict(top.get('piece layers'), 'piece layers') : new Map<string, BValue>();
    v2Files = [];
    walkTree(r, tree, [], v2Files, limits);
    // BEP 52: a single-file torrent's tree is one file named as the torrent.
    multiFile = !(v2Files.length === 1 && v2Files[0]!.path.length === 1 && v2Files[0]!.path[0] === name);
    for (const f of v2Files) {
      if (!f.root || f.size <= pieceLength) continue;
      const bytesOfLayer = layers.get(f.root.toString('latin1'));
      if (bytesOfLayer === undefined) r.fail(`piece layers: none for file ${f.path.join('/')}`);
      const v = verifyPieceLayer(r.bytes(bytesOfLayer, 'a piece layer'), f.size, f.root);
      if (v.pieceLength !== pieceLength) r.fail(`the piece layer of ${f.path.join('/')} is not of the torrent's piece length`);
      f.layer = v.layer;
    }
  }

  let v1Pieces: Buffer | undefined;
  let v1Size: number | undefined;
  let v1Files: (TorrentFile & { pad: boolean })[] | undefined;
  if (hasV1) {
    v1Pieces = r.bytes(info.get('pieces'), 'info.pieces');
    if (v1Pieces.length % 20 !== 0) r.fail(`info.pieces of ${v1Pieces.length} bytes is not a whole number of SHA-1 hashes`);
    if (info.has('files')) {
      const list = r.list(info.get('files'), 'info.files');
      if (list.length === 0 || list.length > limits.torrentFiles) r.fail(`info.files has ${list.length} entries (1 to ${limits.torrentFiles})`);
      v1Files = list.map((e, i) => {
        const d = r.dict(e, `info.files[${i}]`);
        const p = r.list(d.get('path'), `info.files[${i}].path`).map((x, j) => r.text(x, `info.files[${i}].path[${j}]`));
        if (p.length === 0) r.fail(`info.files[${i}].path is empty`);
        const pad = d.has('attr') && r.bytes(d.get('attr'), `info.files[${i}].attr`).includes('p'.charCodeAt(0));
        if (!pad) for (const el of p) { const why = pathElementProblem(el); if (why) r.fail(`info.files[${i}].path element ${JSON.stringify(el)} ${why}`); }
        return { path: p, size: r.int(d.get('length'), `info.files[${i}].length`), layer: [], pad };
      });
      if (v2Files && !multiFile) r.fail('info.files (v1, several files) and a single-file file tree (v2) disagree');
      multiFile = true;
    } else {
      const size = r.int(info.get('length'), 'info.length');
      if (v2Files && multiFile) r.fail('info.length (v1, one file) and a multi-file file tree (v2) disagree');
      v1Files = [{ path: [name], size, layer: [], pad: false }];
    }
    const total = (v1Size = v1Files.reduce((s, f) => s + f.size, 0));
    if (v1Pieces.length / 20 !== Math.ceil(total / pieceLength)) r.fail(`info.pieces has ${v1Pieces.length / 20} hashes for ${total} bytes in pieces of ${pieceLength}`);
  }

  if (v1Files && v2Files) {
    // BEP 52, hybrids: both halves must describe the same files in the same order, each aligned to a piece.
    const real = v1Files.filter((f) => !f.pad);
    const same = real.length === v2Files.length && real.every((f, i) => f.size === v2Files![i]!.size && f.path.join('/') === v2Files![i]!.path.join('/'));
    if (!same) r.fail('the v1 files and the v2 file tree of this hybrid disagree');
    let offset = 0;
    for (const f of v1Files) {
      if (!f.pad && offset % pieceLength !== 0) r.fail(`file ${f.path.join('/')} of this hybrid does not start on a piece boundary`);
      offset += f.size;
    }
  }

  return {
    name, pieceLength, version, multiFile,
    files: v2Files ?? v1Files!.filter((f) => !f.pad).map(({ path, size, layer }) => ({ path, size, layer })),
    v1Pieces,
    v1Size,
    v1Offsets: v1Files && offsetsOfReal(v1Files),
    infoHashV1: hasV1 ? createHash('sha1').update(encode(info)).digest() : undefined,
    infoHashV2: hasV2 ? createHash('sha256').update(encode(info)).digest() : undefined,
    webSeeds: urlList(r, top.get(bkey('url-list'))),
    trackers: trackerList(r, top),
    trackerTiers: top.has('announce-list')
      ? r.list(top.get('announce-list'), 'announce-list').map((tier, i) => r.list(tier, `announce-list[${i}]`).map((t, j) => r.text(t, `announce-list[${i}][${j}]`))).filter((tier) => tier.length > 0)
      : top.has('announce') ? [[r.text(top.get('announce'), 'announce')]] : [],
  };
}

/** BEP 52 file tree: directories are dictionaries, a file is a dictionary with the empty key. */
function walkTree(r: BReader, dir: BDict, at: string[], out: TorrentFile[], limits: ReadLimits): void {
  for (const [k, v] of dir) {
    const name = Buffer.from(k, 'latin1');
    const el = r.text(name, `file tree name under ${at.join('/') || '/'}`);
    const why = pathElementProblem(el);
    if (why) r.fail(`file tree name ${JSON.stringify(el)} ${why}`);
    const node = r.dict(v, `file tree entry ${[...at, el].join('/')}`);
    const leaf = node.get('');
    if (leaf !== undefined) {
      if (node.size !== 1) r.fail(`file tree entry ${[...at, el].join('/')} is both a file and a directory`);
      const f = r.dict(leaf, `file ${[...at, el].join('/')}`);
      const size = r.int(f.get('length'), `length of ${[...at, el].join('/')}`);
      const root = f.has(bkey('pieces root')) ? r.bytes(f.get(bkey('pieces root')), `pieces root of ${[...at, el].join('/')}`) : undefined;
      if (size > 0 && root?.length !== 32) r.fail(`file ${[...at, el].join('/')} has no 32-byte pieces root`);
      if (out.length >= limits.torrentFiles) r.fail(`more than ${limits.torrentFiles} files`);
      out.push({ path: [...at, el], size, root: size > 0 ? root : undefined, layer: [] });
    } else {
      if (node.size === 0) r.fail(`file tree directory ${[...at, el].join('/')} is empty`);
      walkTree(r, node, [...at, el], out, limits);
    }
  }
}

function pathElementProblem(el: string): string | undefined {
  if (el === '' || el === '.' || el === '..') return 'is not a file name';
  if (el.includes('/') || el.includes('\\') || el.includes('\0')) return 'contains a path separator or NUL';
  return undefined;
}

function urlList(r: BReader, v: BValue | undefined): string[] {
  if (v === undefined) return [];
  if (Buffer.isBuffer(v)) return v.length ? [r.text(v, 'url-list')] : [];
  return r.list(v, 'url-list').map((u, i) => r.text(u, `url-list[${i}]`));
}

function trackerList(r: BReader, top: BDict): string[] {
  const out: string[] = [];
  if (top.has('announce-list')) {
    for (const [i, tier] of r.list(top.get('announce-list'), 'announce-list').entries()) {
      for (const [j, t] of r.list(tier, `announce-list[${i}]`).entries()) out.push(r.text(t, `announce-list[${i}][${j}]`));
    }
  }
  if (top.has('announce')) {
    const a = r.text(top.get('announce'), 'announce');
    if (!out.includes(a)) out.unshift(a);
  }
  return out;
}
