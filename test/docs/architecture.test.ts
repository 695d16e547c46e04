// docs/ARCHITECTURE.md is the map of the repository (issue 13: the repository stands alone). These checks
// keep the map and the folders in step, so that it cannot rot unnoticed:
//   - every directory under src/ (at any depth) and every .ts file directly in src/ is named by its path;
//   - the top-level folders, every folder directly under test/ and bench/, and every file directly in bin/,
//     bench/, bench/lib/, scripts/ and docs/ are named by their paths;
//   - every path the page names (src/..., test/..., bench/..., bin/..., scripts/..., docs/...) exists;
//   - under a heading that names one src/ directory, every module named bare (`plan.ts`) is in it.
// And nothing in the repository points at notes outside it: no file under src/, test/ (fixtures aside,
// they are copies of other projects), bench/, scripts/, docs/, bin/, nor README.md, mentions them.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { ROOT, tempDir } from '../helpers/run.ts';

const DOC = 'docs/ARCHITECTURE.md';
// Spelled in pieces so that this file does not mention them itself.
const OUTSIDE = [['..', 'shared'].join('/'), ['DESIGN', 'md'].join('.')];
const ROOTS = ['src', 'bin', 'bench', 'scripts', 'test', 'docs'];
// A path as the page writes it: one of ROOTS, a slash, then path characters (a glob stops it).
const PATH_TOKEN = new RegExp(`(?<![\\w./-])((?:${ROOTS.join('|')})/[\\w./-]*)`, 'g');

function listDir(dir: string): { dirs: string[]; files: string[] } {
  const entries = existsSync(dir) ? readdirSync(dir, { withFileTypes: true }) : [];
  return {
    dirs: entries.filter((e) => e.isDirectory()).map((e) => e.name).sort(),
    files: entries.filter((e) => e.isFile()).map((e) => e.name).sort(),
  };
}

/** Directories under `rel` (relative to root), at any depth, each as `rel/.../`. */
function dirsUnder(root: string, rel: string): string[] {
  const out: string[] = [];
  for (const name of listDir(path.join(root, rel)).dirs) {
    out.push(`${rel}/${name}/`, ...dirsUnder(root, `${rel}/${name}`));
  }
  return out;
}

/** The paths a page names, as written (a trailing full stop or comma is punctuation). */
export function namedPaths(doc: string): Set<string> {
  return new Set([...doc.matchAll(PATH_TOKEN)].map((m) => m[1]!.replace(/[.,]+$/, '')));
}

/** Where docs/ARCHITECTURE.md and the folders under `root` disagree, one line each; [] when they agree. */
export function mapProblems(root: string): string[] {
  const doc = readFileSync(path.join(root, DOC), 'utf8');
  const named = namedPaths(doc);
  const problems: string[] = [];
  const mustName = (p: string, what: string) => {
    if (!named.has(p)) problems.push(`${DOC} does not name ${what} ${p}`);
  };
  for (const dir of dirsUnder(root, 'src')) mustName(dir, 'the directory');
  for (const file of listDir(path.join(root, 'src')).files.filter((f) => f.endsWith('.ts'))) mustName(`src/${file}`, 'the file');
  for (const dir of ['src/', 'bin/', 'bench/', 'bench/lib/', 'scripts/', 'test/', 'test/adversarial/', 'test/helpers/', 'test/fixtures/', 'docs/']) mustName(dir, 'the directory');
  for (const parent of ['test', 'bench']) for (const dir of listDir(path.join(root, parent)).dirs) mustName(`${parent}/${dir}/`, 'the directory');
  for (const parent of ['bin', 'bench', 'bench/lib', 'scripts', 'docs']) for (const file of listDir(path.join(root, parent)).files) mustName(`${parent}/${file}`, 'the file');

  for (const p of named) {
    const where = path.join(root, p.replace(/\/+$/, ''));
    if (!existsSync(where)) problems.push(`${DOC} names ${p}, which does not exist`);
    else if (p.endsWith('/') && !statSync(where).isDirectory()) problems.push(`${DOC} names ${p} as a directory, which it is not`);
  }

  // Under "### `src/fetch/`", a bare `plan.ts` means src/fetch/plan.ts.
  let section: string | undefined;
  for (const line of doc.split('\n')) {
    if (/^#{1,6} /.test(line)) {
      const dirs = [...namedPaths(line)].filter((p) => p.startsWith('src/') && p.endsWith('/') && p !== 'src/');
      section = dirs.length === 1 ? dirs[0] : undefined;
      continue;
    }
    if (section === undefined) continue;
    for (const m of line.matchAll(/`([\w.-]+\.ts)`/g)) {
      if (!existsSync(path.join(root, section, m[1]!))) problems.push(`${DOC} names ${m[1]} under ${section}, which has no such file`);
    }
  }
  return problems;
}

/** Files (relative to `root`) that mention notes kept outside the repository. */
export function outsideReferences(root: string): string[] {
  const found: string[] = [];
  const check = (rel: string) => {
    const text = readFileSync(path.join(root, rel), 'utf8');
    if (OUTSIDE.some((needle) => text.includes(needle))) found.push(rel);
  };
  const walk = (rel: string) => {
    if (rel === 'test/fixtures') return;
    const { dirs, files } = listDir(path.join(root, rel));
    for (const f of files) check(`${rel}/${f}`);
    for (const d of dirs) if (d !== 'node_modules') walk(`${rel}/${d}`);
  };
  for (const dir of ['src', 'test', 'bench', 'scripts', 'docs', 'bin']) walk(dir);
  if (existsSync(path.join(root, 'README.md'))) check('README.md');
  return found.sort();
}

test('docs/ARCHITECTURE.md names every folder of the repository, and every path it names exists', () => {
  assert.deepEqual(mapProblems(ROOT), []);
});

test('no file of the repository points at notes kept outside it', () => {
  assert.deepEqual(outsideReferences(ROOT), []);
});

// The checks above can only pass while the repository is in order; these prove they fail when it is not.

async function miniRepo(root: string, doc: string): Promise<void> {
  for (const dir of ['src/fetch', 'src/trust/log', 'bin', 'bench/lib', 'scripts', 'test/adversarial', 'test/helpers', 'test/fixtures', 'docs']) {
    await mkdir(path.join(root, dir), { recursive: true });
  }
  await writeFile(path.join(root, 'src/limits.ts'), '');
  await writeFile(path.join(root, 'src/fetch/plan.ts'), '');
  await writeFile(path.join(root, DOC), doc);
}

const GOOD_DOC = [
  '# Map',
  '`src/` `bin/` `bench/` `bench/lib/` `scripts/` `test/` `test/adversarial/` `test/helpers/` `test/fixtures/` `docs/`',
  '`src/limits.ts`, `docs/ARCHITECTURE.md`.',
  '### `src/fetch/`',
  '- `plan.ts`: source order.',
  '### `src/trust/` and `src/trust/log/`',
  '- `checkpoint.ts` (two directories in the heading: bare names are not checked)',
  '',
].join('\n');

test('mapProblems: a mini repository in order has none; a missing directory, file or module, or a stale path, is reported', async (t) => {
  const root = await tempDir(t, 'sourcemesh-doc-map-');
  await miniRepo(root, GOOD_DOC);
  assert.deepEqual(mapProblems(root), []);

  await mkdir(path.join(root, 'src/net'));
  await writeFile(path.join(root, 'src/version.ts'), '');
  await writeFile(path.join(root, 'scripts/demo.ts'), '');
  await mkdir(path.join(root, 'test/docs'));
  assert.deepEqual(mapProblems(root).sort(), [
    `${DOC} does not name the directory src/net/`,
    `${DOC} does not name the directory test/docs/`,
    `${DOC} does not name the file scripts/demo.ts`,
    `${DOC} does not name the file src/version.ts`,
  ]);

  await writeFile(path.join(root, DOC), GOOD_DOC.replace('- `plan.ts`', '- `plan.ts`, `gone.ts`, `src/fetch/old.ts`, `src/limits.ts/`')
    + '`src/net/` `src/version.ts` `scripts/demo.ts` `test/docs/`\n');
  assert.deepEqual(mapProblems(root).sort(), [
    `${DOC} names gone.ts under src/fetch/, which has no such file`,
    `${DOC} names src/fetch/old.ts, which does not exist`,
    `${DOC} names src/limits.ts/ as a directory, which it is not`,
  ]);
});

test('outsideReferences: a mention in src, test, docs or README is found; fixtures are left alone', async (t) => {
  const root = await tempDir(t, 'sourcemesh-doc-refs-');
  await miniRepo(root, GOOD_DOC);
  assert.deepEqual(outsideReferences(root), []);
  await writeFile(path.join(root, 'src/fetch/plan.ts'), `// see ${OUTSIDE[0]}/notes\n`);
  await writeFile(path.join(root, 'test/helpers/x.ts'), `// ${OUTSIDE[1]}, "Layout"\n`);
  await writeFile(path.join(root, 'test/fixtures/upstream.txt'), `${OUTSIDE[1]} of another project\n`);
  await writeFile(path.join(root, 'README.md'), `The notes are in ${OUTSIDE[0]}.\n`);
  assert.deepEqual(outsideReferences(root), ['README.md', 'src/fetch/plan.ts', 'test/helpers/x.ts']);
});
