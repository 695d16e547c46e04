// The real compressors our deflate must match: GNU gzip (`gzip -n`) and canonical zlib 1.2.13 through
// python3's zlib module. Inputs go to them as regular files: GNU gzip's output can depend on how its
// reads are split near the end of input, and a regular file gives full reads, the case we reproduce.

import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const MAX_BUFFER = 1 << 30;

function probe(cmd: string, args: string[]): string | null {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

/** First line of `gzip --version` when GNU gzip is installed, else null. */
export const GZIP_VERSION = probe('gzip', ['--version'])?.split('\n')[0] ?? null;
export const HAVE_GNU_GZIP = GZIP_VERSION !== null && /^gzip 1\.(1[0-9]|[5-9])\b/.test(GZIP_VERSION);
/** zlib version python3 runs with; the zlib flavour reproduces 1.2.13. */
export const PYTHON_ZLIB_VERSION = probe('python3', ['-c', 'import zlib; print(zlib.ZLIB_RUNTIME_VERSION)']);
export const HAVE_ZLIB_1213 = PYTHON_ZLIB_VERSION === '1.2.13';
export const HAVE_GIT = probe('git', ['--version']) !== null;

/** Differential tests never skip: without the reference tools they fail, saying what to install. */
export function requireReferenceTools(): void {
  if (!HAVE_GNU_GZIP) throw new Error(`GNU gzip 1.5 or later is needed (found ${GZIP_VERSION ?? 'none'}): apt-get install gzip`);
  if (!HAVE_ZLIB_1213) throw new Error(`python3 with zlib 1.2.13 is needed (found ${PYTHON_ZLIB_VERSION ?? 'no python3'}): apt-get install python3 zlib1g`);
  if (!HAVE_GIT) throw new Error('git is needed: apt-get install git');
}

/** `gzip -n -LEVEL < file`. */
export function gzipFile(file: string, level: number): Buffer {
  const fd = openSync(file, 'r');
  try {
    const r = spawnSync('gzip', ['-n', `-${level}`, '-c'], { stdio: [fd, 'pipe', 'pipe'], maxBuffer: MAX_BUFFER });
    if (r.status !== 0) throw new Error(`gzip -${level} ${file} failed: ${String(r.stderr)}`);
    return r.stdout;
  } finally {
    closeSync(fd);
  }
}

const PY_COMPRESS_FILES = `
import sys, zlib
levels = [int(x) for x in sys.argv[1].split(',')]
for path in sys.argv[2:]:
    with open(path, 'rb') as f:
        data = f.read()
    for level in levels:
        c = zlib.compressobj(level, zlib.DEFLATED, 31)  # wbits 31: gzip wrapper; memLevel 8 by default
        with open('%s.%d.zlib.gz' % (path, level), 'wb') as out:
            out.write(c.compress(data) + c.flush())
`;

/** zlib 1.2.13 gzip streams of each file at each level, from one python3 process. */
export function zlibFiles(files: string[], levels: number[]): (file: string, level: number) => Buffer {
  const r = spawnSync('python3', ['-c', PY_COMPRESS_FILES, levels.join(','), ...files], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`python3 zlib failed: ${r.stderr}`);
  return (file, level) => readFileSync(`${file}.${level}.zlib.gz`);
}

/** The python3 program that gzips stdin to stdout with zlib, in 1 MiB reads (for streams too big to hold). */
export function zlibStreamArgs(level: number): string[] {
  return ['-c', `
import sys, zlib
c = zlib.compressobj(${level}, zlib.DEFLATED, 31)
read, write = sys.stdin.buffer.read, sys.stdout.buffer.write
while True:
    chunk = read(1 << 20)
    if not chunk:
        break
    write(c.compress(chunk))
write(c.flush())
`];
}

/**
 * `git archive --format=tar` of a small repository built here with the real git: text and binary files,
 * an executable, a symlink, nested directories, fixed dates so the bytes are the same on every run.
 */
export function gitArchiveTar(dir: string): Buffer {
  const env = {
    ...process.env,
    GIT_AUTHOR_NAME: 'A U Thor', GIT_AUTHOR_EMAIL: 'author@example.org', GIT_AUTHOR_DATE: '2020-01-01T00:00:00Z',
    GIT_COMMITTER_NAME: 'C O Mitter', GIT_COMMITTER_EMAIL: 'committer@example.org', GIT_COMMITTER_DATE: '2020-01-01T00:00:00Z',
    GIT_CONFIG_NOSYSTEM: '1', HOME: dir,
  };
  const git = (...args: string[]) => {
    const r = spawnSync('git', args, { cwd: dir, env, maxBuffer: MAX_BUFFER });
    if (r.status !== 0) throw new Error(`git ${args.join(' ')} failed: ${String(r.stderr)}`);
    return r.stdout;
  };
  git('init', '-q', '-b', 'main');
  const files: Record<string, string | Uint8Array> = {
    'README.md': '# demo\n\nA small project for the deflate tests.\n'.repeat(20),
    'src/main.c': '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n'.repeat(300),
    'src/util/strings.c': Array.from({ length: 2000 }, (_, i) => `static int f${i}(int x) { return x * ${i}; }\n`).join(''),
    'data/blob.bin': Uint8Array.from({ length: 70_000 }, (_, i) => (i * 2654435761) >>> 24),
    'data/empty': '',
    'run.sh': '#!/bin/sh\nexec ./main "$@"\n',
  };
  for (const [name, body] of Object.entries(files)) {
    const p = path.join(dir, name);
    spawnSync('mkdir', ['-p', path.dirname(p)]);
    writeFileSync(p, body);
  }
  spawnSync('chmod', ['+x', path.join(dir, 'run.sh')]);
  spawnSync('ln', ['-s', 'src/main.c', path.join(dir, 'link')]);
  git('add', '-A');
  git('commit', '-q', '-m', 'initial');
  return git('archive', '--format=tar', '--prefix=demo-1.0/', 'HEAD');
}

/** Byte equality with a short message (offset of the first difference) instead of a huge diff. */
export function sameBytesMessage(actual: Uint8Array, expected: Uint8Array, label: string): string | null {
  if (Buffer.compare(actual, expected) === 0) return null;
  let at = 0;
  while (at < actual.length && at < expected.length && actual[at] === expected[at]) at++;
  return `${label}: ${actual.length} bytes vs ${expected.length} expected, first difference at offset ${at}`;
}
