// The streaming interface: the same bytes whatever the input chunking (the engine waits for full reads,
// so GNU gzip's end-of-input behaviour cannot depend on chunk boundaries), round trips through node:zlib,
// backpressure with a slow consumer, and option validation.
import assert from 'node:assert/strict';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { isSourcemeshError } from '../../../src/errors.ts';
import { createDeflateStream, deflateSync, type DeflateFlavour } from '../../../src/archive/deflate/index.ts';
import { Prng, endOfInput, mixed, randomBytes, text } from './corpus.ts';

function* chunked(data: Uint8Array, sizes: () => number): Generator<Uint8Array> {
  for (let at = 0; at < data.length;) {
    const n = Math.max(1, Math.min(sizes(), data.length - at));
    yield data.subarray(at, at + n);
    at += n;
  }
}

/** Push every chunk into the stream synchronously (no event-loop turn per chunk) and collect the output. */
async function compressChunks(chunks: Iterable<Uint8Array>, flavour: DeflateFlavour, level: number): Promise<Buffer> {
  const stream = createDeflateStream({ flavour, level });
  const out: Buffer[] = [];
  stream.on('data', (b: Buffer) => out.push(b));
  const done = new Promise<void>((resolve, reject) => {
    stream.on('end', resolve);
    stream.on('error', reject);
  });
  for (const c of chunks) stream.write(c);
  stream.end();
  await done;
  return Buffer.concat(out);
}

const INPUTS: [string, Uint8Array][] = [
  ['empty', new Uint8Array(0)],
  ['text-300k', text(1, 300_000)],
  ['random-70k', randomBytes(2, 70_000)],
  ['end-of-input-98200', endOfInput(3, 98_200, 20)],
  ['end-of-input-65400', endOfInput(4, 65_400, 6)],
  ['mixed-1m', mixed(5, 1_000_000)],
];

const PATTERNS: [string, (rng: Prng) => () => number][] = [
  ['7-byte', () => () => 7],
  ['64 KiB', () => () => 65_536],
  ['random 1..100000', (rng) => () => 1 + rng.below(rng.below(4) === 0 ? 100_000 : 3_000)],
  ['one write', () => () => Number.MAX_SAFE_INTEGER],
];

describe('deflate stream', () => {
  for (const flavour of ['gzip-n', 'zlib'] as const) {
    for (const level of [1, 3, 6, 9]) {
      it(`${flavour} -${level}: the same bytes for every chunking`, async () => {
        for (const [name, data] of INPUTS) {
          const expected = deflateSync(data, { flavour, level });
          assert.deepEqual(gunzipSync(expected), Buffer.from(data), `${name}: round trip`);
          for (const [pattern, sizes] of PATTERNS) {
            const got = await compressChunks(chunked(data, sizes(new Prng(data.length))), flavour, level);
            assert.ok(Buffer.compare(got, expected) === 0, `${name} in ${pattern} chunks`);
          }
        }
      });
    }

    it(`${flavour}: 1-byte chunks`, async () => {
      for (const [name, data] of [INPUTS[3]!, ['text-40k', text(6, 40_000)] as [string, Uint8Array]]) {
        const got = await compressChunks(chunked(data, () => 1), flavour, 6);
        assert.ok(Buffer.compare(got, deflateSync(data, { flavour, level: 6 })) === 0, name);
      }
    });
  }

  it('works in a pipeline with a slow consumer, without buffering ahead', async () => {
    const data = mixed(7, 6_000_000);
    const stream = createDeflateStream({ flavour: 'gzip-n', level: 6 });
    let maxBuffered = 0;
    const out: Buffer[] = [];
    const slow = new Writable({
      highWaterMark: 16 * 1024,
      write(chunk: Buffer, _enc, cb) {
        out.push(chunk);
        maxBuffered = Math.max(maxBuffered, stream.readableLength + stream.writableLength);
        setImmediate(cb);
      },
    });
    await pipeline(Readable.from(chunked(data, () => 64 * 1024)), stream, slow);
    assert.ok(Buffer.compare(Buffer.concat(out), deflateSync(data, { flavour: 'gzip-n', level: 6 })) === 0);
    // One 64 KiB input chunk yields at most about one block of output: nothing piles up.
    assert.ok(maxBuffered < 1024 * 1024, `buffered ${maxBuffered} bytes`);
  });

  it('refuses bad options with E_USAGE', () => {
    const bad: unknown[] = [
      { flavour: 'gzip-n', level: 0 }, { flavour: 'gzip-n', level: 10 }, { flavour: 'gzip-n', level: 2.5 },
      { flavour: 'gzip-n', level: '6' }, { flavour: 'pigz' }, {}, null,
    ];
    for (const opts of bad) {
      assert.throws(() => createDeflateStream(opts as never), (e) => isSourcemeshError(e, 'E_USAGE'), JSON.stringify(opts));
      assert.throws(() => deflateSync(new Uint8Array(1), opts as never), (e) => isSourcemeshError(e, 'E_USAGE'));
    }
  });
});
