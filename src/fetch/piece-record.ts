// The piece record of a segmented download: which pieces of the partial file are in place, kept beside
// it in the store (tmp/HEX.PID-NONCE.part.pieces, docs/FORMATS.md "Store layout") so that a download
// split across sources resumes after kill -9 with only the missing pieces (issue 11, item 10).
//
// A piece is recorded only after its bytes are on disk: each checkpoint takes the set of pieces written
// so far, fdatasyncs the partial, then replaces the record atomically and durably. With a piece map
// (BEP 52) the pieces written were verified on arrival and are verified again when adopted; without
// one, the whole file's sha256 at the end judges them, as it judges every byte (and blame repairs a
// piece that was wrong). The record is our own state, but it is read as untrusted: bounded, validated,
// and ignored when it does not fit the partial.
import { open, type FileHandle } from 'node:fs/promises';
import { fromSystemError, isNotFound } from '../errors.ts';
import { writeFileDurable } from '../fs/durable-file.ts';
import { LIMITS } from '../limits.ts';

export const PIECE_RECORD_FORMAT = 'sourcemesh.pieces/v1';

export interface PieceRecord {
  size: number;
  pieceLength: number;
  /** Bit i (byte i >> 3, bit i & 7, least significant first): piece i is in place. */
  have: Uint8Array;
}

/** The record's smallest piece: the smallest `--min-piece` and BEP 52 block (bounds the bitmap). */
const MIN_PIECE = 16 * 1024;

export const pieceCount = (size: number, pieceLength: number): number => Math.ceil(size / pieceLength);
export const hasPiece = (have: Uint8Array, i: number): boolean => (have[i >> 3]! & (1 << (i & 7))) !== 0;
export const setPiece = (have: Uint8Array, i: number): void => {
  have[i >> 3]! |= 1 << (i & 7);
};

export function encodePieceRecord(r: PieceRecord): string {
  return `${JSON.stringify({ format: PIECE_RECORD_FORMAT, size: r.size, pieceLength: r.pieceLength, have: Buffer.from(r.have).toString('base64') })}\n`;
}

/** The record in `text`, or undefined when it is not a well-formed one (then it is not used). */
export function decodePieceRecord(text: string): PieceRecord | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const { format, size, pieceLength, have } = v as Record<string, unknown>;
  if (format !== PIECE_RECORD_FORMAT || !Number.isSafeInteger(size) || !Number.isSafeInteger(pieceLength) || typeof have !== 'string') return undefined;
  if ((size as number) <= 0 || (pieceLength as number) < MIN_PIECE) return undefined;
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(have) || have.length % 4 !== 0) return undefined;
  const bits = Buffer.from(have, 'base64');
  const count = pieceCount(size as number, pieceLength as number);
  if (bits.length !== Math.ceil(count / 8)) return undefined;
  // Bits past the last piece must be clear: anything else is not a record we wrote.
  if (count % 8 !== 0 && bits[bits.length - 1]! >> (count % 8) !== 0) return undefined;
  return { size: size as number, pieceLength: pieceLength as number, have: new Uint8Array(bits) };
}

/** The record at `file`, if there is a well-formed one no larger than LIMITS.pieceRecordBytes. */
export async function readPieceRecord(file: string, limits: { pieceRecordBytes: number } = LIMITS): Promise<PieceRecord | undefined> {
  let fh: FileHandle;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw fromSystemError(err, file);
  }
  try {
    const { size } = await fh.stat();
    if (size > limits.pieceRecordBytes) return undefined; // checked before reading
    return decodePieceRecord(await fh.readFile('utf8'));
  } catch (err) {
    throw fromSystemError(err, file);
  } finally {
    await fh.close();
  }
}

/**
 * The pieces of a `size`-byte file cut into `pieceLength` pieces whose every byte lies in a piece the
 * record has (the record may use another piece length: --min-piece changed, or a piece map is in use
 * now). None when the record is for a file of another size.
 */
export function coveredPieces(r: PieceRecord, size: number, pieceLength: number): number[] {
  if (r.size !== size) return [];
  const out: number[] = [];
  for (let i = 0, n = pieceCount(size, pieceLength); i < n; i++) {
    const start = i * pieceLength;
    const end = Math.min(size, start + pieceLength) - 1;
    let all = true;
    for (let j = Math.floor(start / r.pieceLength); j <= Math.floor(end / r.pieceLength) && all; j++) all = hasPiece(r.have, j);
    if (all) out.push(i);
  }
  return out;
}

/** A checkpoint at least this often while pieces arrive (kill -9 costs at most this much work)... */
const CHECKPOINT_MS = 1000;
/** ...and after this many bytes written, which also keeps little for the commit's fsync to write. */
const CHECKPOINT_BYTES = 32 << 20;

/**
 * Keeps the record of one partial: `wrote` after each piece's bytes are in the file; checkpoints run in
 * the background, one at a time (later requests coalesce into the next one). A checkpoint that fails
 * (disk full, say) only costs resumability: the download's own writes report the trouble, and the
 * store's commit fsyncs everything anyway.
 */
export class PieceCheckpoints {
  private readonly have: Uint8Array;
  private unsynced = 0;
  private last: number;
  private running?: Promise<void>;
  private again = false;
  private timer?: NodeJS.Timeout;
  private closed = false;
  private readonly fh: FileHandle;
  private readonly file: string;
  private readonly size: number;
  private readonly pieceLength: number;
  private readonly now: () => number;

  constructor(fh: FileHandle, file: string, size: number, pieceLength: number, now: () => number = Date.now) {
    this.fh = fh;
    this.file = file;
    this.size = size;
    this.pieceLength = pieceLength;
    this.now = now;
    this.have = new Uint8Array(Math.ceil(pieceCount(size, pieceLength) / 8));
    this.last = now();
  }

  /** Piece `index` is in the file as read back from an earlier run's partial (recorded at the next checkpoint). */
  adopted(index: number): void {
    setPiece(this.have, index);
  }

  /** Piece `index` (`bytes` long) is in the file (written, not yet on disk). */
  wrote(index: number, bytes: number): void {
    if (this.closed) return;
    setPiece(this.have, index);
    this.unsynced += bytes;
    const due = this.last + CHECKPOINT_MS - this.now();
    if (this.unsynced >= CHECKPOINT_BYTES || due <= 0) this.checkpoint();
    else this.timer ??= setTimeout(() => this.checkpoint(), due).unref();
  }

  /** Record now what is in the file (after adoption, so that a dropped piece is not claimed any more). */
  checkpoint(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.run().finally(() => {
      this.running = undefined;
      if (this.again) {
        this.again = false;
        this.checkpoint();
      }
    });
  }

  private async run(): Promise<void> {
    this.unsynced = 0;
    this.last = this.now();
    const snapshot = this.have.slice(); // only pieces whose write completed: the datasync covers them
    try {
      await this.fh.datasync();
      await writeFileDurable(this.file, encodePieceRecord({ size: this.size, pieceLength: this.pieceLength, have: snapshot }), 'cannot record the pieces in place');
    } catch {
      // resumability only; see the class comment
    }
  }

  /** Stop checkpointing and wait for one that runs (before the partial is closed, committed or discarded). */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    while (this.running) await this.running;
  }
}
