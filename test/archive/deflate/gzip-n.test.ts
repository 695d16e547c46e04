// Differential test: our gzip-n flavour against the real GNU gzip (`gzip -n -LEVEL`), levels 1 to 9, on
// the generated corpus (boundary sizes, random, zeros, repetitive, text, binary, tars).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { deflateSync } from '../../../src/archive/deflate/index.ts';
import { defaultCorpus, type CorpusCase } from './corpus.ts';
import { gitArchiveTar, gzipFile, sameBytesMessage, requireReferenceTools } from './reference-tools.ts';

describe('gzip-n: byte-identical to GNU gzip -n', () => {
  let dir = '';
  const cases: (CorpusCase & { file: string })[] = [];

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
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (let level = 1; level <= 9; level++) {
    it(`level ${level}: every corpus case`, () => {
      const failures: string[] = [];
      for (const c of cases) {
        const ours = deflateSync(c.data, { flavour: 'gzip-n', level });
        const msg = sameBytesMessage(ours, gzipFile(c.file, level), `${c.name} -${level}`);
        if (msg) failures.push(msg);
      }
      assert.deepEqual(failures, []);
    });
  }

  it('defaults to level 6', () => {
    const c = cases.find((x) => x.name === 'text-65537')!;
    assert.equal(sameBytesMessage(deflateSync(c.data, { flavour: 'gzip-n' }), gzipFile(c.file, 6), c.name), null);
  });
});
