// Importer for live-bootstrap's `steps/` tree, read exactly as that project writes it:
//   steps/manifest            build order: `build: STEP [( PREDICATE )]` lines among other directives
//   steps/STEP/sources        one distfile per line:
//     f|file URL SHA256 [NAME]                       NAME defaults to the last path segment of URL
//     g|git  REPO~REF HTTP_SOURCE|_ SHA256 [NAME]    a git snapshot; NAME is required when HTTP_SOURCE is _
// A file listed by several steps becomes one entry with every step recorded.
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { SourcemeshError } from '../errors.ts';
import { readBoundedFile } from '../fs/bounded-read.ts';
import { statIfExists } from '../fs/files.ts';
import { LIMITS } from '../limits.ts';
import { MANIFEST_FORMAT, SHA256_HEX, byName, displayName, isLocalRepo, nameKey, nameProblem, type Compression, type Distfile, type GitSource, type Manifest } from './distfile.ts';

export interface SourceLine {
  file: string;
  line: number;
  distfile: Distfile;
}

/** Parse one `sources` file's text. `step` is recorded on every entry. */
export function parseSources(text: string, file: string, step?: string): SourceLine[] {
  const out: SourceLine[] = [];
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  lines.forEach((raw, i) => {
    const lineNo = i + 1;
    const fail = (why: string): never => {
      throw new SourcemeshError('E_MANIFEST', `${file}:${lineNo}: ${why}`, { file, line: lineNo });
    };
    if (Buffer.byteLength(raw) > LIMITS.sourcesLineBytes) fail(`line longer than ${LIMITS.sourcesLineBytes} bytes`);
    const text = raw.replace(/\r$/, '');
    if (text.trim() === '') return;
    const tokens = text.trim().split(/[ \t]+/);
    const kind = tokens[0];
    let distfile: Distfile;
    if (kind === 'f' || kind === 'file') {
      if (tokens.length < 3 || tokens.length > 4) fail(`expected "f URL SHA256 [NAME]", got ${tokens.length} fields`);
      const [, url, sha, name] = tokens as [string, string, string, string?];
      checkUrl(url, fail);
      distfile = { name: checkName(name ?? lastSegment(url), fail), sha256: checkSha(sha, fail), urls: [url] };
    } else if (kind === 'g' || kind === 'git') {
      if (tokens.length < 4 || tokens.length > 5) fail(`expected "g REPO~REF HTTP_SOURCE|_ SHA256 [NAME]", got ${tokens.length} fields`);
      const [, repoRef, httpSource, sha, name] = tokens as [string, string, string, string, string?];
      const tilde = repoRef.lastIndexOf('~');
      if (tilde <= 0 || tilde === repoRef.length - 1) fail(`"${repoRef}" is not REPO~REF`);
      const repo = repoRef.slice(0, tilde);
      const ref = repoRef.slice(tilde + 1);
      if (/[\s^:?*[\\]/.test(ref) || ref.includes('..') || ref.startsWith('-')) fail(`"${ref}" is not a valid git ref`);
      // The prefix comes from upstream's name in the URL (snapshotPrefix): a local path has none.
      if (isLocalRepo(repo)) fail(`git repository "${repo}" is a local path: the snapshot's prefix can't be derived from it (use a manifest with git.prefix)`);
      if (httpSource !== '_') checkUrl(httpSource, fail);
      if (httpSource === '_' && name === undefined) fail('a git source with no HTTP source ("_") must name its tarball');
      const fileName = checkName(name ?? lastSegment(httpSource), fail);
      distfile = {
        name: fileName,
        sha256: checkSha(sha, fail),
        urls: httpSource === '_' ? [] : [httpSource],
        git: gitSourceFor(repo, ref, fileName),
      };
    } else {
      fail(`unknown line type "${kind}" (expected f or g)`);
    }
    if (step !== undefined) distfile!.steps = [step];
    out.push({ file, line: lineNo, distfile: distfile! });
  });
  return out;
}

/**
 * live-bootstrap's mirror.sh prefix rule: basename of the repository without `.git`, a dash, and the
 * ref with a leading `v` before a digit dropped (except on gitlab, whose archives keep it).
 */
export function snapshotPrefix(repo: string, ref: string): string {
  const base = lastSegment(repo.replace(/\/+$/, '')).replace(/\.git$/, '');
  const keepV = repo.includes('gitlab');
  const version = !keepV && /^v[0-9]/.test(ref) ? ref.slice(1) : ref;
  return `${base}-${version}/`;
}

/** The compressor mirror.sh's `git archive -o NAME` picks from the extension (tar.gz: `gzip -n`, tar.xz: `xz -T1`). */
export function compressionFor(fileName: string): { compression: Compression; level?: number } {
  if (/\.(tar\.gz|tgz)$/.test(fileName)) return { compression: 'gzip-n', level: 6 };
  if (/\.(tar\.xz|txz)$/.test(fileName)) return { compression: 'xz', level: 6 };
  if (/\.(tar\.bz2|tbz2?)$/.test(fileName)) return { compression: 'bzip2', level: 9 };
  return { compression: 'none' };
}

function gitSourceFor(repo: string, ref: string, fileName: string): GitSource {
  return { repo, ref, prefix: snapshotPrefix(repo, ref), ...compressionFor(fileName) };
}

function lastSegment(s: string): string {
  return s.slice(s.lastIndexOf('/') + 1);
}

function checkUrl(url: string, fail: (why: string) => never): void {
  if (url.length > LIMITS.urlBytes) fail(`URL longer than ${LIMITS.urlBytes} characters`);
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return fail(`"${url}" is not a URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') fail(`"${url}" is not an http(s) URL`);
}

function checkSha(sha: string, fail: (why: string) => never): string {
  const lower = sha.toLowerCase();
  if (!SHA256_HEX.test(lower)) fail(`"${sha}" is not a sha256 (64 hex digits)`);
  return lower;
}

function checkName(name: string, fail: (why: string) => never): string {
  const problem = nameProblem(name);
  if (problem) fail(`file name ${displayName(name)} ${problem}`);
  return name;
}

/** Step names from `steps/manifest` in build order (each `build:` directive, predicates ignored). */
export function parseStepsManifest(text: string): { builds: string[]; beforeNetwork: string[] } {
  const builds: string[] = [];
  let beforeNetwork: string[] | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    // steps/manifest: "the first improve directive containing "network"" ends the offline set.
    if (beforeNetwork === undefined && line.startsWith('improve: ') && line.includes('network')) beforeNetwork = [...builds];
    if (!line.startsWith('build: ')) continue;
    const step = line.slice('build: '.length).split('#')[0]!.trim().split(/\s+/)[0];
    if (step) builds.push(step);
  }
  return { builds, beforeNetwork: beforeNetwork ?? [...builds] };
}

/** Merge source lines into one entry per name; the same name with two checksums is an error naming both lines. */
export function mergeSourceLines(lines: SourceLine[]): Distfile[] {
  const byNameMap = new Map<string, { at: SourceLine; d: Distfile }>();
  for (const line of lines) {
    const d = line.distfile;
    // Keyed as the file system may see them (docs/FORMATS.md, Manifest, "Names"): the same rule as validate.ts.
    const prev = byNameMap.get(nameKey(d.name));
    if (!prev) {
      byNameMap.set(nameKey(d.name), { at: line, d: structuredClone(d) });
      continue;
    }
    const where = `${prev.at.file}:${prev.at.line} and ${line.file}:${line.line}`;
    if (prev.d.name !== d.name) {
      throw new SourcemeshError('E_MANIFEST', `${displayName(prev.d.name)} and ${displayName(d.name)} differ only by Unicode normalization or case, one file on macOS and Windows (${where})`, { name: d.name, other: prev.d.name });
    }
    if (prev.d.sha256 !== d.sha256) {
      throw new SourcemeshError('E_MANIFEST', `${d.name}: two checksums for one name (${where})`, { name: d.name, first: prev.d.sha256, second: d.sha256 });
    }
    for (const u of d.urls) if (!prev.d.urls.includes(u)) prev.d.urls.push(u);
    for (const s of d.steps ?? []) if (!prev.d.steps!.includes(s)) prev.d.steps!.push(s);
    if (d.git) {
      if (!prev.d.git) prev.d.git = d.git;
      else if (JSON.stringify(prev.d.git) !== JSON.stringify(d.git)) {
        throw new SourcemeshError('E_MANIFEST', `${d.name}: two different git sources for one name (${where})`, { name: d.name });
      }
    }
  }
  return [...byNameMap.values()].map((e) => e.d).sort(byName);
}

export interface ImportOptions {
  name?: string;
  /** Only the steps built before the first `improve: ...network...` directive. */
  beforeNetwork?: boolean;
}

/** Import a whole `steps/` directory. Steps with sources but absent from `steps/manifest` come last, by name. */
export async function importStepsDir(stepsDir: string, opts: ImportOptions = {}): Promise<Manifest> {
  const manifestPath = path.join(stepsDir, 'manifest');
  let manifestText: string;
  manifestText = await readBoundedFile(manifestPath, LIMITS.manifestBytes, 'steps manifest', 'E_MANIFEST');
  const { builds, beforeNetwork } = parseStepsManifest(manifestText);
  let order: string[];
  if (opts.beforeNetwork) {
    order = beforeNetwork;
  } else {
    const entries = await readdir(stepsDir, { withFileTypes: true });
    const listed = new Set(builds);
    const unlisted = entries.filter((e) => e.isDirectory() && !listed.has(e.name)).map((e) => e.name).sort();
    order = [...builds, ...unlisted];
  }
  const lines: SourceLine[] = [];
  const done = new Set<string>();
  for (const step of order) {
    if (done.has(step)) continue;
    done.add(step);
    const sourcesPath = path.join(stepsDir, step, 'sources');
    if (!(await statIfExists(sourcesPath))) continue; // a step without sources
    const text = await readBoundedFile(sourcesPath, LIMITS.manifestBytes, 'sources file', 'E_MANIFEST');
    lines.push(...parseSources(text, sourcesPath, step));
  }
  return { format: MANIFEST_FORMAT, name: opts.name ?? 'live-bootstrap', distfiles: mergeSourceLines(lines) };
}

/** Import a single `sources` file; its directory's name is the step. */
export async function importSourcesFile(file: string, opts: ImportOptions = {}): Promise<Manifest> {
  return importSourcesText(await readBoundedFile(file, LIMITS.manifestBytes, 'sources file', 'E_MANIFEST'), file, opts);
}

/** A `sources` file's text, read from `file`, whose directory's name is the step. */
export function importSourcesText(text: string, file: string, opts: ImportOptions = {}): Manifest {
  const step = path.basename(path.dirname(path.resolve(file)));
  return { format: MANIFEST_FORMAT, name: opts.name ?? step, distfiles: mergeSourceLines(parseSources(text, file, step)) };
}
