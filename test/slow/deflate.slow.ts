// Slow deflate suite (not in the default run): a 60 MB generated tar against GNU gzip and zlib 1.2.13 at
// levels 1, 6 and 9, and a multi-GiB stream against `gzip -n -6`, past 4 GiB so that the gzip trailer's
// size wraps modulo 2^32. Outputs are compared by sha256, streamed: nothing large is held in memory.
//
//   DEFLATE_SLOW_GIB=4.25   size of the big stream in GiB (default 4.25)
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, createWriteStream, mkdtempSync, openSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import { createDeflateStream, type DeflateFlavour } from '../../src/archive/deflate/index.ts';
import { Prng, tarBytes, tarStream } from '../archive/deflate/corpus.ts';
import { zlibStreamArgs } from '../archive/deflate/reference-tools.ts';

const MiB = 1 << 20;
const BIG_BYTES = Math.round(Number(process.env.DEFLATE_SLOW_GIB ?? 4.25) * 1024 * MiB);

/** sha256 of our compression of `file`, streamed. */
async function oursSha256(file: string, flavour: DeflateFlavour, level: number): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file, { highWaterMark: MiB }), createDeflateStream({ flavour, level }), hash);
  return hash.digest('hex');
}

/** sha256 of a command's stdout with `file` as its stdin (a regular file: full reads, as we assume). */
function commandSha256(cmd: string, args: string[], file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const fd = openSync(file, 'r');
    const child = spawn(cmd, args, { stdio: [fd, 'pipe', 'inherit'] });
    closeSync(fd);
    const hash = createHash('sha256');
    child.stdout!.on('data', (d: Buffer) => hash.update(d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(hash.digest('hex')) : reject(new Error(`${cmd} exited ${code}`))));
  });
}

/**
 * A long stream for the multi-GiB case, generated at memory speed: 1 MiB pieces cut from a 64 MiB pool of
 * generated tar at pseudo-random offsets, each stamped with its index so that no two pieces are equal.
 * Anything repeated lies megabytes apart, far beyond the 32 KiB window, so it compresses like fresh data.
 */
function* bigStream(seed: number, total: number): Generator<Uint8Array> {
  const pool = tarBytes(seed, 64 * MiB);
  const rng = new Prng(seed);
  for (let at = 0, index = 0; at < total; index++) {
    const n = Math.min(MiB, total - at);
    const start = rng.below(pool.length - MiB);
    const piece = pool.slice(start, start + n);
    new DataView(piece.buffer).setUint32(0, index, true);
    yield piece;
    at += n;
  }
}

async function writeFile(file: string, chunks: Iterable<Uint8Array>): Promise<void> {
  await pipeline(Readable.from(chunks), createWriteStream(file) as Writable);
}

describe('deflate, slow', () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'sourcemesh-deflate-slow-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  describe('60 MB tar', () => {
    let tar = '';
    before(async () => {
      tar = path.join(dir, 'corpus.tar');
      await writeFile(tar, tarStream(60, 60_000_000));
    });

    for (const level of [1, 6, 9]) {
      it(`gzip-n -${level} equals gzip -n -${level}`, { timeout: 600_000 }, async () => {
        const [ours, theirs] = await Promise.all([oursSha256(tar, 'gzip-n', level), commandSha256('gzip', ['-n', `-${level}`, '-c'], tar)]);
        assert.equal(ours, theirs);
      });
      it(`zlib level ${level} equals zlib 1.2.13`, { timeout: 600_000 }, async () => {
        const [ours, theirs] = await Promise.all([oursSha256(tar, 'zlib', level), commandSha256('python3', zlibStreamArgs(level), tar)]);
        assert.equal(ours, theirs);
      });
    }
  });

  it(`a ${(BIG_BYTES / 1024 / MiB).toFixed(2)} GiB stream: gzip-n -6 equals gzip -n -6`, { timeout: 3 * 3600_000 }, async () => {
    const file = path.join(dir, 'big.bin');
    await writeFile(file, bigStream(4, BIG_BYTES));
    assert.equal(statSync(file).size, BIG_BYTES);
    try {
      const [ours, theirs] = await Promise.all([oursSha256(file, 'gzip-n', 6), commandSha256('gzip', ['-n', '-6', '-c'], file)]);
      assert.equal(ours, theirs);
    } finally {
      rmSync(file, { force: true });
    }
  });
});
