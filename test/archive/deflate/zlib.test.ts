// Differential test: our zlib flavour against canonical zlib 1.2.13 (python3's zlib module, gzip wrapper,
// memLevel 8: what `git archive --format=tar.gz` writes with Debian's zlib), levels 1 to 9.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { deflateSync } from '../../../src/archive/deflate/index.ts';
import { defaultCorpus, type CorpusCase } from './corpus.ts';
import { gitArchiveTar, sameBytesMessage, zlibFiles, requireReferenceTools } from './reference-tools.ts';

const LEVELS = [1, 2, 3, 4, 5, 6, 7, 8, 9];

describe('zlib: byte-identical to canonical zlib 1.2.13', () => {
  let dir = '';
  const cases: (CorpusCase & { file: string })[] = [];
  let reference: (file: string, level: number) => Buffer = () => Buffer.alloc(0);

  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'sourcemesh-deflate-'));
    const all = defaultCorpus();
    requireReferenceTools();
    const repo = path.join(dir, 'repo');
    mkdirSync(repo);
    all.push({ name: 'git-archive-tar', data: gitArchiveTar(repo) });
    for (const c of all) {
      const file = path.join(dir, c.name);
      writeFileSync(file, c.data);
      cases.push({ ...c, file });
    }
    reference = zlibFiles(cases.map((c) => c.file), LEVELS);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const level of LEVELS) {
    it(`level ${level}: every corpus case`, () => {
      const failures: string[] = [];
      for (const c of cases) {
        const ours = deflateSync(c.data, { flavour: 'zlib', level });
        const msg = sameBytesMessage(ours, reference(c.file, level), `${c.name} level ${level}`);
        if (msg) failures.push(msg);
      }
      assert.deepEqual(failures, []);
    });
  }

  it('writes the header git writes: 1f 8b 08 00, mtime 0, XFL, OS 3', () => {
    assert.deepEqual([...deflateSync(new Uint8Array(0), { flavour: 'zlib', level: 1 }).subarray(0, 10)],
      [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 3]);
    assert.deepEqual([...deflateSync(new Uint8Array(0), { flavour: 'zlib', level: 9 }).subarray(0, 10)],
      [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 3]);
    assert.deepEqual([...deflateSync(new Uint8Array(0), { flavour: 'zlib' }).subarray(0, 10)],
      [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
  });
});
