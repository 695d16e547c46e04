// The contract between a segmented download and an uploading leecher (src/torrent/leech-upload.ts): each
// piece checked on arrival against the torrent's piece layer is handed to `onPieceVerified` with the leaves
// its check took (the BEP 52 hashes of its 16 KiB blocks), so the leecher announces it without reading it
// back from disk and hashing it again. Without them it still works (it reads the piece back), only slower,
// so nothing else would notice their loss. A real fetch from two loopback mirrors, in process.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { fetchManifest } from '../../src/fetch/fetcher.ts';
import { createAgent } from '../../src/fetch/http.ts';
import { blockHashes, pieceMapOfFile } from '../../src/fetch/piece-map.ts';
import { LIMITS } from '../../src/limits.ts';
import { MANIFEST_FORMAT, type Manifest } from '../../src/manifest/distfile.ts';
import { Store } from '../../src/store/store.ts';
import { bytes, sha256 } from '../helpers/distfiles.ts';
import { startOrigin } from '../helpers/origin.ts';
import { tempDir } from '../helpers/run.ts';

const PIECE = 64 * 1024;
const DATA = bytes(40 * PIECE + 5_000, 83); // 41 pieces, the last a short one
const NAME = 'leaves.tar.gz';

test('every piece verified against the piece layer reaches onPieceVerified with its blocks\' BEP 52 hashes', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'source');
  await writeFile(file, DATA);
  const map = await pieceMapOfFile(file, PIECE);
  const origin = await startOrigin({ [`/a/${NAME}`]: { body: DATA }, [`/b/${NAME}`]: { body: DATA } });
  t.after(() => origin.close());
  const manifest: Manifest = { format: MANIFEST_FORMAT, name: 'leaves', distfiles: [{ name: NAME, sha256: sha256(DATA), size: DATA.length, merkleRoot: map.root.toString('hex'), urls: [] }] };
  const store = await Store.open(path.join(dir, 'store'));
  const dispatcher = createAgent(LIMITS);
  t.after(() => dispatcher.close());
  const seen = new Map<number, (Buffer | undefined)[]>();
  const report = await fetchManifest(manifest, {
    store, mirrors: [{ kind: 'http', base: `${origin.url}/a` }, { kind: 'http', base: `${origin.url}/b` }], policy: 'mirrors-only', offline: false,
    jobs: 1, limits: LIMITS, dispatcher, segments: { segments: 4, pieceLength: PIECE, crossCheck: 0 },
    // What a torrent gives (swarm-fetch.ts): the layer under the pinned merkleRoot.
    pieceLayerFor: (_d, size) => (size === DATA.length ? { pieceLength: PIECE, layer: map.layer } : undefined),
    onPieceVerified: (d, index, _path, pieceLength, leaves) => {
      assert.equal(d.name, NAME);
      assert.equal(pieceLength, PIECE);
      seen.set(index, [...(seen.get(index) ?? []), leaves && Buffer.from(leaves)]);
    },
  });
  assert.equal(report.fetched, 1, JSON.stringify(report.files));
  assert.ok((report.files[0]!.contributors?.length ?? 0) >= 2, `split across both mirrors: ${JSON.stringify(report.files[0])}`);
  assert.deepEqual([...seen.keys()].sort((a, b) => a - b), map.layer.map((_, i) => i), 'every piece, once');
  for (const [index, calls] of seen) {
    assert.equal(calls.length, 1, `piece ${index} once`);
    const expected = Buffer.concat(blockHashes(DATA.subarray(index * PIECE, (index + 1) * PIECE)));
    assert.ok(calls[0], `piece ${index} came without its leaves: the uploading leecher would read it back`);
    assert.ok(calls[0]!.equals(expected), `piece ${index}: the leaves are its blocks' hashes`);
  }
});
