// Piece maps against libtorrent's BitTorrent v2 implementation (Debian python3-libtorrent).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { isSourcemeshError } from '../../src/errors.ts';
import { pieceHash, pieceMapOfFile, verifyPieceLayer } from '../../src/fetch/piece-map.ts';
import { bytes } from '../helpers/distfiles.ts';
import { tempDir } from '../helpers/run.ts';

/** libtorrent's pieces root and piece layer (hex) for a file, v2 only. */
function libtorrent(file: string, pieceLength: number): { root: string; layer: string } {
  const script = `
import libtorrent as lt, sys, os
fs = lt.file_storage()
lt.add_files(fs, sys.argv[1])
t = lt.create_torrent(fs, int(sys.argv[2]), flags=lt.create_torrent.v2_only)
lt.set_piece_hashes(t, os.path.dirname(sys.argv[1]))
e = t.generate()
node = e[b'info'][b'file tree'][os.path.basename(sys.argv[1]).encode()][b'']
root = node.get(b'pieces root', b'')
print(root.hex())
print(e.get(b'piece layers', {}).get(root, b'').hex())
`;
  try {
    const [root, layer] = execFileSync('/usr/bin/python3', ['-c', script, file, String(pieceLength)]).toString().split('\n');
    return { root: root!, layer: layer! };
  } catch (err) {
    throw new Error(`libtorrent is needed for this test: apt-get install python3-libtorrent (${(err as Error).message.split('\n')[0]})`);
  }
}

test('merkle roots and piece layers equal libtorrent for many sizes and piece lengths', async (t) => {
  const dir = await tempDir(t);
  for (const size of [1, 100, 16_383, 16_384, 16_385, 32_768, 100_000, 1_048_576 + 7, 3 * 1_048_576]) {
    const file = path.join(dir, `f${size}`);
    const data = bytes(size, size);
    await writeFile(file, data);
    for (const pieceLength of [16_384, 65_536, 1_048_576]) {
      const ours = await pieceMapOfFile(file, pieceLength);
      const theirs = libtorrent(file, pieceLength);
      assert.equal(ours.root.toString('hex'), theirs.root, `root, size ${size}, piece ${pieceLength}`);
      assert.equal(Buffer.concat(ours.layer).toString('hex'), theirs.layer, `layer, size ${size}, piece ${pieceLength}`);
      if (ours.layer.length) {
        const v = verifyPieceLayer(Buffer.concat(ours.layer), size, ours.root);
        assert.equal(v.pieceLength, pieceLength);
        assert.ok(v.layer[1]!.equals(pieceHash(data.subarray(pieceLength, 2 * pieceLength), pieceLength)));
      }
    }
  }
});

test('a piece layer that does not hash to the root, or fits no piece length, is refused', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'f');
  await writeFile(file, bytes(200_000, 3));
  const m = await pieceMapOfFile(file, 16_384);
  const layer = Buffer.concat(m.layer);
  const bad = Buffer.from(layer);
  bad[40]! ^= 1;
  assert.throws(() => verifyPieceLayer(bad, 200_000, m.root), (e: unknown) => isSourcemeshError(e, 'E_PROOF'));
  assert.throws(() => verifyPieceLayer(layer.subarray(0, 33), 200_000, m.root), (e: unknown) => isSourcemeshError(e, 'E_FORMAT'));
  assert.throws(() => verifyPieceLayer(layer.subarray(0, 64), 200_000, m.root), (e: unknown) => isSourcemeshError(e, 'E_PROOF'));
});
