// `fetch --bittorrent` uploads while it downloads (leechers help each other): each file of a torrent given
// is offered to peers through the seeder (src/torrent/seeder.ts) as a partial file, and a piece is
// announced (BEP 3 `have`) only once it is in the partial and its bytes hash to the torrent's piece layer
// under the manifest's merkleRoot: by the leaves the download's arrival check took, or, when it gave none,
// read back from disk. The seeder then checks each 16 KiB block against
// the leaf hashes taken here before it leaves, so a byte that changed on disk is never sent.
// Single-file torrents: v2 and hybrid ones by their piece layer, v1 ones by their SHA-1 pieces (the
// torrent's own word, the one its peers check us against; the seeder still sends only blocks whose hash
// was taken from the bytes that passed).
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { fromSystemError } from '../errors.ts';
import { BLOCK, blockHashes, pieceHashOfLeaves } from '../fetch/piece-map.ts';
import type { Distfile } from '../manifest/index.ts';
import { Seeder, type SeededFile, type SeederOptions, type SwarmKey } from './seeder.ts';
import type { Torrent } from './metainfo.ts';
import { v1PieceMap } from './swarm-fetch.ts';

interface Offered {
  t: Torrent;
  layer: Buffer[];
  /** 'sha1': `layer` holds the v1 pieces (SHA-1 of each piece's bytes). */
  hash: 'sha256' | 'sha1';
  file?: SeededFile;
  /** The partial, open for reading pieces back. */
  read?: Promise<FileHandle>;
}

export class LeechUpload {
  private readonly offered = new Map<string, Offered>();
  private readonly seeder: Seeder;

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

  /** Of distfile `name`: bytes sent to peers, and bytes verified so far (whole pieces), for tracker announces. */
  progress(name: string): { sent: number; verified: number } {
    const f = this.offered.get(name)?.file;
    if (!f?.have) return { sent: 0, verified: 0 };
    let verified = 0;
    for (let i = 0; i < f.pieces; i++) if (f.have[i >> 3]! & (0x80 >> (i & 7))) verified += Math.min(f.pieceLength, f.size - i * f.pieceLength);
    return { sent: f.sent ?? 0, verified };
  }

  /**
   * Offer distfile `name` as file `index` of `t` (ignored unless single-file with a piece layer or v1
   * pieces), with no piece yet: peers that greet now (other leechers starting at the same time) are
   * kept and told of each piece as it verifies, instead of being turned away.
   */
  register(name: string, t: Torrent, index: number, sha256 = ''): void {
    const f = t.files[index];
    if (t.multiFile || !f || this.offered.has(name)) return;
    const v1 = t.version === 'v1' ? v1PieceMap(t, index) : undefined;
    const o: Offered | undefined = f.root && f.layer.length > 0 ? { t, layer: f.layer, hash: 'sha256' } : v1 ? { t, layer: v1.layer, hash: 'sha1' } : undefined;
    if (!o) return;
    this.offered.set(name, o);
    o.file = this.offer(name, sha256, o);
  }

  /**
   * Piece `index` of `d` was checked on arrival and written to `path`: keep its leaves (the check's own,
   * or taken from a read-back when it gave none), prove the piece with them, announce it. A piece that
   * does not check (the partial changed) is simply not offered.
   */
  async pieceVerified(d: Distfile, index: number, path: string, pieceLength: number, checkedLeaves?: Buffer): Promise<void> {
    const o = this.offered.get(d.name);
    const file = o?.file;
    if (!o || !file || pieceLength !== o.t.pieceLength || index >= o.layer.length) return;
    // The partial's path is known from its first piece on; the seeder reads no byte before a piece is had.
    if (!file.path) file.path = path;
    if (file.path !== path) return;
    const start = index * pieceLength;
    const length = Math.min(pieceLength, file.size - start);
    // The download checked the piece in memory against the piece layer and hands over the leaves it
    // took of those very bytes (BEP 52 piece layer, same root): no read back, no second hash. The seeder
    // still checks every block it reads from disk against them before it leaves.
    if (checkedLeaves && o.hash === 'sha256' && checkedLeaves.length === 32 * Math.ceil(length / BLOCK)) {
      const leaves = Array.from({ length: checkedLeaves.length / 32 }, (_, i) => checkedLeaves.subarray(32 * i, 32 * i + 32));
      if (!pieceHashOfLeaves(leaves, pieceLength).equals(o.layer[index]!)) return;
      leaves.forEach((leaf, i) => (file.leaves[start / BLOCK + i] = leaf));
      this.seeder.have(file, index);
      return;
    }
    const buf = Buffer.allocUnsafe(length);
    // One handle for the whole download, not an open and a close per piece (both showed in profiles).
    o.read ??= open(path, 'r');
    const fh = await o.read.catch((err: unknown) => {
      o.read = undefined;
      throw fromSystemError(err, path);
    });
    const { bytesRead } = await fh.read(buf, 0, length, start);
    if (bytesRead !== length) return;
    // One SHA-256 pass: the leaves prove the piece and are then kept for the seeder's per-block check.
    const leaves = blockHashes(buf);
    const proof = o.hash === 'sha1' ? createHash('sha1').update(buf).digest() : pieceHashOfLeaves(leaves, pieceLength);
    if (!proof.equals(o.layer[index]!)) return;
    leaves.forEach((leaf, i) => (file.leaves[start / BLOCK + i] = leaf));
    this.seeder.have(file, index);
  }

  private offer(name: string, sha256: string, o: Offered): SeededFile {
    const f = o.t.files[0]!;
    const file: SeededFile = {
      // A v1 torrent has no pieces root; hash requests for a partial file are rejected anyway.
      name, path: '', size: f.size, sha256, pieceLength: o.t.pieceLength, pieces: o.layer.length, root: f.root ?? Buffer.alloc(32),
      leaves: new Array<Buffer>(Math.ceil(f.size / BLOCK)), have: new Uint8Array(Math.ceil(o.layer.length / 8)),
      infoHashes: { hybrid: { v1: '', v2: '' }, v1: o.t.infoHashV1?.toString('hex') ?? '', v2: o.t.infoHashV2?.toString('hex') ?? '' },
    };
    const keys: SwarmKey[] = [];
    // A v2-only torrent counts its last piece whole, padded with zeros (as the seeder lays it out).
    if (o.t.infoHashV1) keys.push({ infoHash: o.t.infoHashV1.toString('hex'), greeting: 'v1', paddedTail: false });
    if (o.t.infoHashV2) keys.push({ infoHash: o.t.infoHashV2.subarray(0, 20).toString('hex'), greeting: 'v2', paddedTail: o.t.version === 'v2' });
    this.seeder.offer(file, keys);
    return file;
  }

  async close(): Promise<void> {
    await this.seeder.close();
    for (const o of this.offered.values()) await o.read?.then((fh) => fh.close(), () => {});
  }
}
