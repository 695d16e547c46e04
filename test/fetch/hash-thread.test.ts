// The process's one hashing thread (src/fetch/hash-thread.ts). Streams (downloads that take the BEP 52
// piece map in their own pass, DownloadContext.hashPieces): the digest and the map equal those of the
// bytes read back, from scratch, resumed from a partial (the thread hashes its prefix), and after a server
// ignored the range (the partial starts again); the bytes waiting for the thread are bounded. Piece
// hashers (segmented downloads): piece hashes equal piece-map.ts's, and each file's SHA-256 equals
// node:crypto's over the same bytes, for several files at once, whatever order and sizes the written
// prefix grows by. Both kinds at once run on one thread (seen in /proc), which never holds the process
// open, and a thread that dies fails its users and is replaced for the next.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { downloadFrom } from '../../src/fetch/download.ts';
import { HASH_THREAD_NAME, PieceHasher, StreamHash } from '../../src/fetch/hash-thread.ts';
import { createAgent } from '../../src/fetch/http.ts';
import { blockHashes, pieceHash, pieceMapFromLeaves, pieceMapOfFile } from '../../src/fetch/piece-map.ts';
import { LIMITS } from '../../src/limits.ts';
import { Store } from '../../src/store/store.ts';
import { bytes } from '../helpers/distfiles.ts';
import { startOrigin } from '../helpers/origin.ts';
import { ROOT, tempDir } from '../helpers/run.ts';

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

const PIECE = 256 * 1024;

test('piece hashes and whole-file SHA-256 from the hashing thread, two files at once', async (t) => {
  const dir = await tempDir(t);
  const bodies = [bytes(3 * 1024 * 1024 + 12_345, 71), bytes(1024 * 1024 + 1, 72)];
  const runs = bodies.map(async (body, n) => {
    const file = path.join(dir, `f${n}`);
    await writeFile(file, Buffer.alloc(body.length));
    const fh = await open(file, 'r+');
    const hasher = new PieceHasher(file);
    try {
      const count = Math.ceil(body.length / PIECE);
      // Pieces arrive out of order; the prefix only grows once its pieces are written.
      const order = Array.from({ length: count }, (_, i) => i).reverse();
      const written = new Set<number>();
      for (const i of order) {
        const piece = Buffer.from(body.subarray(i * PIECE, Math.min(body.length, (i + 1) * PIECE)));
        const got = await hasher.pieceHash(piece, PIECE);
        assert.deepEqual(got.hash, pieceHash(body.subarray(i * PIECE, Math.min(body.length, (i + 1) * PIECE)), PIECE), `piece ${i} of file ${n}`);
        assert.deepEqual(got.body, body.subarray(i * PIECE, Math.min(body.length, (i + 1) * PIECE)), 'the same bytes come back');
        await fh.write(got.body, 0, got.body.length, i * PIECE);
        written.add(i);
        let prefix = 0;
        while (written.has(prefix)) prefix++;
        hasher.prefixWritten(Math.min(body.length, prefix * PIECE));
      }
      assert.equal(await hasher.digest(body.length), createHash('sha256').update(body).digest('hex'));
    } finally {
      await hasher.close();
      await fh.close();
    }
  });
  await Promise.all(runs);
});

test('a digest of bytes that are not in the file is undefined, not a wrong hash', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'short');
  await writeFile(file, bytes(1000, 73));
  const hasher = new PieceHasher(file);
  try {
    assert.equal(await hasher.digest(5000), undefined);
  } finally {
    await hasher.close();
  }
});

test("a piece in Node's Buffer pool (untransferable memory, even at offset 0) is hashed from a copy, and the pool is left whole", async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'f');
  await writeFile(file, Buffer.alloc(0));
  const hasher = new PieceHasher(file);
  t.after(() => hasher.close());
  const body = bytes(16 * 1024, 74);
  // Buffer.from of less than half of Buffer.poolSize takes a slice of the pool: a new pool begins at
  // offset 0 within poolSize / 16 KiB slices. The case a copy-free move mistook for memory of its own.
  let piece = Buffer.from(body);
  for (let i = 0; piece.byteOffset !== 0 && i <= Buffer.poolSize / body.length; i++) piece = Buffer.from(body);
  assert.equal(piece.byteOffset, 0, 'no pool slice at offset 0');
  assert.ok(piece.buffer.byteLength > piece.length, 'not a slice of a pool');
  const neighbour = Buffer.from(bytes(100, 75)); // the next slice of the same pool
  assert.equal(neighbour.buffer, piece.buffer);
  const got = await hasher.pieceHash(piece, 16 * 1024);
  assert.deepEqual(got.hash, pieceHash(body, 16 * 1024));
  assert.deepEqual(got.body, body);
  assert.deepEqual(neighbour, bytes(100, 75), 'the pool still reads');
});

/** The threads of this process named as the hashing thread (Linux: /proc/self/task/TID/comm). */
const hashThreads = (): string[] => readdirSync('/proc/self/task').filter((tid) => {
  try {
    return readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim() === HASH_THREAD_NAME;
  } catch {
    return false; // the thread ended while we looked
  }
});

test('one thread for everything: a stream and two piece hashers at once share it, and the next user finds the same one', async (t) => {
  const dir = await tempDir(t);
  const data = bytes(2 * MiB + 77, 76);
  const file = path.join(dir, 'f');
  await writeFile(file, data);
  const stream = new StreamHash({ pieceLength: MiB, aheadBytes: 4 * MiB });
  const hashers = [new PieceHasher(file), new PieceHasher(file)];
  try {
    await stream.update(own(data));
    const pieces = await Promise.all(hashers.map((h) => h.pieceHash(Buffer.from(data.subarray(0, MiB)), MiB)));
    for (const h of hashers) h.prefixWritten(data.length);
    const digests = await Promise.all(hashers.map((h) => h.digest(data.length)));
    const streamed = await stream.result();
    // Every answer right, from one thread (two kinds of hasher once meant two threads, some 20 MB each).
    for (const p of pieces) assert.deepEqual(p.hash, pieceHash(data.subarray(0, MiB), MiB));
    assert.deepEqual(digests, [sha(data), sha(data)]);
    assert.equal(streamed.sha256, sha(data));
    const during = hashThreads();
    assert.equal(during.length, 1, `threads named ${HASH_THREAD_NAME}: ${during.length}`);
    stream.close();
    for (const h of hashers) await h.close();
    // Idle, the thread is kept for the next download (starting one costs its module loading).
    const next = new PieceHasher(file);
    next.prefixWritten(10);
    assert.equal(await next.digest(10), sha(data.subarray(0, 10)));
    await next.close();
    assert.deepEqual(hashThreads(), during, 'the next user started another thread');
  } finally {
    stream.close();
    for (const h of hashers) await h.close();
  }
});

test('the idle thread never holds the process open: a process that hashed exits by itself', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'f');
  await writeFile(file, bytes(100_000, 77));
  const script = path.join(dir, 'hash.mjs');
  await writeFile(script, `
    import { PieceHasher, StreamHash } from ${JSON.stringify(path.join(ROOT, 'src/fetch/hash-thread.ts'))};
    const h = new PieceHasher(${JSON.stringify(file)});
    h.prefixWritten(100000);
    const hex = await h.digest(100000);
    await h.close();
    const s = new StreamHash({ aheadBytes: 1 << 20 });
    s.update(Buffer.alloc(1000));
    const r = await s.result();
    s.close();
    console.log(hex, r.sha256);`);
  const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c));
  const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const [code, signal] = await new Promise<[number | null, string | null]>((resolve) => child.once('exit', (c, s) => resolve([c, s])));
  clearTimeout(killer);
  assert.equal(signal, null, 'the process was still running 20 s after its work: the thread held it open');
  assert.equal(code, 0);
  assert.equal(out.trim(), `${sha(bytes(100_000, 77))} ${sha(Buffer.alloc(1000))}`);
});

test('a thread that dies fails every user (streams and piece hashers, E_INTERNAL), and the next user gets a new one', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'f');
  const data = bytes(300_000, 78);
  await writeFile(file, data);
  const stream = new StreamHash({ aheadBytes: MiB });
  const hasher = new PieceHasher(file);
  const before = hashThreads();
  assert.equal(before.length, 1);
  // What an out-of-memory kill of the worker looks like from here.
  await (hasher as unknown as { thread: { worker: { terminate(): Promise<number> } } }).thread.worker.terminate();
  const internal = (e: unknown) => (e as { code?: string }).code === 'E_INTERNAL';
  await assert.rejects(async () => stream.result(), internal);
  await assert.rejects(hasher.digest(10), internal);
  stream.close();
  await hasher.close();
  const again = new StreamHash({ aheadBytes: MiB });
  await again.update(own(data));
  assert.equal((await again.result()).sha256, sha(data));
  again.close();
  const after = hashThreads();
  assert.equal(after.length, 1);
  assert.notDeepEqual(after, before, 'the dead thread is not the one answering');
});
