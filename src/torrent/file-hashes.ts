// One pass over a torrent's files gives everything a torrent holds about them: each file's sha256 (so
// that only bytes the manifest pins go into a torrent), its BEP 52 leaf hashes (16 KiB blocks, from
// which the pieces root and piece layer follow), and the v1 piece hashes (SHA-1 over the v1 layout,
// pad files as zeros).
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { fromSystemError } from '../errors.ts';
import { BLOCK, blockHashes, pieceMapFromLeaves } from '../fetch/piece-map.ts';

export interface HashedFile {
  sha256: string;
  size: number;
  root: Buffer;
  layer: Buffer[];
  /** The 16 KiB block hashes (BEP 52 leaves): a seeder checks each block against them before sending it. */
  leaves: Buffer[];
}

/** SHA-1 of each `pieceLength` bytes of a stream fed in any chunking. */
class V1Pieces {
  private readonly out: Buffer[] = [];
  private h: Hash = createHash('sha1');
  private filled = 0;
  private readonly pieceLength: number;
  constructor(pieceLength: number) {
    this.pieceLength = pieceLength;
  }

  update(data: Uint8Array): void {
    let at = 0;
    while (at < data.length) {
      const take = Math.min(this.pieceLength - this.filled, data.length - at);
      this.h.update(data.subarray(at, at + take));
      this.filled += take;
      at += take;
      if (this.filled === this.pieceLength) this.next();
    }
  }

  zeros(n: number): void {
    const z = Buffer.alloc(Math.min(n, BLOCK));
    for (let left = n; left > 0; left -= z.length) this.update(left >= z.length ? z : z.subarray(0, left));
  }

  private next(): void {
    this.out.push(this.h.digest());
    this.h = createHash('sha1');
    this.filled = 0;
  }

  finish(): Buffer {
    if (this.filled > 0) this.next();
    return Buffer.concat(this.out);
  }
}

/**
 * Hash `files` in order (the v1 layout's order), `pad` zero bytes after each. v1 pieces are made only
 * when `v1` is set. The size is what was read: callers compare it with what they pinned.
 */
export async function hashTorrentFiles(files: { path: string; pad: number }[], pieceLength: number, v1: boolean): Promise<{ files: HashedFile[]; v1Pieces?: Buffer }> {
  const pieces = v1 ? new V1Pieces(pieceLength) : undefined;
  const out: HashedFile[] = [];
  for (const f of files) {
    const sha = createHash('sha256');
    const leaves: Buffer[] = [];
    let carry = Buffer.alloc(0);
    let size = 0;
    try {
      for await (const chunk of createReadStream(f.path, { highWaterMark: 1 << 20 })) {
        const c = chunk as Buffer;
        size += c.length;
        sha.update(c);
        pieces?.update(c);
        const buf = carry.length ? Buffer.concat([carry, c]) : c;
        const whole = buf.length - (buf.length % BLOCK);
        for (const l of blockHashes(buf.subarray(0, whole))) leaves.push(l);
        carry = Buffer.from(buf.subarray(whole));
      }
    } catch (err) {
      throw fromSystemError(err, `cannot read ${f.path}`);
    }
    if (carry.length) leaves.push(createHash('sha256').update(carry).digest());
    pieces?.zeros(f.pad);
    const map = pieceMapFromLeaves(leaves, pieceLength);
    out.push({ sha256: sha.digest('hex'), size, root: map.root, layer: map.layer, leaves });
  }
  return { files: out, v1Pieces: pieces?.finish() };
}
