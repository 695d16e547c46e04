// A download's hashes on a thread (src/fetch/hash-thread.ts) and downloads that take the BEP 52 piece map in
// their own pass (DownloadContext.hashPieces): the digest and the map equal those of the bytes read back,
// from scratch, resumed from a partial (the thread hashes its prefix), and after a server ignored the
// range (the partial starts again); the bytes waiting for the thread are bounded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { downloadFrom } from '../../src/fetch/download.ts';
import { StreamHash } from '../../src/fetch/hash-thread.ts';
import { createAgent } from '../../src/fetch/http.ts';
import { blockHashes, pieceMapFromLeaves, pieceMapOfFile } from '../../src/fetch/piece-map.ts';
import { LIMITS } from '../../src/limits.ts';
import { Store } from '../../src/store/store.ts';
import { startOrigin } from '../helpers/origin.ts';

const MiB = 1 << 20;
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const hex = (m: { root: Buffer; layer: Buffer[] }) => ({ root: m.root.toString('hex'), layer: m.layer.map((h) => h.toString('hex')) });
/** A buffer of its own (update() transfers it). */
const own = (b: Uint8Array) => {
  const c = Buffer.allocUnsafeSlow(b.length);
  c.set(b);
  return c;
};

test('a stream on the thread: SHA-256 and piece map of every byte since the last reset, after a prefix read from the file', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'hash-thread-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const data = randomBytes(3 * MiB + 12_345);
  const file = path.join(dir, 'f');
  await writeFile(file, data);

  const s = new StreamHash({ pieceLength: MiB, aheadBytes: 64 * MiB });
  await s.update(own(randomBytes(5000))); // forgotten by the reset
  s.reset();
  await s.prefix(file, MiB + 7);
  for (let at = MiB + 7; at < data.length; at += 300_001) await s.update(own(data.subarray(at, Math.min(data.length, at + 300_001))));
  const got = await s.result();
  s.close();
  assert.equal(got.sha256, sha(data));
  assert.deepEqual(hex(got.pieceMap!), hex(await pieceMapOfFile(file, MiB)));

  // Without a piece length: the SHA-256 only.
  const plain = new StreamHash({ aheadBytes: MiB });
  await plain.update(own(data.subarray(0, 100)));
  const p = await plain.result();
  plain.close();
  assert.equal(p.sha256, sha(data.subarray(0, 100)));
  assert.equal(p.pieceMap, undefined);
});

test('bytes waiting for the thread are bounded: past aheadBytes, update() returns a promise that settles as the thread catches up', async () => {
  const s = new StreamHash({ pieceLength: MiB, aheadBytes: 2 * MiB });
  const chunks = Array.from({ length: 12 }, (_, i) => randomBytes(MiB).fill(i, 0, 1));
  let waited = 0;
  for (const c of chunks) {
    const w = s.update(own(c));
    if (w) {
      waited++;
      await w;
    }
  }
  const got = await s.result();
  s.close();
  // 12 MiB given 1 MiB at a time against a 2 MiB bound: the writer must have been held back.
  assert.ok(waited > 0, 'update() never asked the writer to wait');
  const all = Buffer.concat(chunks);
  assert.equal(got.sha256, sha(all));
  assert.deepEqual(hex(got.pieceMap!), hex(pieceMapFromLeaves(blockHashes(all), MiB)));
  // A buffer that does not own its memory is refused (transferring it would take its neighbours).
  const s2 = new StreamHash({ aheadBytes: MiB });
  assert.throws(() => s2.update(Buffer.from(randomBytes(64).buffer, 8, 16)), /own its whole ArrayBuffer/);
  s2.close();
});

test('downloadFrom with hashPieces: the map and digest of the bytes, fresh, resumed from a partial, and started again when the range is ignored', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'hash-dl-'));
  const body = randomBytes(5 * MiB + 999);
  const origin = await startOrigin({ '/f.bin': { body }, '/whole.bin': { body, behaviour: { kind: 'ignore-range' } } });
  const dispatcher = createAgent(LIMITS);
  t.after(async () => {
    await dispatcher.close();
    await origin.close();
    await rm(dir, { recursive: true, force: true });
  });
  const store = await Store.open(path.join(dir, 'store'));
  const want = path.join(dir, 'want');
  await writeFile(want, body);
  const wantMap = hex(await pieceMapOfFile(want, MiB));
  const d = { name: 'f.bin', sha256: sha(body), size: body.length, urls: [] as string[] };
  const ctx = { store, dispatcher, limits: LIMITS, random: () => 0.5, hashPieces: MiB };
  const source = (p: string) => ({ role: 'upstream' as const, label: origin.url, location: { type: 'http' as const, url: `${origin.url}${p}` } });

  // Fresh.
  let partial = await store.beginPartial(d.sha256);
  let got = await downloadFrom(d, source('/f.bin'), partial, ctx);
  assert.equal(got.digest, d.sha256);
  assert.deepEqual(hex(got.pieceMap!), wantMap);
  await store.discardPartial(partial);

  // Resumed: 2 MiB + 5 of the right bytes already in the partial; the server is asked for the rest.
  partial = await store.beginPartial(d.sha256);
  await writeFile(partial.path, body.subarray(0, 2 * MiB + 5));
  got = await downloadFrom(d, source('/f.bin'), partial, ctx);
  assert.equal(got.resumed, true);
  assert.equal(got.digest, d.sha256);
  assert.deepEqual(hex(got.pieceMap!), wantMap);
  assert.equal(origin.log.at(-1)!.range, `bytes=${2 * MiB + 5}-`);
  await store.discardPartial(partial);

  // A partial of wrong bytes and a server that ignores Range: the whole body replaces them, and the
  // hashes restart with it.
  partial = await store.beginPartial(d.sha256);
  await writeFile(partial.path, randomBytes(MiB));
  got = await downloadFrom(d, source('/whole.bin'), partial, ctx);
  assert.equal(got.digest, d.sha256);
  assert.deepEqual(hex(got.pieceMap!), wantMap);
  await store.discardPartial(partial);

  // Without hashPieces, no map (fetch's path, hashing on the main thread).
  partial = await store.beginPartial(d.sha256);
  got = await downloadFrom(d, source('/f.bin'), partial, { ...ctx, hashPieces: undefined });
  assert.equal(got.digest, d.sha256);
  assert.equal(got.pieceMap, undefined);
  await store.discardPartial(partial);
});
