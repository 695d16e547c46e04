// Hashing for segmented downloads, on the main thread: the BEP 52 hash of each piece as it arrives
// (checked against a trusted piece map) and the SHA-256 of the whole file in file order as its written
// prefix grows. A piece that extends the hashed prefix is hashed from memory as it is written; pieces
// that arrived ahead of it are read back (from the page cache) once the prefix reaches them. Hashing only
// once the file is complete would add a whole pass after the last byte arrived.
//
// Not on a worker thread: the thread costs some 20 MB of RSS and, for a segmented fetch from four mirrors
// on two cores, bought no time (bench:mirrors, docs/BENCHMARKS.md, issue 21: 142 MiB with the thread
// against 125 MiB without, 3.37 s against 3.48 s, 0.5 s more CPU with it for the transfers and messages).
// The whole-file downloads that want a piece map still hash on the process's one thread (hash-thread.ts).
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { fromSystemError } from '../errors.ts';
import { blockHashes, pieceHashOfLeaves } from './piece-map.ts';

/** File bytes read back per read(2): a piece at the usual length. */
const READ_BYTES = 1 << 20;

export class PieceHasher {
  private readonly path: string;
  private readonly sha = createHash('sha256');
  /** Bytes [0, hashed) of the file are in `sha`. */
  private hashed = 0;
  /** Bytes [0, target) are written and final. */
  private target = 0;
  private fh?: Promise<FileHandle>;
  private reading?: Promise<void>;
  private scratch?: Buffer;
  /** The file ended before the bytes said written: no digest of them. */
  private short = false;
  /** A read failed: reported by digest() as the fault it is. */
  private fault?: unknown;
  private closed = false;

  /** Hash the file at `path` (its prefix, as it is written) and the pieces given here. */
  constructor(path: string) {
    this.path = path;
  }

  /** The piece hash of `body` (BEP 52, `pieceLength` a power of two) and its leaves (the 16 KiB blocks' hashes). */
  pieceHash(body: Buffer, pieceLength: number): { hash: Buffer; leaves: Buffer } {
    const leaves = blockHashes(body);
    // The leaves too (32 bytes per block): an uploading leecher keeps them to check each block it sends, without hashing the piece again.
    return { hash: Buffer.from(pieceHashOfLeaves(leaves, pieceLength)), leaves: Buffer.concat(leaves) };
  }

  /**
   * `body` was just written at `start`, and bytes [0, prefix) of the file are now written and final.
   * The bytes are hashed from `body` when they continue the hashed prefix (and nothing is being read
   * back), otherwise read back from the file later; either way before the call returns, `body` may be
   * reused.
   */
  wrote(start: number, body: Uint8Array, prefix: number): void {
    if (!this.reading && !this.short && this.fault === undefined && start === this.hashed && start + body.length <= prefix) {
      this.sha.update(body);
      this.hashed += body.length;
    }
    this.prefixWritten(prefix);
  }

  /** Bytes [0, bytes) of the file are written and final: they may be hashed now. */
  prefixWritten(bytes: number): void {
    if (bytes <= this.target) return;
    this.target = bytes;
    if (this.hashed < this.target && !this.closed) this.reading ??= this.readBack().finally(() => (this.reading = undefined));
  }

  /** Reads the written prefix back, 1 MiB at a time, until the hash reaches it. */
  private async readBack(): Promise<void> {
    try {
      this.fh ??= open(this.path, 'r');
      const fh = await this.fh;
      this.scratch ??= Buffer.allocUnsafeSlow(READ_BYTES);
      while (this.hashed < this.target && !this.short) {
        const { bytesRead } = await fh.read(this.scratch, 0, Math.min(READ_BYTES, this.target - this.hashed), this.hashed);
        if (bytesRead === 0) this.short = true;
        this.sha.update(this.scratch.subarray(0, bytesRead));
        this.hashed += bytesRead;
      }
    } catch (err) {
      this.fault ??= err;
    }
  }

  /**
   * SHA-256 (hex) of the file's first `size` bytes, all written by now; undefined when the file is shorter
   * than that (its bytes are not all there: no hash of them). A read that fails (EIO, EISDIR...) is
   * thrown as the fault it is, naming the file.
   */
  async digest(size: number): Promise<string | undefined> {
    this.prefixWritten(size);
    while (this.reading) await this.reading;
    if (this.fault !== undefined) throw fromSystemError(this.fault, `${this.path}: cannot hash`);
    return !this.short && this.hashed === size ? this.sha.copy().digest('hex') : undefined;
  }

  async close(): Promise<void> {
    this.closed = true; // nothing more is read
    while (this.reading) await this.reading;
    const fh = this.fh;
    this.fh = undefined;
    if (fh) await fh.then((h) => h.close(), () => {});
  }
}
