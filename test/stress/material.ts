// What upstream publishes in a stress run, all made from the seed: distfiles of several sizes, a git
// repository (served as git's dumb HTTP protocol: static files) with a snapshot of it pinned as a
// distfile, three manifest versions, and a torrent of every distfile whose BEP 52 pieces root is pinned
// as merkleRoot in every manifest (fetch --bittorrent checks each torrent against the manifest).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Prng } from '../helpers/prng.ts';
import type { Nodes } from './nodes.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

export interface Material {
  /** Upstream's directory, served by upstream.ts (the replace fault rewrites a file in it). */
  upDir: string;
  /** The plain distfiles (not the snapshot): those of version 1, then the one added in version 2. */
  files: { name: string; size: number }[];
  sizes: Map<string, number>;
  snapName: string;
  commit: string;
  prefix: string;
  repoUrl: string;
  /** Per manifest version, each distfile's pinned sha256. */
  pins: Record<string, Record<string, string>>;
  manifestFile: (version: string) => string;
  torrentsOf: (version: string) => string[];
}

/** Deterministic content from the seed. */
export function content(seed: number, name: string, size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let off = 0, i = 0; off < size; off += 64, i++) createHash('sha512').update(`${seed}/${name}/${i}`).digest().copy(out, off);
  return out;
}

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

function git(cwd: string, ...args: string[]): string {
  const r = spawnSync('git', ['-c', 'user.name=Stress', '-c', 'user.email=stress@example.invalid', ...args], {
    cwd, encoding: 'utf8', env: { PATH: process.env.PATH, HOME: os.tmpdir(), GIT_CONFIG_NOSYSTEM: '1', GIT_COMMITTER_DATE: '2024-01-01T00:00:00Z', GIT_AUTHOR_DATE: '2024-01-01T00:00:00Z' },
  });
  if (r.status !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

/** Make upstream's files in WORK/upstream, the manifests in WORK, and the torrents (`torrent create`, run on `up`). */
export async function makeMaterial(seed: number, work: string, nodes: Nodes): Promise<Material> {
  const upDir = path.join(work, 'upstream');
  mkdirSync(path.join(upDir, 'git'), { recursive: true });
  const rng = new Prng(seed);
  const v1Files = [
    { name: 'bigfile-1.0.tar.gz', size: 2 * MiB + rng.below(64 * KiB) },
    { name: 'midfile-2.3.tar.xz', size: 1 * MiB + rng.below(64 * KiB) },
    { name: 'small-0.9.tar.bz2', size: 300 * KiB + rng.below(16 * KiB) },
    { name: 'tiny-4.1.tar.gz', size: 40 * KiB + rng.below(4 * KiB) },
  ];
  const v2Extra = [{ name: 'added-1.1.tar.gz', size: 1536 * KiB + rng.below(64 * KiB) }];
  const sums = new Map<string, string>();
  const sizes = new Map<string, number>();
  for (const f of [...v1Files, ...v2Extra]) {
    const body = content(seed, f.name, f.size);
    writeFileSync(path.join(upDir, f.name), body);
    sums.set(f.name, sha256(body));
    sizes.set(f.name, f.size);
  }
  const src = path.join(work, 'proj-src');
  mkdirSync(path.join(src, 'lib'), { recursive: true });
  git(src, 'init', '-q', '-b', 'main');
  writeFileSync(path.join(src, 'README'), `stress project, seed ${seed}\n`);
  writeFileSync(path.join(src, 'lib', 'data.bin'), content(seed, 'git-data', 200 * KiB));
  git(src, 'add', '.');
  git(src, 'commit', '-q', '-m', 'release');
  const commit = git(src, 'rev-parse', 'HEAD');
  const bare = path.join(upDir, 'git', 'proj.git');
  git(work, 'clone', '-q', '--bare', src, bare);
  git(bare, 'update-server-info'); // git's dumb HTTP protocol: static files
  const prefix = `proj-${commit.slice(0, 8)}/`;
  const snapName = `proj-${commit.slice(0, 8)}.tar.gz`;
  const tar = spawnSync('git', ['archive', '--format=tar', `--prefix=${prefix}`, commit], { cwd: src, maxBuffer: 1 << 30 });
  const gz = spawnSync('gzip', ['-n', '-6'], { input: tar.stdout, maxBuffer: 1 << 30 });
  sums.set(snapName, sha256(gz.stdout));
  const up = nodes.url('up');
  const repoUrl = `${up}/git/proj.git`;
  const entry = (name: string) => ({ name, sha256: sums.get(name)!, size: sizes.get(name)!, urls: [`${up}/${name}`] });
  const manifestOf = (version: string, files: { name: string }[]) => ({
    format: 'sourcemesh.manifest/v1', name: 'stress', version,
    distfiles: [
      ...files.map((f) => entry(f.name)),
      { name: snapName, sha256: sums.get(snapName)!, urls: [], git: { repo: repoUrl, ref: commit, prefix, compression: 'gzip-n', level: 6 } },
    ].sort((a, b) => (a.name < b.name ? -1 : 1)),
  });
  const versions: Record<string, { distfiles: { name: string; merkleRoot?: string }[] }> = { '1': manifestOf('1', v1Files), '2': manifestOf('2', [...v1Files, ...v2Extra]), '3': manifestOf('3', [...v1Files, ...v2Extra]) };
  const pins: Record<string, Record<string, string>> = {};
  const manifestFile = (v: string) => path.join(work, `manifest-v${v}.json`);
  for (const [v, m] of Object.entries(versions)) {
    writeFileSync(manifestFile(v), `${JSON.stringify(m, null, 2)}\n`);
    pins[v] = Object.fromEntries((m as { distfiles: { name: string; sha256: string }[] }).distfiles.map((d) => [d.name, d.sha256]));
  }

  // Torrents of every distfile (the snapshot too), made from upstream's bytes before any fault.
  const troot = path.join(work, 'troot');
  mkdirSync(troot);
  for (const f of [...v1Files, ...v2Extra]) copyFileSync(path.join(upDir, f.name), path.join(troot, f.name));
  writeFileSync(path.join(troot, snapName), gz.stdout);
  const torrentDir = path.join(work, 'torrents');
  const made = await nodes.runIn('up', 'torrents', ['torrent', 'create', manifestFile('2'), '--root', troot, '-o', torrentDir, '--manifest-out', path.join(work, 'manifest-merkle.json')]);
  if (made.code !== 0) throw new Error(`torrent create failed; see ${nodes.logPath('torrents')}`);
  const merkle = new Map((JSON.parse(readFileSync(path.join(work, 'manifest-merkle.json'), 'utf8')) as { distfiles: { name: string; merkleRoot?: string }[] }).distfiles.map((d) => [d.name, d.merkleRoot]));
  for (const [v, m] of Object.entries(versions)) {
    for (const d of m.distfiles) {
      const root = merkle.get(d.name);
      if (root !== undefined) d.merkleRoot = root;
    }
    writeFileSync(manifestFile(v), `${JSON.stringify(m, null, 2)}\n`);
  }
  const torrentsOf = (version: string) => Object.keys(pins[version]!).map((n) => path.join(torrentDir, `${n}.torrent`));
  return { upDir, files: [...v1Files, ...v2Extra], sizes, snapName, commit, prefix, repoUrl, pins, manifestFile, torrentsOf };
}
