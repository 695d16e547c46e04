// The layering rule of docs/ARCHITECTURE.md: the CLI is the top layer and nothing imports it (the panel,
// the node and every capability use the modules below it).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../helpers/run.ts';

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []);
}

test('nothing outside src/cli imports src/cli', () => {
  const cli = path.join(ROOT, 'src', 'cli');
  const offenders: string[] = [];
  for (const file of sources(path.join(ROOT, 'src'))) {
    if (file.startsWith(cli + path.sep)) continue;
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:from|import\()\s*['"](\.[^'"]+)['"]/g)) {
      const target = path.resolve(path.dirname(file), m[1]!);
      if (target === cli || target.startsWith(cli + path.sep)) offenders.push(`${path.relative(ROOT, file)} imports ${m[1]}`);
    }
  }
  assert.deepEqual(offenders, []);
});
