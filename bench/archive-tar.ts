// Benchmark: our tar of a commit against `git archive --format=tar`, on the same repository, in the same run.
//
//   node bench/archive-tar.ts [--files N] [--mb MB] [--runs N] [--dir DIR] [--keep]
//
// Builds (once per DIR; default a temporary directory) a deterministic repository of about 20,000 files and
// 200 MB: source-like text, binary and a few large files, with a second commit whose smaller versions of
// 3,000 files git stores as deltas after `git repack -adf`, and a last commit of loose objects. Then, per run,
// streams `git archive --format=tar --prefix P/ HEAD` and our archive (in a child process, so that its peak RSS
// is its own) into sha256 without holding either, checks the digests agree, and prints MB/s, the time ratio
// and our peak RSS. Exits 1 when the bytes differ.

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { archiveTar } from '../src/archive/index.ts';

const SELF = fileURLToPath(import.meta.url);
const MB = 1e6;

export function gitEnv(home: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH, HOME: home, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', LC_ALL: 'C', TZ: 'UTC',
    GIT_AUTHOR_NAME: 'Bench', GIT_AUTHOR_EMAIL: 'bench@example.org', GIT_AUTHOR_DATE: '1700000000 +0000',
    GIT_COMMITTER_NAME: 'Bench', GIT_COMMITTER_EMAIL: 'bench@example.org', GIT_COMMITTER_DATE: '1700000000 +0000',
  };
}

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, input?: AsyncIterable<Buffer> | Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { cwd, env, stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')} exited with ${code}`))));
    if (Buffer.isBuffer(input)) p.stdin.end(input);
    else if (input) {
      (async () => {
        for await (const chunk of input) if (!p.stdin.write(chunk)) await new Promise((r) => p.stdin.once('drain', r));
        p.stdin.end();
      })().catch(reject);
    } else p.stdin.end();
  });
}

/** xorshift32: the same bytes on every machine. */
class Prng {
  private x: number;
  constructor(seed: number) {
    this.x = seed >>> 0 || 1;
  }
  next(): number {
    let x = this.x;
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    this.x = x;
    return x;
  }
  int(n: number): number {
    return this.next() % n;
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i + 4 <= n; i += 4) b.writeUInt32LE(this.next(), i);
    for (let i = n & ~3; i < n; i++) b[i] = this.next() & 0xff;
    return b;
  }
}

const WORDS = ['static', 'int', 'return', 'if', 'else', 'for', 'while', 'struct', 'void', 'char', 'const', 'unsigned', 'size_t', 'buffer', 'length',
  'error', 'result', 'value', 'index', 'count', 'node', 'list', 'table', 'hash', 'read', 'write', 'open', 'close', '{', '}', '(', ')', ';', '=', '+', '->', '0', '1', 'NULL'];

function sourceText(rng: Prng, lines: number): string {
  const out: string[] = [];
  for (let i = 0; i < lines; i++) {
    const indent = '    '.repeat(rng.int(4));
    const n = 3 + rng.int(9);
    const words: string[] = [];
    for (let w = 0; w < n; w++) words.push(WORDS[rng.int(WORDS.length)]!);
    out.push(indent + words.join(' '));
  }
  return out.join('\n') + '\n';
}

export interface Layout {
  files: number;
  bytes: number;
}

/** The repository, built with git fast-import then repacked, plus a commit of loose objects. */
export async function buildRepo(dir: string, layout: Layout): Promise<void> {
  const env = gitEnv(dir);
  const repo = path.join(dir, 'repo.git');
  await run('git', ['-c', 'init.defaultBranch=main', 'init', '-q', '--bare', repo], dir, env);
  const rng = new Prng(20240601);
  const textFiles = Math.round(layout.files * 0.8);
  const binFiles = layout.files - textFiles - 50;
  // Sizes scaled so that the total is about layout.bytes: text 45%, binary 35%, 50 large files 20%.
  const textAvg = (layout.bytes * 0.45) / textFiles;
  const binAvg = (layout.bytes * 0.35) / binFiles;
  const largeAvg = (layout.bytes * 0.2) / 50;
  const paths: string[] = [];
  const texts: string[] = [];

  async function* stream(): AsyncGenerator<Buffer> {
    let mark = 0;
    const blob = (data: Buffer) => {
      mark++;
      return Buffer.concat([Buffer.from(`blob\nmark :${mark}\ndata ${data.length}\n`), data, Buffer.from('\n')]);
    };
    const entries: string[] = [];
    const batch: Buffer[] = [];
    const flush = function* () {
      if (batch.length) yield Buffer.concat(batch.splice(0));
    };
    for (let i = 0; i < textFiles; i++) {
      const p = `src/mod${i % 97}/sub${i % 13}/file${i}.${['c', 'h', 'txt', 'md'][i % 4]}`;
      const t = sourceText(rng, Math.max(1, Math.round((textAvg / 40) * (0.3 + rng.int(140) / 100))));
      paths.push(p);
      texts.push(t);
      batch.push(blob(Buffer.from(t)));
      entries.push(`M 100644 :${mark} ${p}`);
      if (batch.length >= 256) yield* flush();
    }
    for (let i = 0; i < binFiles; i++) {
      const size = Math.max(1, Math.round(binAvg * (0.2 + rng.int(160) / 100)));
      // Half random, half structured (compressible) binary.
      const data = i % 2 ? rng.bytes(size) : Buffer.from(rng.bytes(Math.ceil(size / 16)).toString('hex').repeat(8).slice(0, size));
      batch.push(blob(data));
      entries.push(`M ${i % 10 === 0 ? '100755' : '100644'} :${mark} assets/bin${i % 31}/data${i}.bin`);
      if (batch.length >= 64) yield* flush();
    }
    for (let i = 0; i < 50; i++) {
      batch.push(blob(i % 2 ? rng.bytes(Math.round(largeAvg)) : Buffer.from(sourceText(rng, Math.round(largeAvg / 40)))));
      entries.push(`M 100644 :${mark} large/big${i}.${i % 2 ? 'bin' : 'txt'}`);
      yield* flush();
    }
    entries.push('M 120000 inline link-to-readme', 'data 6', 'README');
    yield* flush();
    const msg = 'initial import\n';
    const first = ++mark;
    yield Buffer.from(`commit refs/heads/main\nmark :${first}\nauthor Bench <bench@example.org> 1700000000 +0000\ncommitter Bench <bench@example.org> 1700000000 +0000\ndata ${msg.length}\n${msg}${entries.join('\n')}\n\n`);
    // Second commit: 3,000 text files lose a line, so their new (smaller) versions become deltas.
    const changes: string[] = [];
    for (let k = 0; k < Math.min(3000, textFiles); k++) {
      const i = (k * 7919) % textFiles;
      const t = texts[i]!;
      const cut = t.indexOf('\n', Math.floor(t.length / 2));
      const shorter = cut > 0 ? t.slice(0, Math.floor(t.length / 2)) + t.slice(cut + 1) : t + 'x\n';
      texts[i] = shorter;
      batch.push(blob(Buffer.from(shorter)));
      changes.push(`M 100644 :${mark} ${paths[i]}`);
      if (batch.length >= 256) yield* flush();
    }
    yield* flush();
    // Attributes as a project might have them: a version file with export-subst, CRLF for some documents.
    const attrs = Buffer.from('VERSION export-subst\nsrc/mod1*/**/*.md eol=crlf\n');
    batch.push(blob(attrs));
    changes.push(`M 100644 :${mark} .gitattributes`);
    batch.push(blob(Buffer.from('commit $Format:%H$ (%h) $Format:%h %t %ci %s$\n')));
    changes.push(`M 100644 :${mark} VERSION`);
    yield* flush();
    const msg2 = 'trim files\n';
    yield Buffer.from(`commit refs/heads/main\nmark :${++mark}\nauthor Bench <bench@example.org> 1700003600 +0000\ncommitter Bench <bench@example.org> 1700003600 +0000\ndata ${msg2.length}\n${msg2}from :${first}\n${changes.join('\n')}\n\n`);
  }

  process.stdout.write('  git fast-import ...\n');
  await run('git', ['fast-import', '--quiet'], repo, env, stream());
  process.stdout.write('  git repack -adf (deltas) ...\n');
  await run('git', ['repack', '-adfq', '--window=10', '--depth=50'], repo, env);
  // A last commit whose objects stay loose.
  process.stdout.write('  loose commit ...\n');
  const index = path.join(dir, 'index.tmp');
  const ienv = { ...env, GIT_INDEX_FILE: index };
  await run('git', ['read-tree', 'main'], repo, ienv);
  const looseDir = path.join(dir, 'loose');
  mkdirSync(looseDir, { recursive: true });
  const infos: string[] = [];
  for (let k = 0; k < 200; k++) {
    const i = (k * 104729) % textFiles;
    const f = path.join(looseDir, `f${k}`);
    writeFileSync(f, texts[i] + `loose edit ${k}\n`);
    const oid = (await run('git', ['hash-object', '-w', f], repo, env)).trim();
    infos.push(`100644 ${oid}\t${paths[i]}`);
  }
  await run('git', ['update-index', '--index-info'], repo, ienv, Buffer.from(infos.join('\n') + '\n'));
  const tree = (await run('git', ['write-tree'], repo, ienv)).trim();
  const commit = (await run('git', ['commit-tree', tree, '-p', 'main', '-m', 'loose edits'], repo, { ...env, GIT_AUTHOR_DATE: '1700007200 +0000', GIT_COMMITTER_DATE: '1700007200 +0000' })).trim();
  await run('git', ['update-ref', 'refs/heads/main', commit], repo, env);
  rmSync(index, { force: true });
  rmSync(looseDir, { recursive: true, force: true });
  writeFileSync(path.join(dir, 'ready'), JSON.stringify(layout));
}

export interface HistoryLayout {
  /** Files in the first commit (about 86% text, the rest binary). */
  files: number;
  commits: number;
}

/** The ref of the history-rich repository's commit from the first tenth of its history. */
export const HISTORY_EARLY_REF = 'refs/tags/early';

/**
 * A history-rich repository, like a long-lived project's (gnulib's): `layout.commits` commits of small edits
 * (a line changed, inserted or removed in a text file, a few bytes of a binary one) over about
 * `layout.files` files in a few large directories, a ChangeLog that grows with every commit and is rotated
 * to ChangeLog-N now and then, a rename every 40 commits, a file added every 60 and removed every 90; then
 * `git gc --aggressive` (window 250, depth 50), which leaves the old versions at the deep end of long delta
 * chains. One `git fast-import` reads a generated stream (no process per commit). HISTORY_EARLY_REF names
 * the commit at a tenth of the history. Deterministic: the same bytes on every machine.
 */
export async function buildHistoryRepo(dir: string, layout: HistoryLayout): Promise<void> {
  const env = gitEnv(dir);
  const repo = path.join(dir, 'repo.git');
  await run('git', ['-c', 'init.defaultBranch=main', 'init', '-q', '--bare', repo], dir, env);
  const rng = new Prng(20240817);
  // Directory shares as in gnulib: lib/, modules/, m4/, tests/ (with binary test data), doc/.
  const dirs: [string, number, 'text' | 'bin'][] = [
    ['lib', 0.24, 'text'], ['modules', 0.24, 'text'], ['m4', 0.1, 'text'], ['tests', 0.22, 'text'], ['doc', 0.06, 'text'], ['tests/data', 0.14, 'bin'],
  ];
  const paths: string[] = [];
  const contents: (string | Buffer)[] = [];
  const binary = (size: number, i: number) => (i % 2 ? rng.bytes(size) : Buffer.from(rng.bytes(Math.ceil(size / 16)).toString('hex').repeat(8).slice(0, size)));
  for (const [d, share, kind] of dirs) {
    const n = Math.round(layout.files * share);
    for (let i = 0; i < n; i++) {
      paths.push(`${d}/${kind === 'bin' ? `blob${i}.bin` : `${d.replace('/', '-')}-${i}.${['c', 'h', 'm4', 'texi'][i % 4]}`}`);
      // Text: 10 to 250 lines (about 0.4 to 10 KB); binary: 256 B to 24 KiB.
      contents.push(kind === 'bin' ? binary(256 + rng.int(24 * 1024), i) : sourceText(rng, 10 + rng.int(240)));
    }
  }
  const live = new Set(paths.keys());
  let changeLog = '';
  let rotated = 0;
  const ident = (t: number) => `Bench <bench@example.org> ${t} +0000`;
  const inline = (p: string, data: Buffer | string, mode = '100644') => {
    const b = typeof data === 'string' ? Buffer.from(data) : data;
    return [Buffer.from(`M ${mode} inline ${p}\ndata ${b.length}\n`), b, Buffer.from('\n')];
  };
  const early = Math.max(1, Math.floor(layout.commits / 10));

  async function* stream(): AsyncGenerator<Buffer> {
    for (let c = 1; c <= layout.commits; c++) {
      const t = 1600000000 + c * 3600;
      const parts: Buffer[] = [];
      const msg = `change ${c}\n`;
      parts.push(Buffer.from(`commit refs/heads/main\nmark :${c}\nauthor ${ident(t)}\ncommitter ${ident(t)}\ndata ${msg.length}\n${msg}`));
      if (c === 1) {
        for (const i of live) parts.push(...inline(paths[i]!, contents[i]!));
        parts.push(...inline('link-to-readme', 'README', '120000'));
      } else {
        parts.push(Buffer.from(`from :${c - 1}\n`));
        const ids = [...live];
        for (let k = 1 + rng.int(3); k > 0; k--) {
          const i = ids[rng.int(ids.length)]!;
          const old = contents[i]!;
          if (typeof old === 'string') {
            const lines = old.split('\n');
            const at = rng.int(lines.length);
            const op = rng.int(3);
            if (op === 0 && lines.length > 2) lines.splice(at, 1);
            else lines.splice(at, op === 1 ? 1 : 0, sourceText(rng, 1).slice(0, -1));
            contents[i] = lines.join('\n');
          } else {
            const b = Buffer.from(old);
            const at = rng.int(Math.max(1, b.length - 64));
            rng.bytes(Math.min(64, b.length - at)).copy(b, at);
            contents[i] = b;
          }
          parts.push(...inline(paths[i]!, contents[i]!));
        }
        if (c % 40 === 0) {
          const i = ids[rng.int(ids.length)]!;
          const to = paths[i]!.replace(/([^/]*)$/, `r${c}-$1`);
          parts.push(Buffer.from(`R ${paths[i]} ${to}\n`));
          paths[i] = to;
        }
        if (c % 60 === 0) {
          const i = paths.length;
          paths.push(`lib/new-${c}.c`);
          contents.push(sourceText(rng, 20 + rng.int(100)));
          live.add(i);
          parts.push(...inline(paths[i]!, contents[i]!));
        }
        if (c % 90 === 0) {
          const i = ids[rng.int(ids.length)]!;
          live.delete(i);
          parts.push(Buffer.from(`D ${paths[i]}\n`));
        }
      }
      // gnulib-style ChangeLog: a new entry on top in every commit, rotated away at about 120 KB.
      if (changeLog.length > 120_000) {
        parts.push(Buffer.from(`R ChangeLog ChangeLog-${++rotated}\n`));
        changeLog = '';
      }
      changeLog = `2020-01-01  Bench  <bench@example.org>\n\n\t* change ${c}: ${sourceText(rng, 1)}\n` + changeLog;
      parts.push(...inline('ChangeLog', changeLog));
      parts.push(Buffer.from('\n'));
      if (c === early) parts.push(Buffer.from(`reset ${HISTORY_EARLY_REF}\nfrom :${c}\n\n`));
      yield Buffer.concat(parts);
    }
  }

  process.stdout.write(`  git fast-import (${layout.commits} commits) ...\n`);
  await run('git', ['fast-import', '--quiet'], repo, env, stream());
  process.stdout.write('  git gc --aggressive ...\n');
  await run('git', ['gc', '--aggressive', '--prune=now', '--quiet'], repo, env);
  writeFileSync(path.join(dir, 'ready'), JSON.stringify(layout));
}

interface Result {
  seconds: number;
  bytes: number;
  sha256: string;
  maxRssBytes?: number;
}

/** Child mode: our archive to stdout (the parent hashes it, as it hashes git's); time and peak RSS on fd 3. */
async function child(repo: string): Promise<void> {
  const start = process.hrtime.bigint();
  const out = Readable.from(archiveTar({ repoPath: repo, ref: 'HEAD', prefix: 'P/' }));
  await pipeline(out, process.stdout);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  writeSync(3, JSON.stringify({ seconds, maxRssBytes: process.resourceUsage().maxRSS * 1024 }) + '\n');
}

/** Run a command and hash its stdout as it arrives; `stats` reads a JSON line from the child's fd 3. */
function timeHashed(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, stats: boolean): Promise<Result & { wall: number }> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const p = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'inherit', stats ? 'pipe' : 'ignore'] });
    const hash = createHash('sha256');
    let bytes = 0;
    let extra = '';
    p.stdout!.on('data', (d: Buffer) => {
      hash.update(d);
      bytes += d.length;
    });
    if (stats) (p.stdio[3] as NodeJS.ReadableStream).on('data', (d) => (extra += d));
    p.on('error', reject);
    p.on('close', (code) => {
      if (code !== 0) return reject(new Error(`${cmd} exited with ${code}`));
      const wall = Number(process.hrtime.bigint() - start) / 1e9;
      const parsed = extra ? (JSON.parse(extra) as { seconds: number; maxRssBytes: number }) : { seconds: wall };
      resolve({ ...parsed, wall, bytes, sha256: hash.digest('hex') });
    });
  });
}

function timeGit(repo: string, env: NodeJS.ProcessEnv): Promise<Result & { wall: number }> {
  return timeHashed('git', ['archive', '--format=tar', '--prefix=P/', 'HEAD'], repo, env, false);
}

function timeOurs(repo: string): Promise<Result & { wall: number }> {
  return timeHashed(process.execPath, [SELF, '--child', repo], repo, process.env, true);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      files: { type: 'string', default: '20000' },
      mb: { type: 'string', default: '200' },
      runs: { type: 'string', default: '3' },
      dir: { type: 'string' },
      keep: { type: 'boolean', default: false },
      child: { type: 'boolean', default: false },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.child) {
    await child(process.argv[process.argv.length - 1]!);
    return;
  }
  const layout: Layout = { files: Number(values.files), bytes: Number(values.mb) * MB };
  const dir = values.dir ?? mkdtempSync(path.join(os.tmpdir(), 'sourcemesh-bench-archive-'));
  const repo = path.join(dir, 'repo.git');
  try {
    if (!existsSync(path.join(dir, 'ready'))) {
      process.stdout.write(`building a repository of ${layout.files} files, ${values.mb} MB in ${dir} ...\n`);
      rmSync(repo, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      const t0 = Date.now();
      await buildRepo(dir, layout);
      process.stdout.write(`  built in ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
    }
    const env = gitEnv(dir);
    const gits: (Result & { wall: number })[] = [];
    const ours: (Result & { wall: number })[] = [];
    for (let i = 0; i < Number(values.runs); i++) {
      gits.push(await timeGit(repo, env));
      ours.push(await timeOurs(repo));
    }
    const g = median(gits.map((r) => r.wall));
    const oWall = median(ours.map((r) => r.wall));
    const oIn = median(ours.map((r) => r.seconds));
    const bytes = gits[0]!.bytes;
    const identical = gits.every((r) => r.sha256 === gits[0]!.sha256) && ours.every((r) => r.sha256 === gits[0]!.sha256);
    const rss = Math.max(...ours.map((r) => r.maxRssBytes ?? 0));
    const rows: [string, string][] = [
      ['repository', `${layout.files} files, ~${values.mb} MB (packed with deltas + a loose commit); tar ${(bytes / MB).toFixed(1)} MB`],
      ['git archive', `${g.toFixed(2)} s  ${(bytes / MB / g).toFixed(0)} MB/s  (median of ${gits.length})`],
      ['sourcemesh', `${oWall.toFixed(2)} s  ${(bytes / MB / oWall).toFixed(0)} MB/s  wall, with Node start-up; ${oIn.toFixed(2)} s in process (${(bytes / MB / oIn).toFixed(0)} MB/s)`],
      ['ratio (time)', `${(oWall / g).toFixed(2)}x git (goal <= 1.5x); ${(oIn / g).toFixed(2)}x in process`],
      ['peak RSS', `${(rss / 2 ** 20).toFixed(0)} MiB`],
      ['identical', identical ? `yes (sha256 ${gits[0]!.sha256.slice(0, 16)}...)` : `NO: git ${gits.map((r) => r.sha256.slice(0, 12)).join(',')} ours ${ours.map((r) => r.sha256.slice(0, 12)).join(',')}`],
    ];
    for (const [k, v] of rows) process.stdout.write(`${k.padEnd(13)} ${v}\n`);
    if (!identical) process.exitCode = 1;
  } finally {
    if (values.dir === undefined && !values.keep) rmSync(dir, { recursive: true, force: true });
  }
}

// bench/archive.ts builds its repository with buildRepo: run only when started directly.
if (import.meta.main) await main();
