// The piece record beside a partial split across sources (src/fetch/piece-record.ts): its format round
// trips, anything else is refused, coverage carries over to another piece length, and checkpoints
// write it (after the data) only for pieces whose write completed.
import assert from 'node:assert/strict';
import { open, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { PieceCheckpoints, coveredPieces, decodePieceRecord, encodePieceRecord, hasPiece, pieceCount, readPieceRecord, setPiece, type PieceRecord } from '../../src/fetch/piece-record.ts';
import { tempDir } from '../helpers/run.ts';

const SEED = 20_011_010;
const KiB = 1024;

const recordArb = fc
  .record({ pieceLength: fc.integer({ min: 1, max: 64 }).map((n) => n * 16 * KiB), pieces: fc.integer({ min: 1, max: 300 }), tail: fc.integer({ min: 0, max: 16 * KiB - 1 }) })
  .chain(({ pieceLength, pieces, tail }) => {
    const size = Math.max(1, (pieces - 1) * pieceLength + Math.min(tail + 1, pieceLength));
    return fc.array(fc.boolean(), { minLength: pieceCount(size, pieceLength), maxLength: pieceCount(size, pieceLength) }).map((bits): PieceRecord => {
      const have = new Uint8Array(Math.ceil(bits.length / 8));
      bits.forEach((b, i) => b && setPiece(have, i));
      return { size, pieceLength, have };
    });
  });

test('piece record: encode and decode round trip', () => {
  fc.assert(fc.property(recordArb, (r) => assert.deepEqual(decodePieceRecord(encodePieceRecord(r)), r)), { seed: SEED, numRuns: 300 });
});

test('piece record: anything but a well-formed record is refused', () => {
  const good = JSON.parse(encodePieceRecord({ size: 40 * KiB, pieceLength: 16 * KiB, have: Uint8Array.of(0b101) }));
  assert.ok(decodePieceRecord(JSON.stringify(good)));
  for (const bad of [
    'not json', 'null', '[]', '{}',
    { ...good, format: 'sourcemesh.pieces/v2' },
    { ...good, size: 0 }, { ...good, size: -5 }, { ...good, size: 1.5 }, { ...good, size: '40960' }, { ...good, size: 2 ** 60 },
    { ...good, pieceLength: 1024 }, { ...good, pieceLength: 0 },
    { ...good, have: 'Bw' }, { ...good, have: 'B w=' }, { ...good, have: 7 },
    { ...good, have: Buffer.of(0b101, 0).toString('base64') }, // one byte too many
    { ...good, have: Buffer.of(0b1101).toString('base64') }, // a bit past the third (last) piece
  ]) {
    assert.equal(decodePieceRecord(typeof bad === 'string' ? bad : JSON.stringify(bad)), undefined, JSON.stringify(bad));
  }
});

test('piece record: a piece of another length counts only when every byte of it lies in recorded pieces', () => {
  fc.assert(
    fc.property(recordArb, fc.integer({ min: 1, max: 64 }), (r, k) => {
      const pieceLength = k * 16 * KiB;
      const covered = new Set(coveredPieces(r, r.size, pieceLength));
      for (let i = 0; i < pieceCount(r.size, pieceLength); i++) {
        let all = true;
        for (let b = i * pieceLength; b < Math.min(r.size, (i + 1) * pieceLength); b += 4 * KiB) all &&= hasPiece(r.have, Math.floor(b / r.pieceLength));
        all &&= hasPiece(r.have, Math.floor((Math.min(r.size, (i + 1) * pieceLength) - 1) / r.pieceLength));
        assert.equal(covered.has(i), all, `piece ${i} of ${pieceLength}`);
      }
      assert.deepEqual(coveredPieces(r, r.size + 1, pieceLength), [], 'another size: nothing');
    }),
    { seed: SEED, numRuns: 300 },
  );
});

test('piece record: a file larger than the limit is not read; a missing one is no record', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'x.part.pieces');
  assert.equal(await readPieceRecord(file), undefined);
  const text = encodePieceRecord({ size: 40 * KiB, pieceLength: 16 * KiB, have: Uint8Array.of(0b011) });
  await writeFile(file, text);
  assert.deepEqual((await readPieceRecord(file))?.have, Uint8Array.of(0b011));
  assert.equal(await readPieceRecord(file, { pieceRecordBytes: text.length - 1 }), undefined);
});

test('checkpoints: the record lists the pieces written, once due, and nothing after close', async (t) => {
  const dir = await tempDir(t);
  const data = path.join(dir, 'x.part');
  const file = `${data}.pieces`;
  await writeFile(data, Buffer.alloc(100 * KiB));
  const fh = await open(data, 'r+');
  t.after(() => fh.close());
  let now = 0;
  const c = new PieceCheckpoints(fh, file, 100 * KiB, 16 * KiB, () => now);
  c.adopted(6);
  c.wrote(0, 16 * KiB); // not due yet: a timer would write it a second later
  now = 5000;
  c.wrote(2, 16 * KiB); // due: written now
  await c.close();
  const r = decodePieceRecord(await readFile(file, 'utf8'))!;
  assert.deepEqual([...Array(7).keys()].filter((i) => hasPiece(r.have, i)), [0, 2, 6]);
  c.wrote(3, 16 * KiB);
  c.checkpoint();
  await c.close();
  assert.deepEqual(decodePieceRecord(await readFile(file, 'utf8'))!.have, r.have, 'closed: not written again');
});
