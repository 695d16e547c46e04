// The process's one hashing thread (src/fetch/hash-thread.ts), for downloads that take the BEP 52 piece
// map in their own pass (DownloadContext.hashPieces): the digest and the map equal those of the bytes read
// back, from scratch, resumed from a partial (the thread hashes its prefix), and after a server ignored the
// range (the partial starts again); the bytes waiting for the thread are bounded. Several downloads at
// once share one thread (seen in /proc), which never holds the process open; a thread that dies fails
// its users and is replaced for the next.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { downloadFrom } from '../../src/fetch/download.ts';
import { HASH_THREAD_NAME, StreamHash } from '../../src/fetch/hash-thread.ts';
import { createAgent } from '../../src/fetch/http.ts';
import { blockHashes, pieceMapFromLeaves, pieceMapOfFile } from '../../src/fetch/piece-map.ts';
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

/** The threads of this process named as the hashing thread (Linux: /proc/self/task/TID/comm). */
const hashThreads = (): string[] => readdirSync('/proc/self/task').filter((tid) => {
  try {
    return readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim() === HASH_THREAD_NAME;
  } catch {
    return false; // the thread ended while we looked
  }
});

test('one thread for every download: three streams at once share it, and the next download finds the same one', async () => {
  const data = bytes(2 * MiB + 77, 76);
  const streams = [0, 1, 2].map((i) => new StreamHash(i ? { pieceLength: MiB, aheadBytes: 4 * MiB } : { aheadBytes: 4 * MiB }));
  try {
    await Promise.all(streams.map((s) => s.update(own(data))));
    const during = hashThreads();
    const results = await Promise.all(streams.map((s) => s.result()));
    for (const r of results) assert.equal(r.sha256, sha(data));
    assert.deepEqual(hex(results[1]!.pieceMap!), hex(pieceMapFromLeaves(blockHashes(data), MiB)));
    // One thread (there was once one per core, and another for segmented downloads: some 20 MB each).
    assert.equal(during.length, 1, `threads named ${HASH_THREAD_NAME}: ${during.length}`);
    for (const s of streams) s.close();
    // Idle, the thread is kept for the next download (starting one costs its module loading).
    const next = new StreamHash({ aheadBytes: MiB });
    await next.update(own(data.subarray(0, 10)));
    assert.equal((await next.result()).sha256, sha(data.subarray(0, 10)));
    next.close();
    assert.deepEqual(hashThreads(), during, 'the next download started another thread');
  } finally {
    for (const s of streams) s.close();
  }
});

test('the idle thread never holds the process open: a process that hashed exits by itself', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'f');
  await writeFile(file, bytes(100_000, 77));
  const script = path.join(dir, 'hash.mjs');
  await writeFile(script, `
    import { StreamHash } from ${JSON.stringify(path.join(ROOT, 'src/fetch/hash-thread.ts'))};
    const s = new StreamHash({ aheadBytes: 1 << 20 });
    await s.prefix(${JSON.stringify(file)}, 100000);
    s.update(Buffer.alloc(1000));
    const r = await s.result();
    s.close();
    console.log(r.sha256);`);
  const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c));
  const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const [code, signal] = await new Promise<[number | null, string | null]>((resolve) => child.once('exit', (c, s) => resolve([c, s])));
  clearTimeout(killer);
  assert.equal(signal, null, 'the process was still running 20 s after its work: the thread held it open');
  assert.equal(code, 0);
  assert.equal(out.trim(), sha(Buffer.concat([bytes(100_000, 77), Buffer.alloc(1000)])));
});

test('a thread that dies fails every download on it (E_INTERNAL), and the next download gets a new one', async () => {
  const data = bytes(300_000, 78);
  const streams = [new StreamHash({ aheadBytes: MiB }), new StreamHash({ pieceLength: MiB, aheadBytes: MiB })];
  const before = hashThreads();
  assert.equal(before.length, 1);
  // What an out-of-memory kill of the worker looks like from here.
  await (streams[0] as unknown as { thread: { worker: { terminate(): Promise<number> } } }).thread.worker.terminate();
  const internal = (e: unknown) => (e as { code?: string }).code === 'E_INTERNAL';
  for (const s of streams) await assert.rejects(async () => s.result(), internal);
  for (const s of streams) s.close();
  const again = new StreamHash({ aheadBytes: MiB });
  await again.update(own(data));
  assert.equal((await again.result()).sha256, sha(data));
  again.close();
  const after = hashThreads();
  assert.equal(after.length, 1);
  assert.notDeepEqual(after, before, 'the dead thread is not the one answering');
});
