// Which sourcemesh the benchmarks run. By default the compiled CLI, as `npx sourcemesh` runs it, built
// from the current sources into the benchmark's own directory (the repository's dist/ is left alone):
// running src/ directly makes Node strip types at start-up, which costs a few hundred ms and some
// 35 MiB of RSS that users of the published CLI never pay.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cp, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';

export type CliMode = 'build' | 'src' | 'dist';

export interface Cli {
  /** The command: node and its arguments before the sourcemesh subcommand. */
  argv: string[];
  /** For the report. */
  describe: string;
  warnings: string[];
}

/**
 * `build`: tsc -p tsconfig.build.json into WORK/cli/dist (with a package.json of type module and a
 * node_modules link to the repository's); `src`: node src/cli/main.ts; `dist`: the repository's
 * bin/sourcemesh.js as it is (whatever was last built).
 */
export async function prepareCli(root: string, work: string, mode: CliMode): Promise<Cli> {
  const node = process.execPath;
  const flags = binNodeFlags(root);
  if (mode === 'src') return { argv: [node, path.join(root, 'src/cli/main.ts')], describe: 'node src/cli/main.ts (type stripping at start-up)', warnings: [] };
  if (mode === 'dist') {
    const bin = path.join(root, 'bin/sourcemesh.js');
    if (!existsSync(path.join(root, 'dist/cli/main.js'))) throw new Error('dist/ is not built: run npm run build, or use --cli build');
    return { argv: [node, ...flags, bin], describe: 'bin/sourcemesh.js with the repository\'s dist/ as last built', warnings: [] };
  }
  const dir = path.join(work, 'cli');
  await rm(path.join(dir, 'dist'), { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const tsc = spawnSync(node, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', path.join(root, 'tsconfig.build.json'), '--outDir', path.join(dir, 'dist'), '--sourceMap', 'false'], { encoding: 'utf8', cwd: root });
  const main = path.join(dir, 'dist/cli/main.js');
  const warnings: string[] = [];
  if (tsc.status !== 0) {
    // tsc still emits on type errors; other engineers may be mid-change. Say so rather than stop.
    if (!existsSync(main)) throw new Error(`building the CLI failed:\n${tsc.stdout}${tsc.stderr}`);
    const errors = (tsc.stdout.match(/error TS\d+/g) ?? []).length;
    warnings.push(`the sources have ${errors} type error(s); the benchmark runs what tsc emitted anyway`);
  }
  // Through a copy of bin/ (the Node version check, the compile cache) as `npx sourcemesh` runs it; its
  // version check reads engines.node from the package.json next to it.
  const engines = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')).engines;
  await writeFile(path.join(dir, 'package.json'), `${JSON.stringify({ type: 'module', engines })}\n`);
  await rm(path.join(dir, 'node_modules'), { force: true });
  await symlink(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
  await rm(path.join(dir, 'bin'), { recursive: true, force: true });
  await cp(path.join(root, 'bin'), path.join(dir, 'bin'), { recursive: true });
  return { argv: [node, ...flags, path.join(dir, 'bin/sourcemesh.js')], describe: `the compiled CLI (tsc -p tsconfig.build.json, run by bin/sourcemesh.js as npx sourcemesh runs it${flags.length ? `, with bin/sourcemesh.js's ${flags.join(' ')}` : ''}), built from the current sources`, warnings };
}

/** The Node options bin/sourcemesh.js's `#!/usr/bin/env -S node ...` line gives, so the bench runs what users run. */
export function binNodeFlags(root: string): string[] {
  const first = readFileSync(path.join(root, 'bin/sourcemesh.js'), 'utf8').split('\n', 1)[0]!;
  const m = /^#!\S*env(?: -S)? node((?: --\S+)*)\s*$/.exec(first);
  return m ? m[1]!.split(' ').filter(Boolean) : [];
}
