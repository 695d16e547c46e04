// The first thing the command does: check that this Node.js is one sourcemesh runs on, before anything
// that needs a newer one is loaded (node:sqlite, undici 8), and say in one line what to do otherwise.
// Plain JavaScript that any Node.js with ES modules parses. The minimum is package.json's engines.node,
// read here so that the two never disagree.
import { readFileSync } from 'node:fs';

/** The major version engines.node asks for (">=MAJOR", ">=MAJOR.MINOR" or ">=MAJOR.MINOR.PATCH"). */
export function requiredMajor(packageJson) {
  const m = /^>=\s*(\d+)(?:\.\d+){0,2}$/.exec(String(packageJson && packageJson.engines && packageJson.engines.node || '').trim());
  if (!m) throw new Error(`package.json: engines.node should read ">=MAJOR", not ${JSON.stringify(packageJson && packageJson.engines && packageJson.engines.node)}`);
  return Number(m[1]);
}

/** Why `version` (process.version, "v20.20.2") cannot run sourcemesh, in one line; undefined when it can. */
export function nodeVersionProblem(version, major) {
  const m = /^v?(\d+)\./.exec(version);
  if (m && Number(m[1]) >= major) return undefined;
  return `Node.js >= ${major} is needed, this is ${version}: run sourcemesh as \`npx sourcemesh\` in the project, which uses the Node ${major} that npm ci installs there, or install Node.js ${major} or later`;
}

export function checkNodeVersion() {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  const problem = nodeVersionProblem(process.version, requiredMajor(pkg));
  if (problem) {
    process.stderr.write(`sourcemesh: error: ${problem} [E_RUNTIME]\n`); // docs/ERRORS.md
    process.exit(1);
  }
}
