// Where serve reads a body (src/mirror/file-body.ts, ReadPlace): on the event loop from the page
// cache, as nginx's worker does, until one read is slow (the disk answered), then in libuv's thread pool
// for a while; files on a file system that is not local are never read in place. Seen from outside:
// strace -f of a real server shows which thread made each pread64 of the body, and curl's bytes are the
// file's on both paths.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { LIMITS } from '../../src/limits.ts';
import { onLocalFileSystem, ReadPlace } from '../../src/mirror/file-body.ts';
import type { IndexedFile } from '../../src/mirror/file-index.ts';
import { bytes } from '../helpers/distfiles.ts';
import { tempDir } from '../helpers/run.ts';
import { tool } from './serve-process.ts';

const MARKER = '/nonexistent-sourcemesh-read-place-marker';

test('ReadPlace: in place until a read is slower than slowMs, then the thread pool for backoffMs, then in place again', () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 1, max: 5000 }), fc.array(fc.tuple(fc.integer({ min: 0, max: 2000 }), fc.integer({ min: 0, max: 100 })), { maxLength: 60 }), (slowMs, backoffMs, reads) => {
    const place = new ReadPlace(slowMs, backoffMs);
    let now = 0;
    let poolUntil = 0; // the model
    for (const [gap, took] of reads) {
      now += gap;
      assert.equal(place.inPlace(now), now >= poolUntil);
      if (!place.inPlace(now)) continue;
      place.took(now, now + took);
      now += took;
      if (took > slowMs) poolUntil = now + backoffMs;
    }
  }));
});

test('onLocalFileSystem: ext4/tmpfs and the like are local, /proc is not', async (t) => {
  const dir = await tempDir(t);
  await writeFile(path.join(dir, 'f'), 'x');
  const fileOn = async (p: string) => ({ path: p, dev: (await stat(p)).dev }) as IndexedFile;
  assert.equal(await onLocalFileSystem(await fileOn(path.join(dir, 'f'))), true, 'the test directory is on a local file system');
  assert.equal(await onLocalFileSystem(await fileOn('/proc/self/status')), false);
});

/** Serve ROOT under strace; GET the ranges; the thread of each body pread64 after the marker, and the bodies. */
async function serveTraced(t: any, root: string, slowMs: number, backoffMs: number, ranges: [number, number][]): Promise<{ main: number; threads: number[]; lengths: number[]; bodies: Buffer[] }> {
  const log = path.join(root, '..', `strace-${slowMs}.log`);
  const child = spawn('strace', ['-f', '-qq', '-e', 'trace=pread64,openat', '-o', log, process.execPath, path.join(import.meta.dirname, 'serve-read-place-server.ts'), root, String(slowMs), String(backoffMs), MARKER], { stdio: ['ignore', 'pipe', 'inherit'] });
  let serverPid = 0;
  t.after(() => {
    if (serverPid) try { process.kill(serverPid, 'SIGKILL'); } catch { /* gone */ }
    child.kill('SIGKILL');
  });
  // Its first line, or a failure as soon as it exits without one (a crash must not wait for the test's timeout).
  const out = await new Promise<string>((resolve, reject) => {
    let text = '';
    child.stdout.on('data', (d) => { text += d; if (text.includes('\n')) resolve(text); });
    child.once('close', (code, signal) => reject(new Error(`the server exited (${code ?? signal}) before it listened`)));
  });
  const { url, pid } = JSON.parse(out.slice(0, out.indexOf('\n')));
  serverPid = pid;
  const bodies: Buffer[] = [];
  for (const [first, last] of ranges) {
    const r = await tool('curl', ['-sS', '-f', '-r', `${first}-${last}`, `${url}/big.bin`]);
    assert.equal(r.code, 0, r.stderr);
    bodies.push(r.stdout);
  }
  // The server's own pid: SIGTERM to strace would only detach it and leave the server running.
  const closed = new Promise((r) => child.once('close', r));
  process.kill(pid, 'SIGTERM');
  await closed;
  const lines = (await readFile(log, 'utf8')).split('\n');
  const from = lines.findIndex((l) => l.includes(MARKER));
  assert.ok(from >= 0, 'the marker is in the trace');
  // Body reads: pread64(fd, "...", 1048576, offset) and shorter ones at a range's end.
  const reads = lines.slice(from).filter((l) => /pread64\(\d+, .*, \d+, \d+\) = \d+/.test(l));
  const threads = reads.map((l) => Number(l.split(' ')[0]));
  const lengths = reads.map((l) => Number(/, (\d+), \d+\) = \d+/.exec(l)![1]));
  return { main: pid, threads, lengths, bodies };
}

test('serve reads bodies in place, and through the thread pool after a slow read (strace)', async (t) => {
  const dir = await tempDir(t);
  const root = path.join(dir, 'root');
  await (await import('node:fs/promises')).mkdir(root);
  const BIG = bytes(3 * 1024 * 1024 + 12345, 9); // over the small-file cache: read from disk each time
  await writeFile(path.join(root, 'big.bin'), BIG);
  const ranges: [number, number][] = [[0, BIG.length - 1], [1_000_000, 2_500_000], [BIG.length - 10, BIG.length - 1], [5, 5]];
  const want = ranges.map(([a, b]) => createHash('sha256').update(BIG.subarray(a, b + 1)).digest('hex'));

  const fast = await serveTraced(t, root, 1_000_000, 60_000, ranges); // no read is ever slow: all in place
  assert.deepEqual(fast.bodies.map((b) => createHash('sha256').update(b).digest('hex')), want);
  assert.ok(fast.threads.length >= 7, `body reads traced: ${fast.threads.length}`);
  assert.deepEqual(new Set(fast.threads), new Set([fast.main]), 'every body read on the event loop thread');
  // One connection at a time (curl): bodies are read in pieces of serveQuietReadBytes, not whole 1 MiB buffers.
  assert.ok(fast.lengths.every((n) => n <= LIMITS.serveQuietReadBytes), `body reads of ${fast.lengths.join(' ')} bytes`);

  const slow = await serveTraced(t, root, -1, 60_000, ranges); // every read is slow: the first in place, the rest in the pool
  assert.deepEqual(slow.bodies.map((b) => createHash('sha256').update(b).digest('hex')), want);
  assert.equal(slow.threads[0], slow.main, 'the first read in place');
  assert.ok(slow.threads.length >= 7 && slow.threads.slice(1).every((tid) => tid !== slow.main), `then the thread pool: ${slow.threads.join(' ')}`);
});
