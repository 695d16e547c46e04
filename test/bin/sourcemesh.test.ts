// The command's first step: on a Node.js older than package.json's engines.node it says so in one line
// (what is needed, what this is, how to get the right one) and exits 1, instead of an internal error about
// node:sqlite. Tested on the check itself with made-up versions, and on a real older Node when this
// machine has one (Debian's Node 20 here; CI machines too).
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { ROOT } from '../helpers/run.ts';

const BIN = path.join(ROOT, 'bin', 'sourcemesh.js');
const check = (await import(pathToFileURL(path.join(ROOT, 'bin', 'node-version.js')).href)) as {
  requiredMajor(pkg: unknown): number;
  nodeVersionProblem(version: string, major: number): string | undefined;
};
const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));

test('the minimum is package.json engines.node, and the Node the project pins meets it', () => {
  assert.equal(check.requiredMajor(pkg), 24);
  assert.equal(check.requiredMajor({ engines: { node: '>=22.19.0' } }), 22);
  assert.throws(() => check.requiredMajor({ engines: { node: '^24 || ^26' } }), /engines\.node/);
  assert.equal(check.nodeVersionProblem(process.version, check.requiredMajor(pkg)), undefined, `the tests run on ${process.version}`);
  assert.match(pkg.devDependencies.node, /^24\./);
});

test('an older Node gets one line saying what is needed, what it is, and how to get the right one', () => {
  for (const old of ['v20.20.2', 'v22.19.0', 'v23.11.1', 'v18.0.0', 'garbage']) {
    const problem = check.nodeVersionProblem(old, 24);
    assert.ok(problem, old);
    assert.match(problem, new RegExp(`^Node\\.js >= 24 is needed, this is ${old}: run sourcemesh as \`npx sourcemesh\` in the project`));
    assert.doesNotMatch(problem, /\n/);
  }
  for (const good of ['v24.0.0', 'v24.21.0', 'v26.1.0']) assert.equal(check.nodeVersionProblem(good, 24), undefined, good);
});

test('bin/sourcemesh.js on a real older Node: the one line, exit 1, no internal error', (t) => {
  // Every `node` on PATH (and Debian's), except the one running the tests.
  const candidates = new Set<string>(['/usr/bin/node']);
  const which = spawnSync('which', ['-a', 'node'], { encoding: 'utf8', env: { PATH: `/usr/local/bin:/usr/bin:/bin:${process.env.PATH ?? ''}` } });
  for (const line of which.stdout.split('\n')) if (line) candidates.add(line);
  let tried = 0;
  for (const node of candidates) {
    let version: string;
    try {
      version = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
    } catch {
      continue;
    }
    if (check.nodeVersionProblem(version, 24) === undefined) continue;
    tried++;
    t.diagnostic(`ran bin/sourcemesh.js --version with ${node} (${version})`);
    const r = spawnSync(node, [BIN, '--version'], { encoding: 'utf8', env: { PATH: process.env.PATH } });
    assert.equal(r.status, 1, r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, `sourcemesh: error: ${check.nodeVersionProblem(version, 24)} [E_RUNTIME]\n`);
  }
  if (tried === 0) t.diagnostic('no Node older than 24 on this machine: only the check itself was tested');
});
