// The dependency rule of docs/ARCHITECTURE.md: each third-party package is imported by one module of ours,
// its private path, which the rest of the code uses; an upgrade or a change of package is then one file.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../helpers/run.ts';

/** Packages whose imports are still spread over several modules (not moved yet), with every module allowed. */
const NOT_YET_PRIVATE = new Set(['commander', 'valibot', 'pino']);

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(path.join(dir, e.name)) : /\.(ts|js)$/.test(e.name) ? [path.join(dir, e.name)] : []);
}

/** The package names a module imports: static, re-exported, dynamic and require(), type-only ones too. */
export function importedPackages(text: string): string[] {
  const found = new Set<string>();
  for (const m of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|\brequire\s*\(\s*)['"]([^'"]+)['"]/g)) {
    const spec = m[1]!;
    if (spec.startsWith('.') || spec.startsWith('/') || spec.startsWith('node:')) continue;
    const parts = spec.split('/');
    found.add(spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!);
  }
  return [...found];
}

function importers(): Map<string, string[]> {
  const deps = Object.keys((JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies);
  const by = new Map<string, string[]>(deps.map((d) => [d, []]));
  for (const dir of ['src', 'bench']) {
    for (const file of sources(path.join(ROOT, dir))) {
      for (const pkg of importedPackages(readFileSync(file, 'utf8'))) by.get(pkg)?.push(path.relative(ROOT, file));
    }
  }
  return by;
}

test('the import scanner sees every form of import (so the rule below can fail)', () => {
  assert.deepEqual(importedPackages(`import { request } from 'undici';`), ['undici']);
  assert.deepEqual(importedPackages(`import type { Dispatcher } from "undici";`), ['undici']);
  assert.deepEqual(importedPackages(`export { Agent } from 'undici';`), ['undici']);
  assert.deepEqual(importedPackages(`const u = await import('undici/lib/api/index.js');`), ['undici']);
  assert.deepEqual(importedPackages(`import 'undici';`), ['undici']);
  assert.deepEqual(importedPackages(`const x = require('@fastify/cookie/plugin');`), ['@fastify/cookie']);
  assert.deepEqual(importedPackages(`import a from './undici.ts'; import b from 'node:http';`), []);
});

test('undici is imported only by src/net/undici.ts', () => {
  assert.deepEqual(importers().get('undici'), ['src/net/undici.ts']);
});

test('every other dependency has one private module in src/ and bench/ (those not moved yet excepted)', () => {
  const spread = [...importers()].filter(([pkg, files]) => files.length > 1 && !NOT_YET_PRIVATE.has(pkg));
  assert.deepEqual(spread, []);
});
