// Property tests: random inputs built to stress the matcher (literals from small and full alphabets,
// copies of earlier bytes at random distances, runs, zeros, sizes around the window boundaries), at
// random levels, must compress exactly as GNU gzip and zlib 1.2.13 do. Runs are bounded to keep the
// default suite fast; the slow suite covers large inputs.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { deflateSync } from '../../../src/archive/deflate/index.ts';
import { randomBytes, text } from './corpus.ts';
import { gzipFile, sameBytesMessage, zlibFiles } from './reference-tools.ts';

type Op =
  | { kind: 'bytes'; bytes: Uint8Array }
  | { kind: 'copy'; back: number; length: number }
  | { kind: 'run'; byte: number; length: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('bytes' as const), bytes: fc.uint8Array({ maxLength: 300 }) }),
  fc.record({
    kind: fc.constant('bytes' as const),
    bytes: fc.array(fc.constantFrom(0, 0x61, 0x62, 0x63), { maxLength: 400 }).map((a) => Uint8Array.from(a)),
  }),
  fc.record({ kind: fc.constant('copy' as const), back: fc.integer({ min: 1, max: 40_000 }), length: fc.integer({ min: 1, max: 600 }) }),
  fc.record({ kind: fc.constant('run' as const), byte: fc.constantFrom(0, 0x20, 0xff), length: fc.integer({ min: 1, max: 3000 }) }),
);

/** Sizes of a generated prefix: none, or enough to put the interesting tail near a window boundary. */
const prefixSize = fc.oneof(
  fc.constant(0),
  fc.integer({ min: 0, max: 2_000 }),
  fc.integer({ min: 31_000, max: 33_000 }),
  fc.integer({ min: 64_000, max: 66_000 }),
  fc.integer({ min: 96_000, max: 99_000 }),
);

const input = fc.record({ prefix: prefixSize, seed: fc.integer(), ops: fc.array(op, { maxLength: 40 }) }).map(({ prefix, seed, ops }) => {
  const parts: number[] = [...(seed & 1 ? text(seed, prefix) : randomBytes(seed, prefix))];
  for (const o of ops) {
    if (o.kind === 'bytes') parts.push(...o.bytes);
    else if (o.kind === 'run') for (let i = 0; i < o.length; i++) parts.push(o.byte);
    else if (parts.length > 0) {
      const from = Math.max(0, parts.length - o.back);
      for (let i = 0; i < o.length; i++) parts.push(parts[from + i]!);
    }
  }
  return Uint8Array.from(parts);
});

const level = fc.integer({ min: 1, max: 9 });

describe('deflate properties', () => {
  let dir = '';
  let n = 0;
  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'sourcemesh-deflate-prop-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('gzip-n equals gzip -n on random inputs and levels', () => {
    fc.assert(
      fc.property(input, level, (data, lvl) => {
        const file = path.join(dir, `gzip-${n++}`);
        writeFileSync(file, data);
        const msg = sameBytesMessage(deflateSync(data, { flavour: 'gzip-n', level: lvl }), gzipFile(file, lvl), `${data.length} bytes -${lvl}`);
        rmSync(file);
        assert.equal(msg, null);
      }),
      { numRuns: Number(process.env.DEFLATE_PROPERTY_RUNS ?? 300) },
    );
  });

  it('zlib equals zlib 1.2.13 on random inputs and levels', () => {
    // One python3 process per batch: collect the cases, then compare. The seed is in the failure message.
    const seed = Date.now() | 0;
    const cases = fc.sample(fc.tuple(input, level), { numRuns: Number(process.env.DEFLATE_PROPERTY_RUNS ?? 300) / 2, seed });
    const files = cases.map(([data], i) => {
      const file = path.join(dir, `zlib-${i}`);
      writeFileSync(file, data);
      return file;
    });
    const levels = [...new Set(cases.map(([, l]) => l))];
    const reference = zlibFiles(files, levels);
    const failures = cases
      .map(([data, lvl], i) => sameBytesMessage(deflateSync(data, { flavour: 'zlib', level: lvl }), reference(files[i]!, lvl), `case ${i}: ${data.length} bytes level ${lvl}`))
      .filter((m) => m !== null);
    assert.deepEqual(failures, [], `fast-check seed ${seed}`);
  });
});
