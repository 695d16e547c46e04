// `fetch --bittorrent` uploads while it downloads (leechers help each other): each torrent given is
// offered to peers through the seeder (src/torrent/seeder.ts), its files as partial files, and a piece is
// announced (BEP 3 `have`) only once it is in the partial and its bytes hash to the torrent's piece layer
// under the manifest's merkleRoot: by the leaves the download's arrival check took, or, when it gave none,
// read back from disk. A file the fetch accepted whole (its sha256; one already in the store, or one too
// small to be taken in pieces) is offered from the store, once its blocks' leaves, taken from its bytes
// there, make the torrent's piece layer or pieces root. The seeder then checks each 16 KiB block against
// the leaf hashes taken here before it leaves, so a byte that changed on disk is never sent.
// Single-file torrents: v2 and hybrid ones by their piece layer, v1 ones by their SHA-1 pieces (the
// torrent's own word, the one its peers check us against; the seeder still sends only blocks whose hash
// was taken from the bytes that passed). Torrents of several files (`torrent create --multi-file`): v2
// and hybrid ones, whose every file starts on a piece boundary (BEP 52), so that each piece of the
// torrent is a piece of one file, proven by that file's piece layer (a v2 torrent's pad, and a hybrid's
// BEP 47 pad files, are zeros the seeder adds); a swarm piece is announced once the file piece it lies in
// is. A v1 torrent of several files, whose pieces cross file boundaries and BEP 47 pad files if it lists
// any (the download checks its files by their sha256 alone), is offered as its files are accepted whole:
// a piece once the files it overlaps are and its bytes across them, pads as zeros, hash to its SHA-1
// (`proveV1`).
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { fromSystemError } from '../errors.ts';
import { BLOCK, blockHashes, pieceHashOfLeaves, pieceMapFromLeaves } from '../fetch/piece-map.ts';
import type { Distfile } from '../manifest/index.ts';
import { Seeder, hasPiece, type SeededFile, type SeedLayout, type SeederOptions, type SwarmKey } from './seeder.ts';
import type { Torrent } from './metainfo.ts';
import { fileOffsets } from './peer-source.ts';
import { bitSet, setBit } from './peer-wire.ts';
import { v1PieceMap } from './swarm-fetch.ts';

interface Offered {
  t: Torrent;
  /** The file's piece layer; empty when the file fits in one piece (`root` pins it then). */
  layer: Buffer[];
  /** 'sha1': `layer` holds the v1 pieces (SHA-1 of each piece's bytes). */
  hash: 'sha256' | 'sha1';
  root?: Buffer;
  file: SeededFile;
  /** The partial, open for reading pieces back. */
  read?: Promise<FileHandle>;
  /** A file of a v1 torrent of several files: accepted whole, its leaves taken (see `proveV1`). */
  whole?: boolean;
}

export class LeechUpload {
  /** By distfile name: each torrent's file it is (a distfile may be in two torrents given). */
  private readonly offered = new Map<string, Offered[]>();
  /** Per torrent offered: its files, and the bytes sent of it (a torrent of several files is one swarm). */
  private readonly torrents = new Map<Torrent, { files: Offered[]; tally: { sent?: number }; proven?: Uint8Array }>();
  private readonly seeder: Seeder;
  private closed = false;

  private constructor(seeder: Seeder) {
    this.seeder = seeder;
  }

  static async start(opts: SeederOptions): Promise<LeechUpload> {
    return new LeechUpload(await Seeder.start([], opts));
  }

  get address(): string {
    return this.seeder.url;
  }

  get port(): number {
    return this.seeder.port;
  }

  get uploaded(): number {
    return this.seeder.uploaded;
  }

  get peerId(): Buffer {
    return this.seeder.peerId;
  }

  /** Of torrent `t`: bytes sent to peers, and bytes verified so far (whole pieces), for tracker announces. */
  progress(t: Torrent): { sent: number; verified: number } {
    const o = this.torrents.get(t);
    if (!o) return { sent: 0, verified: 0 };
    let verified = 0;
    for (const { file: f } of o.files) {
      if (!f.have) verified += f.size;
      else for (let i = 0; i < f.pieces; i++) if (hasPiece(f, i)) verified += Math.min(f.pieceLength, f.size - i * f.pieceLength);
    }
    return { sent: o.tally.sent ?? 0, verified };
  }

  /**
   * Offer torrent `t`, whose files are the distfiles `names` (in its order; `sha256s` theirs), with no
   * piece yet: peers that greet now (other leechers starting at the same time) are kept and told of each
   * piece as it verifies, instead of being turned away. Ignored: a torrent without a piece layer or v1
   * pieces to prove its pieces by (see the top of this file).
   */
  register(t: Torrent, names: string[], sha256s: (string | undefined)[] = []): void {
    if (this.torrents.has(t) || names.length !== t.files.length) return;
    const files: Offered[] = [];
    if (!t.multiFile) {
      const f = t.files[0]!;
      const v1 = t.version === 'v1' ? v1PieceMap(t, 0) : undefined;
      const o = f.root ? { layer: f.layer, hash: 'sha256' as const, root: f.root } : v1 ? { layer: v1.layer, hash: 'sha1' as const } : undefined;
      if (!o || f.size === 0) return;
      files.push({ t, ...o, file: this.partialFile(names[0]!, sha256s[0], t, 0) });
    } else {
      // A v1 torrent's pieces cross files, and BEP 47 pad files (zeros) if it has any: proven by their
      // SHA-1 once every file they overlap is whole (see `proveV1`).
      if (t.version === 'v1' && !t.v1Pieces) return;
      t.files.forEach((f, i) => files.push({ t, layer: f.layer, hash: t.version === 'v1' ? 'sha1' : 'sha256', root: f.root, file: this.partialFile(names[i]!, sha256s[i], t, i) }));
    }
    const tally: { sent?: number } = {};
    this.torrents.set(t, { files, tally });
    for (const o of files) this.offered.set(o.file.name, [...(this.offered.get(o.file.name) ?? []), o]);
    if (!t.multiFile) {
      // One file on its own: its tally is the file's.
      const keys: SwarmKey[] = [];
      // A v2-only torrent counts its last piece whole, padded with zeros (as the seeder lays it out).
      if (t.infoHashV1) keys.push({ infoHash: t.infoHashV1.toString('hex'), greeting: 'v1', paddedTail: false });
      if (t.infoHashV2) keys.push({ infoHash: t.infoHashV2.subarray(0, 20).toString('hex'), greeting: 'v2', paddedTail: t.version === 'v2' });
      this.torrents.get(t)!.tally = files[0]!.file;
      this.seeder.offer(files[0]!.file, keys);
      return;
    }
    // The piece space as `seed --torrent` lays it out (seeder.ts prepareSeedTorrent): each file from a
    // piece boundary, zeros after it; the v1 stream's length (pad files included) when there is one.
    const offsets = fileOffsets(t);
    const last = t.files.length - 1;
    const end = t.v1Size ?? Math.ceil((offsets[last]! + t.files[last]!.size) / t.pieceLength) * t.pieceLength;
    const layout: SeedLayout = { files: files.map((o, i) => ({ file: o.file, start: offsets[i]! })), pieceLength: t.pieceLength, pieces: Math.ceil(end / t.pieceLength), end, tally };
    this.seeder.offerTorrent({ name: t.name, what: `torrent ${t.name}`, layout, infoHashV1: t.infoHashV1?.toString('hex'), infoHashV2: t.infoHashV2?.toString('hex') });
  }

  /**
   * Piece `index` of `d` was checked on arrival and written to `path`: keep its leaves (the check's own,
   * or taken from a read-back when it gave none), prove the piece with them, announce it. A piece that
   * does not check (the partial changed) is simply not offered.
   */
  async pieceVerified(d: Distfile, index: number, path: string, pieceLength: number, checkedLeaves?: Buffer): Promise<void> {
    for (const o of this.offered.get(d.name) ?? []) {
      const file = o.file;
      if (pieceLength !== o.t.pieceLength || index >= o.layer.length || !file.have) continue;
      // The partial's path is known from its first piece on; the seeder reads no byte before a piece is had.
      if (!file.path) file.path = path;
      if (file.path !== path) continue;
      const start = index * pieceLength;
      const length = Math.min(pieceLength, file.size - start);
      // The download checked the piece in memory against the piece layer and hands over the leaves it
      // took of those very bytes (BEP 52 piece layer, same root): no read back, no second hash. The seeder
      // still checks every block it reads from disk against them before it leaves.
      if (checkedLeaves && o.hash === 'sha256' && checkedLeaves.length === 32 * Math.ceil(length / BLOCK)) {
        const leaves = Array.from({ length: checkedLeaves.length / 32 }, (_, i) => checkedLeaves.subarray(32 * i, 32 * i + 32));
        if (!pieceHashOfLeaves(leaves, pieceLength).equals(o.layer[index]!)) continue;
        leaves.forEach((leaf, i) => (file.leaves[start / BLOCK + i] = leaf));
        this.seeder.have(file, index);
        continue;
      }
      const buf = Buffer.allocUnsafe(length);
      // One handle for the whole download, not an open and a close per piece (both showed in profiles).
      o.read ??= open(path, 'r');
      const fh = await o.read.catch((err: unknown) => {
        o.read = undefined;
        throw fromSystemError(err, path);
      });
      const { bytesRead } = await fh.read(buf, 0, length, start);
      if (bytesRead !== length) continue;
      // One SHA-256 pass: the leaves prove the piece and are then kept for the seeder's per-block check.
      const leaves = blockHashes(buf);
      const proof = o.hash === 'sha1' ? createHash('sha1').update(buf).digest() : pieceHashOfLeaves(leaves, pieceLength);
      if (!proof.equals(o.layer[index]!)) continue;
      leaves.forEach((leaf, i) => (file.leaves[start / BLOCK + i] = leaf));
      this.seeder.have(file, index);
    }
  }

  /**
   * Distfile `name` was accepted whole (its sha256) and lies at `path` in the store: its pieces not had
   * yet are read from there, one at a time, and each is offered once its leaves make the torrent's piece
   * hash (a file within one piece: its pieces root); the file is then read from `path`, and once every
   * piece is had it is a whole file to the seeder (BEP 52 hash requests for it answered). A piece that
   * does not prove (a torrent that disagrees with the bytes the manifest pins) stays unoffered.
   */
  async fileVerified(name: string, path: string): Promise<void> {
    for (const o of this.offered.get(name) ?? []) {
      const file = o.file;
      if (!file.have || this.closed) continue;
      if (o.t.multiFile && o.t.version === 'v1') {
        await this.proveV1(o, path);
        continue;
      }
      const missing = Array.from({ length: file.pieces }, (_, i) => i).filter((i) => !hasPiece(file, i));
      if (missing.length === 0) {
        file.path = path;
        file.have = undefined; // whole: its hash requests are answered from now on (BEP 52)
        continue;
      }
      const fh = await open(path, 'r').catch((err: unknown) => { throw fromSystemError(err, path); });
      try {
        const buf = Buffer.allocUnsafe(Math.min(file.pieceLength, file.size));
        const proven: { index: number; leaves: Buffer[] }[] = [];
        for (const index of missing) {
          if (this.closed) return;
          const start = index * file.pieceLength;
          const length = Math.min(file.pieceLength, file.size - start);
          const { bytesRead } = await fh.read(buf, 0, length, start);
          if (bytesRead !== length) break;
          const piece = buf.subarray(0, length);
          const leaves = blockHashes(piece);
          const proof = o.hash === 'sha1' ? createHash('sha1').update(piece).digest()
            : o.layer.length ? pieceHashOfLeaves(leaves, file.pieceLength) : pieceMapFromLeaves(leaves, file.pieceLength).root;
          if (proof.equals(o.hash === 'sha256' && !o.layer.length ? o.root! : o.layer[index]!)) proven.push({ index, leaves });
        }
        // The store's copy from now on (the partial it was is gone); then the pieces it proved.
        file.path = path;
        for (const { index, leaves } of proven) {
          leaves.forEach((leaf, i) => (file.leaves[index * file.pieceLength / BLOCK + i] = leaf));
          this.seeder.have(file, index);
        }
        // Whole now (every leaf set): a whole file to the seeder, whose hash requests are answered (BEP 52).
        if (proven.length === missing.length) file.have = undefined;
      } finally {
        await fh.close();
      }
    }
  }

  /**
   * A file of a v1 torrent of several files, accepted whole at `path`: its leaves are taken from its bytes
   * there; then each torrent piece that only whole files overlap is hashed (SHA-1, across the files) and
   * compared with the torrent's, and a piece of this file or of another is had once every torrent piece
   * it overlaps proved: so no torrent piece is offered that did not prove.
   */
  private async proveV1(o: Offered, path: string): Promise<void> {
    const t = o.t;
    const entry = this.torrents.get(t)!;
    const offsets = fileOffsets(t);
    const L = t.pieceLength;
    const fh = await open(path, 'r').catch((err: unknown) => { throw fromSystemError(err, path); });
    try {
      const buf = Buffer.allocUnsafe(Math.min(L, o.file.size));
      const leaves: Buffer[] = [];
      for (let at = 0; at < o.file.size; at += L) {
        const n = Math.min(L, o.file.size - at);
        if ((await fh.read(buf, 0, n, at)).bytesRead !== n) return;
        leaves.push(...blockHashes(buf.subarray(0, n)));
      }
      leaves.forEach((leaf, i) => (o.file.leaves[i] = leaf));
      o.file.path = path;
      o.whole = true;
    } finally {
      await fh.close();
    }
    entry.proven ??= new Uint8Array(Math.ceil(t.v1Pieces!.length / 20 / 8));
    const proven = entry.proven;
    const i = entry.files.indexOf(o);
    const overlapping = (from: number, to: number) => entry.files.filter((x, k) => x.file.size > 0 && offsets[k]! < to && offsets[k]! + x.file.size > from);
    const handles = new Map<string, FileHandle>();
    try {
      // The torrent pieces this file lies in, from the one it starts in.
      const start = offsets[i]!;
      for (let p = Math.floor(start / L); p * L < start + o.file.size; p++) {
        if (this.closed) return;
        if (bitSet(proven, p)) continue;
        const from = p * L;
        const to = Math.min(from + L, t.v1Size!);
        const parts = overlapping(from, to);
        if (!parts.every((x) => x.whole)) continue;
        const piece = Buffer.alloc(to - from);
        for (const x of parts) {
          const k = entry.files.indexOf(x);
          const a = Math.max(from, offsets[k]!), b = Math.min(to, offsets[k]! + x.file.size);
          if (!handles.has(x.file.path)) handles.set(x.file.path, await open(x.file.path, 'r').catch((err: unknown) => { throw fromSystemError(err, x.file.path); }));
          if ((await handles.get(x.file.path)!.read(piece, a - from, b - a, a - offsets[k]!)).bytesRead !== b - a) return;
        }
        if (!createHash('sha1').update(piece).digest().equals(t.v1Pieces!.subarray(20 * p, 20 * p + 20))) continue;
        setBit(proven, p);
        // A file piece is had once every torrent piece it overlaps proved.
        for (const x of parts) {
          const k = entry.files.indexOf(x);
          const fa = Math.max(from, offsets[k]!) - offsets[k]!, fb = Math.min(to, offsets[k]! + x.file.size) - offsets[k]!;
          for (let fp = Math.floor(fa / L); fp * L < fb; fp++) {
            const ta = offsets[k]! + fp * L, tb = offsets[k]! + Math.min((fp + 1) * L, x.file.size);
            let all = true;
            for (let q = Math.floor(ta / L); q * L < tb; q++) if (!bitSet(proven, q)) all = false;
            if (all) this.seeder.have(x.file, fp);
          }
        }
      }
    } finally {
      for (const h of handles.values()) await h.close();
    }
  }

  /** A file of torrent `t`, partial: no piece had yet, read from where its pieces are found later. */
  private partialFile(name: string, sha256: string | undefined, t: Torrent, index: number): SeededFile {
    const f = t.files[index]!;
    const pieces = Math.ceil(f.size / t.pieceLength);
    return {
      // A v1 torrent has no pieces root; hash requests for a partial file are rejected anyway.
      name, path: '', size: f.size, sha256: sha256 ?? '', pieceLength: t.pieceLength, pieces, root: f.root ?? Buffer.alloc(32),
      leaves: new Array<Buffer>(Math.ceil(f.size / BLOCK)), have: f.size === 0 ? undefined : new Uint8Array(Math.ceil(pieces / 8)),
      infoHashes: { hybrid: { v1: '', v2: '' }, v1: t.infoHashV1?.toString('hex') ?? '', v2: t.infoHashV2?.toString('hex') ?? '' },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.seeder.close();
    for (const list of this.offered.values()) for (const o of list) await o.read?.then((fh) => fh.close(), () => {});
  }
}
