// xz and bzip2 snapshots are compressed by the installed tools, fed through their stdin with
// backpressure. Each wait for 'drain' used to add a 'close' listener that stayed when 'drain' came: after
// ten waits on one tool, Node printed MaxListenersExceededWarning (issue 11: `mirror sync` printed it on
// every run that made an xz snapshot).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { compressChunks } from '../../src/archive/compress.ts';
import { isSourcemeshError } from '../../src/errors.ts';
import { bytes } from '../helpers/distfiles.ts';
import { tempDir } from '../helpers/run.ts';

/** Warnings the process emits while `fn` runs (and a turn of the event loop after). */
async function warningsDuring(fn: () => Promise<void>): Promise<Error[]> {
  const seen: Error[] = [];
  const on = (w: Error) => seen.push(w);
  process.on('warning', on);
  try {
    await fn();
    await new Promise((resolve) => setImmediate(resolve));
  } finally {
    process.off('warning', on);
  }
  return seen;
}

for (const [compression, decompress] of [['xz', ['xz', '-dc']], ['bzip2', ['bzip2', '-dc']]] as const) {
  test(`${compression}: 40 chunks through the tool with backpressure, no listener left per wait, the bytes round-trip`, async () => {
    // 64 KiB chunks: more than the pipe's 16 KiB high-water mark, so every write waits for 'drain'.
    const chunks = Array.from({ length: 40 }, (_, i) => bytes(64 * 1024, i + 1));
    let out: Buffer[] = [];
    async function* source() { for (const c of chunks) yield c; }
    const warnings = await warningsDuring(async () => {
      out = [];
      for await (const c of compressChunks(source(), compression, compression === 'xz' ? 0 : 1)) out.push(Buffer.from(c));
    });
    assert.deepEqual(warnings.map((w) => `${w.name}: ${w.message}`), []);
    assert.deepEqual(execFileSync(decompress[0], decompress.slice(1), { input: Buffer.concat(out), maxBuffer: 1 << 26 }), Buffer.concat(chunks));
  });
}

test('a source that fails mid-way fails the stream with its own error, and the tool is stopped', async () => {
  async function* source() {
    for (let i = 0; i < 8; i++) yield bytes(64 * 1024, i + 1);
    throw new Error('the archive reader failed');
  }
  await assert.rejects(async () => { for await (const _ of compressChunks(source(), 'xz', 0)) { /* drain */ } }, /the archive reader failed/);
});

test('a tool that dies half-way is an error naming it and its exit status, not a hang', async (t) => {
  const dir = await tempDir(t);
  await writeFile(path.join(dir, 'xz'), '#!/bin/sh\nhead -c 1000 >/dev/null\necho "xz: out of luck" >&2\nexit 3\n', { mode: 0o755 });
  const saved = process.env.PATH;
  process.env.PATH = `${dir}:${saved}`;
  t.after(() => { process.env.PATH = saved; });
  async function* source() { for (let i = 0; i < 40; i++) yield bytes(64 * 1024, i + 1); }
  await assert.rejects(async () => { for await (const _ of compressChunks(source(), 'xz', 0)) { /* drain */ } }, (err: unknown) => isSourcemeshError(err, 'E_ARCHIVE') && /xz exited 3: xz: out of luck/.test(err.message));
});
