// Differential test of attribute matching against `git check-attr --cached` (which reads .gitattributes from
// the index, as `git archive` does): random patterns (globs, "**", brackets, classes, escapes, anchors,
// directory-only), random paths (files and directories), nested attribute files, macros, and every kind of
// attribute state. Also unit cases for wildmatch.

import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import fc from 'fast-check';
import { parseAttributes, type AttrValue } from '../../src/archive/attributes/parse.ts';
import { AttributeRules, type AttrFrame } from '../../src/archive/attributes/stack.ts';
import { wildmatch } from '../../src/archive/attributes/wildmatch.ts';
import { git, initRepo, tempRoot } from './git-fixture.ts';

const root = tempRoot();
after(() => rmSync(root, { recursive: true, force: true }));

describe('wildmatch', () => {
  const cases: [string, string, boolean, boolean][] = [
    ['*', 'a/b', true, false], ['*', 'a/b', false, true], ['a/**', 'a/b/c', true, true], ['**/c', 'c', true, true],
    ['a/**/b', 'a/b', true, true], ['a/**/b', 'a/x/y/b', true, true], ['a**b', 'axb', true, true], ['a**b', 'a/b', true, false],
    ['[!a]', 'b', true, true], ['[^a]', 'a', true, false], ['[]]', ']', true, true], ['[a-c]', 'b', true, true],
    ['[[:alpha:]]', 'x', true, true], ['[[:digit:]]', 'x', true, false], ['[[:bogus:]]', 'x', true, false], ['[ab', 'a', true, false],
    ['\\*', '*', true, true], ['\\*', 'x', true, false], ['a\\', 'a', true, false], ['?', '/', true, false], ['[/]', '/', true, false],
    ['*a*a*a*a*a*a*a*a*a*b', 'a'.repeat(60), true, false],
  ];
  for (const [p, t, pathname, expected] of cases) {
    test(`${JSON.stringify(p)} ${pathname ? 'with' : 'without'} pathname vs ${JSON.stringify(t)}: ${expected}`, () => {
      assert.equal(wildmatch(p, t, pathname), expected);
    });
  }
});

const PATTERN_TOKENS = ['a', 'b', 'c', 'ab', '.', '-', '/', '*', '**', '?', '[ab]', '[!a]', '[^b]', '[a-c]', '[]a]', '[[:alpha:]]', '[[:digit:]]', '[[:lower:]b]', '\\a', '\\*', '[', '**/', '/**'];
const NAME_TOKENS = ['a', 'b', 'c', 'ab', 'ba', 'abc', '.a', '1', 'a.b', 'a-b', '*'];

const pattern = fc.tuple(
  fc.constantFrom('', '/', '**/'),
  fc.array(fc.constantFrom(...PATTERN_TOKENS), { minLength: 1, maxLength: 5 }),
  fc.constantFrom('', '', '/'),
).map(([lead, body, trail]) => lead + body.join('') + trail).filter((p) => !p.startsWith('!') && !p.startsWith('#') && p !== '/');

const pathArb = fc.tuple(fc.array(fc.constantFrom(...NAME_TOKENS), { minLength: 1, maxLength: 4 }), fc.boolean())
  .map(([parts, dir]) => ({ path: parts.join('/'), dir }));

const stateArb = (i: number) => fc.constantFrom(`a${i}`, `-a${i}`, `!a${i}`, `a${i}=v${i}`, 'm0', 'm1', 'binary', 'text', '-text');

const fileArb = fc.array(fc.tuple(pattern, fc.nat(7)).chain(([p, i]) => fc.array(stateArb(i), { minLength: 1, maxLength: 3 }).map((s) => `${p} ${s.join(' ')}`)), { maxLength: 10 });

describe('attribute lookups agree with git check-attr', () => {
  let run = 0;
  test('random attribute files and paths', () => {
    fc.assert(fc.property(fileArb, fileArb, fc.array(pathArb, { minLength: 1, maxLength: 25 }), (rootLines, subLines, paths) => {
      const dir = path.join(root, `run-${run++}`);
      initRepo(dir);
      const rootText = ['[attr]m0 a1 -a2 a3=x', '[attr]m1 m0 !a1 text', ...rootLines].join('\n') + '\n';
      const subText = ['[attr]m2 a4', ...subLines].join('\n') + '\n';
      writeFileSync(path.join(dir, '.gitattributes'), rootText);
      mkdirSync(path.join(dir, 'a'), { recursive: true });
      writeFileSync(path.join(dir, 'a', '.gitattributes'), subText);
      git(dir, ['add', '.gitattributes', 'a/.gitattributes']);
      const queries = paths.map((p) => (p.dir ? `${p.path}/` : p.path));
      const out = git(dir, ['check-attr', '--cached', '-z', '--stdin', '-a'], { input: queries.join('\0') + '\0' }).toString('latin1').split('\0');
      const theirs = new Map<string, Map<string, string>>();
      for (const q of queries) theirs.set(q, new Map());
      for (let i = 0; i + 2 < out.length; i += 3) theirs.get(out[i]!)?.set(out[i + 1]!, out[i + 2]!);

      const rules = new AttributeRules(parseAttributes(Buffer.from(rootText, 'latin1'), true), null);
      const rootFrame: AttrFrame = { base: '', rules: parseAttributes(Buffer.from(rootText, 'latin1'), true) };
      const subFrame: AttrFrame = { base: 'a', rules: parseAttributes(Buffer.from(subText, 'latin1'), false) };
      for (const p of paths) {
        const q = p.dir ? `${p.path}/` : p.path;
        // The path's own directory decides which files apply: "a/..." below a/, and a directory "a" itself
        // only sees the root file.
        const frames = p.path.startsWith('a/') ? [rootFrame, subFrame] : [rootFrame];
        const ours = new Map<string, string>();
        for (const [k, v] of rules.lookup(frames, p.path, p.dir)) {
          if (v === null) continue; // check-attr -a lists only specified attributes
          ours.set(k, v === true ? 'set' : v === false ? 'unset' : (v as Exclude<AttrValue, boolean | null>));
        }
        assert.deepEqual(Object.fromEntries([...ours].sort()), Object.fromEntries([...theirs.get(q)!].sort()), `path ${q}\nroot:\n${rootText}\na/:\n${subText}`);
      }
      rmSync(dir, { recursive: true, force: true });
    }), { numRuns: 40, seed: 20240601 });
  });
});
