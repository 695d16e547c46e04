// The tar.gz compressor on a worker thread (src/archive/gzip-thread.ts): its bytes are GNU gzip -n's (the
// real gzip) and the in-thread gzipChunks' whatever the chunking, queue and level; a consumer that stops
// reading stops the reader too (nothing piles up); an error of the source, an abandoned stream and a cancel
// end the thread (a process left with a live thread would not exit).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { gzipChunks } from '../../src/archive/compress.ts';
import { GZIP_BATCH_BYTES, startTarGzip } from '../../src/archive/gzip-thread.ts';
import { Prng } from '../helpers/prng.ts';
import { ROOT, tempDir, waitFor } from '../helpers/run.ts';

/** Text that compresses (lines repeating with changes), random bytes, and runs of zeros, as in a tar. */
function corpus(bytes: number, seed: number): Buffer {
  const rnd = new Prng(seed);
  const out = Buffer.alloc(bytes);
  let at = 0;
  while (at < bytes) {
    const kind = rnd.below(3);
    const n = Math.min(bytes - at, 1 + rnd.below(40_000));
    if (kind === 0) {
      let line = '';
      while (line.length < n) line += `static int f${rnd.below(50)}(void) { return ${rnd.below(1000)}; }\n`;
      out.write(line.slice(0, n), at, 'latin1');
    } else if (kind === 1) {
      for (let i = 0; i < n; i++) out[at + i] = rnd.next() & 0xff;
    } // else zeros
    at += n;
  }
  return out;
}

async function* chunked(data: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

async function collect(gen: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of gen) parts.push(c);
  return Buffer.concat(parts);
}

function gnuGzip(data: Buffer, level: number): Buffer {
  const r = spawnSync('gzip', ['-n', `-${level}`, '-c'], { input: data, maxBuffer: 1 << 30 });
  assert.equal(r.status, 0, String(r.stderr));
  return r.stdout;
}

test('the thread writes what gzip -n writes, and what gzipChunks writes, whatever the chunking and queue', async () => {
  const cases: { bytes: number; chunk: number; queue: number; level: number }[] = [
    { bytes: 0, chunk: 512, queue: 4 << 20, level: 6 },
    { bytes: 700, chunk: 512, queue: 4 << 20, level: 6 },
    { bytes: GZIP_BATCH_BYTES, chunk: 64 << 10, queue: GZIP_BATCH_BYTES, level: 6 },
    { bytes: 3 * GZIP_BATCH_BYTES + 1, chunk: 1000, queue: GZIP_BATCH_BYTES, level: 1 },
    { bytes: 5 << 20, chunk: 64 << 10, queue: 1 << 20, level: 6 },
    { bytes: 3 << 20, chunk: 700_001, queue: 4 << 20, level: 9 },
  ];
  for (const [i, c] of cases.entries()) {
    const data = corpus(c.bytes, 1000 + i);
    const expected = gnuGzip(data, c.level);
    const gz = startTarGzip({ flavour: 'gzip-n', level: c.level, queueBytes: c.queue, thread: true });
    const got = await collect(gz.run(chunked(data, c.chunk)));
    assert.ok(got.equals(expected), `case ${JSON.stringify(c)}: the thread's bytes differ from gzip -n's`);
    const inThread = startTarGzip({ flavour: 'gzip-n', level: c.level, queueBytes: c.queue, thread: false });
    assert.ok((await collect(inThread.run(chunked(data, c.chunk)))).equals(expected), `case ${JSON.stringify(c)}: in-thread`);
  }
  // The zlib flavour (git archive --format=tar.gz) has no command-line twin here: the in-thread engine is its reference.
  const data = corpus(2 << 20, 77);
  const thread = await collect(startTarGzip({ flavour: 'zlib', level: 6, queueBytes: 1 << 20, thread: true }).run(chunked(data, 40_000)));
  assert.ok(thread.equals(await collect(gzipChunks(chunked(data, 40_000), 'zlib', 6))));
});

test('the source\'s chunks are handed back once copied, each once, in order', async () => {
  const data = corpus(2 << 20, 5);
  const given: Buffer[] = [];
  const used: Uint8Array[] = [];
  async function* source() {
    for (let i = 0; i < data.length; i += 50_000) {
      const c = Buffer.from(data.subarray(i, i + 50_000));
      given.push(c);
      yield c;
      // Once asked for the next chunk, the previous one has been copied: reusing it must not change the output.
      assert.equal(used.at(-1), c, 'a chunk was not handed back before the next one was asked for');
      c.fill(0xee);
    }
  }
  const out = await collect(startTarGzip({ flavour: 'gzip-n', level: 6, queueBytes: 1 << 20, thread: true }).run(source(), (c) => used.push(c)));
  assert.ok(out.equals(gnuGzip(data, 6)));
  assert.deepEqual(used, given);
});

test('a consumer that stops reading stops the reader: at most the queue is in flight', async () => {
  // Incompressible data: each batch comes back as about as many bytes of output.
  const queue = 4 * GZIP_BATCH_BYTES;
  const chunk = 64 << 10;
  const rnd = new Prng(9);
  const data = Buffer.alloc(8 << 20);
  for (let i = 0; i < data.length; i += 4) data.writeUInt32LE(rnd.next(), i);
  let pulled = 0;
  async function* source() {
    for (let i = 0; i < data.length; i += chunk) {
      pulled += Math.min(chunk, data.length - i);
      yield data.subarray(i, i + chunk);
    }
  }
  const gz = startTarGzip({ flavour: 'gzip-n', level: 1, queueBytes: queue, thread: true });
  const it = gz.run(source());
  const first = await it.next();
  assert.ok(!first.done);
  // The consumer holds the first chunk: the reader goes on until every batch waits on the consumer, and stops.
  await waitFor('the reader to wait with every batch compressed', () => {
    const s = gz.state();
    return (s.feederWaiting && s.atThread === 0) || pulled === data.length;
  }, { timeoutMs: 120_000 });
  assert.ok(pulled <= queue + chunk, `the reader ran ${pulled} bytes ahead of a consumer that stopped (queue ${queue})`);
  assert.ok(gz.state().outputBytes <= queue + (64 << 10), `${gz.state().outputBytes} bytes of output held`);
  const rest = await collect({ [Symbol.asyncIterator]: () => it });
  assert.ok(Buffer.concat([first.value!, rest]).equals(gnuGzip(data, 1)));
});

/** Runs `body` (a module importing the compressor) in a fresh Node; a thread left running keeps it alive. */
async function child(t: { after(fn: () => Promise<void> | void): void }, body: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const file = path.join(await tempDir(t), 'child.mjs');
  await writeFile(file, `import { startTarGzip } from ${JSON.stringify(`${ROOT}/src/archive/gzip-thread.ts`)};\n${body}`);
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    // A bound, not a schedule: a process that does not exit by itself failed the test.
    const timer = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`the child did not exit: a thread was left running\n${stdout}${stderr}`)); }, 60_000);
    p.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

test('an error of the source fails the stream with that error and ends the thread', async (t) => {
  const r = await child(t, `
    import { SourcemeshError } from ${JSON.stringify(`${ROOT}/src/errors.ts`)};
    async function* source() {
      for (let i = 0; i < 40; i++) yield Buffer.alloc(100_000, i);
      throw new SourcemeshError('E_ARCHIVE', 'pack: truncated');
    }
    const gz = startTarGzip({ flavour: 'gzip-n', level: 6, queueBytes: 1 << 20, thread: true });
    try { for await (const c of gz.run(source())) {} console.log('no error'); }
    catch (err) { console.log('error', err.code, err.message); }
  `);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'error E_ARCHIVE pack: truncated');
});

test('a consumer that abandons the stream ends the source and the thread; cancel before running ends the thread', async (t) => {
  const r = await child(t, `
    let closed = false;
    async function* source() {
      try { for (let i = 0; ; i++) yield Buffer.alloc(100_000, i & 0xff); } finally { closed = true; }
    }
    const gz = startTarGzip({ flavour: 'gzip-n', level: 6, queueBytes: 1 << 20, thread: true });
    for await (const c of gz.run(source())) break;
    console.log('source closed', closed);
    await startTarGzip({ flavour: 'gzip-n', level: 6, queueBytes: 1 << 20, thread: true }).cancel();
    console.log('cancelled');
  `);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'source closed true\ncancelled');
});
