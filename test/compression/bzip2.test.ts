// Our bzip2 decoder against the real bzip2 (1.0.8 on Debian): every level, data of every shape (empty, one
// byte, random, text, zeros, runs around the 4-byte and 255-byte run-length edges, all byte values,
// several blocks), concatenated streams, any chunking of the input; and hostile input: truncation, a flipped
// bit anywhere, a bad stream or block CRC, garbage after the end, a randomised block, a block header
// claiming more than the level allows.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import fc from 'fast-check';
import { bunzip2 } from '../../src/compression/bzip2.ts';
import { bytes, sha256 } from '../helpers/distfiles.ts';

function bzip2(data: Buffer, level = 9): Buffer {
  return execFileSync('bzip2', [`-${level}`, '-c'], { input: data, maxBuffer: 1 << 28 });
}

async function decode(packed: Buffer, chunk = 65_536, readAhead?: number): Promise<Buffer> {
  async function* source() {
    for (let i = 0; i < packed.length; i += chunk) yield packed.subarray(i, i + chunk);
  }
  const out: Buffer[] = [];
  for await (const c of bunzip2(source(), readAhead)) out.push(Buffer.from(c));
  return Buffer.concat(out);
}

const runs = Buffer.concat(Array.from({ length: 2000 }, (_, i) => Buffer.alloc(i % 300, i & 0xff)));
const CORPUS: Record<string, Buffer> = {
  empty: Buffer.alloc(0),
  one: Buffer.from('x'),
  text: Buffer.from('the quick brown fox jumps over the lazy dog\n'.repeat(30_000)),
  random: bytes(1_300_000, 11),
  zeros: Buffer.alloc(2_000_000),
  runs,
  'run edges': Buffer.concat([3, 4, 5, 8, 255, 256, 259, 260, 1000].map((n, i) => Buffer.alloc(n, 0x61 + i))),
  'all bytes': Buffer.from(Array.from({ length: 256 * 50 }, (_, i) => (i * 7) & 0xff)),
};

test('the same bytes as bzip2 -d for every level and shape of data, in any chunking', async () => {
  for (const [name, data] of Object.entries(CORPUS)) {
    for (const level of [1, 5, 9]) {
      const packed = bzip2(data, level);
      assert.equal(sha256(await decode(packed)), sha256(data), `${name} -${level}`);
      if (packed.length < 100_000) assert.equal(sha256(await decode(packed, 1)), sha256(data), `${name} -${level}, 1-byte chunks`);
    }
  }
  // A block larger than what was read ahead is decoded again once more input is in.
  for (const readAhead of [1, 1000, 70_000]) {
    assert.equal(sha256(await decode(bzip2(CORPUS.random!), 4096, readAhead)), sha256(CORPUS.random!), `read ahead ${readAhead}`);
  }
  // Several streams back to back (pbzip2) are one output.
  const two = Buffer.concat([bzip2(CORPUS.text!), bzip2(CORPUS.random!, 1), bzip2(CORPUS.empty!)]);
  assert.equal(sha256(await decode(two, 4093)), sha256(Buffer.concat([CORPUS.text!, CORPUS.random!])));
});

test('property: random data with runs decodes to itself, whatever the chunk size', async () => {
  await fc.assert(fc.asyncProperty(
    fc.array(fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 1, max: 600 })), { maxLength: 400 }),
    fc.integer({ min: 1, max: 9 }),
    fc.integer({ min: 1, max: 70_000 }),
    async (spans, level, chunk) => {
      const data = Buffer.concat(spans.map(([b, n]) => Buffer.alloc(n, b)));
      assert.equal(sha256(await decode(bzip2(data, level), chunk)), sha256(data));
    },
  ), { numRuns: 40 });
});

test('hostile input: every fault is an error, never wrong bytes', async () => {
  const data = CORPUS.text!;
  const packed = bzip2(data);
  const expectError = async (bad: Buffer, what: string, pattern?: RegExp) => {
    await assert.rejects(decode(bad, 8191), (err: Error) => (pattern ? pattern.test(err.message) : true), what);
  };
  await expectError(packed.subarray(0, packed.length - 1), 'truncated by one byte');
  await expectError(packed.subarray(0, Math.floor(packed.length / 2)), 'truncated in half', /ends in the middle of a block/);
  await expectError(Buffer.from('BZh9'), 'a header alone');
  await expectError(Buffer.from('not bzip2 at all'), 'not bzip2', /not a bzip2 stream/);
  await expectError(Buffer.concat([packed, Buffer.from('garbage!')]), 'garbage after the end', /after the end/);
  // The block CRC (bytes 10-13) and the randomised bit (the top bit of byte 14).
  const crc = Buffer.from(packed);
  crc[12]! ^= 0x01;
  await expectError(crc, 'a wrong block CRC', /block CRC/);
  const randomised = Buffer.from(packed);
  randomised[14]! |= 0x80;
  await expectError(randomised, 'a randomised block', /randomised/);
  // A flipped bit anywhere: an error (a CRC, a table, a code), or, never, other bytes.
  for (let i = 0; i < 120; i++) {
    const at = 4 + ((i * 7919) % (packed.length - 4));
    const bad = Buffer.from(packed);
    bad[at]! ^= 1 << (i % 8);
    const got = await decode(bad).catch(() => undefined);
    if (got !== undefined) assert.equal(sha256(got), sha256(data), `bit ${i % 8} of byte ${at} gave other bytes`);
  }
});

test('a block of long runs comes out in 64 KiB chunks, never held whole', async () => {
  // One block of runs: 45 MB from a few dozen bytes.
  const packed = bzip2(Buffer.alloc(45_000_000, 0x41));
  assert.ok(packed.length < 100);
  let largest = 0;
  let total = 0;
  for await (const c of bunzip2((async function* () { yield packed; })())) {
    largest = Math.max(largest, c.length);
    total += c.length;
  }
  assert.equal(total, 45_000_000);
  assert.ok(largest <= 65_536, `a chunk of ${largest} bytes`);
});
