// Large blobs are inflated synchronously in bounded chunks on a zlib handle of their own
// (src/archive/git/inflate.ts inflateChunks, used by pack.ts inflateStream for packed and loose blobs over
// 16 MiB): the bytes are zlib's, whatever the input blocks; the declared size is enforced as output
// appears; bytes after the zlib stream are not read as data; a corrupt stream is E_ARCHIVE; and a stream
// abandoned half way leaves the shared handle of small objects working.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import zlib from 'node:zlib';
import { isSourcemeshError } from '../../src/errors.ts';
import { inflateChunks, inflateExact } from '../../src/archive/git/inflate.ts';

/** Text-like data (compresses well, so a small input inflates to a lot) with random stretches. */
function sample(size: number): Buffer {
  const words = ['alpha ', 'beta ', 'gamma\n', 'delta ', 'epsilon '];
  const parts: Buffer[] = [];
  let n = 0;
  for (let i = 0; n < size; i++) {
    const p = i % 97 === 0 ? randomBytes(300) : Buffer.from(words[(i * 7) % words.length]!);
    parts.push(p);
    n += p.length;
  }
  return Buffer.concat(parts).subarray(0, size);
}

/** A read() handing out `input` in blocks of `block` bytes, counting its calls. */
function reader(input: Buffer, block: number) {
  let pos = 0;
  const r = { calls: 0, read: (): Buffer | null => {
    r.calls++;
    if (pos >= input.length) return null;
    const b = input.subarray(pos, Math.min(input.length, pos + block));
    pos += b.length;
    return Buffer.from(b); // a copy, as the file reader's reused block would be overwritten
  } };
  return r;
}

function all(gen: Generator<Buffer> | null): Buffer {
  assert.ok(gen, 'the handle internals are available on this Node');
  const chunks = [...gen];
  for (const c of chunks) assert.ok(c.length <= 1 << 20, `a chunk of ${c.length} bytes`);
  return Buffer.concat(chunks);
}

function refused(f: () => unknown, message: RegExp): void {
  try {
    f();
  } catch (err) {
    assert.ok(isSourcemeshError(err), String(err));
    assert.equal(err.code, 'E_ARCHIVE');
    assert.match(err.message, message);
    return;
  }
  assert.fail('not refused');
}

const data = sample(3_500_000);
const packed = zlib.deflateSync(data);

test('the output is the inflated bytes whatever the input blocks, with a skipped prefix', () => {
  for (const block of [1, 777, 65536, packed.length]) {
    const r = reader(packed, block);
    assert.ok(all(inflateChunks(r.read, 0, data.length, 'x')).equals(data), `blocks of ${block}`);
  }
  assert.ok(all(inflateChunks(reader(packed, 4096).read, 10, data.length - 10, 'x')).equals(data.subarray(10)));
  assert.ok(all(inflateChunks(reader(zlib.deflateSync(Buffer.alloc(0)), 3).read, 0, 0, 'x')).equals(Buffer.alloc(0)));
});

test('a stream longer than declared is refused as the output appears, not after reading it all', () => {
  const bomb = zlib.deflateSync(Buffer.alloc(64 << 20));
  const r = reader(bomb, 1024);
  refused(() => all(inflateChunks(r.read, 0, 3 << 20, 'bomb')), /more than its declared/);
  assert.ok(r.calls * 1024 < bomb.length / 4, `${r.calls} reads of 1 KiB for ${bomb.length} bytes`);
  refused(() => all(inflateChunks(reader(packed, 4096).read, 0, data.length - 1, 'x')), /more than its declared/);
});

test('shorter than declared, truncated and corrupt streams are E_ARCHIVE; bytes after the stream are not data', () => {
  refused(() => all(inflateChunks(reader(packed, 4096).read, 0, data.length + 1, 'x')), /inflates to 3500000 bytes/);
  refused(() => all(inflateChunks(reader(packed.subarray(0, packed.length >> 1), 4096).read, 0, data.length, 'x')), /inflates to/);
  const bad = Buffer.from(packed);
  bad[200] ^= 0xff;
  bad[201] ^= 0x55;
  refused(() => all(inflateChunks(reader(bad, 4096).read, 0, data.length, 'x')), /corrupt|inflates to/);
  const trailing = Buffer.concat([packed, Buffer.from('the next entry of the pack')]);
  assert.ok(all(inflateChunks(reader(trailing, 1000).read, 0, data.length, 'x')).equals(data));
});

test('a stream abandoned half way leaves other inflates working', () => {
  const gen = inflateChunks(reader(packed, 4096).read, 0, data.length, 'x')!;
  assert.ok(gen.next().value.length > 0);
  const small = Buffer.from('small object\n');
  assert.ok(inflateExact(zlib.deflateSync(small), small.length, 'y').equals(small));
  gen.return(undefined);
  assert.ok(inflateExact(zlib.deflateSync(small), small.length, 'y').equals(small));
  assert.ok(all(inflateChunks(reader(packed, 65536).read, 0, data.length, 'x')).equals(data));
});
