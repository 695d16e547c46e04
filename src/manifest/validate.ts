// Validation at the edge: a manifest is attacker-controlled input until it has passed here.
import * as v from 'valibot';
import { SourcemeshError } from '../errors.ts';
import { LIMITS } from '../limits.ts';
import { snapshotPrefix } from './live-bootstrap.ts';
import { MANIFEST_FORMAT, SHA256_HEX, byName, displayName, isLocalRepo, nameKey, nameProblem, type Manifest } from './distfile.ts';

const sha256 = v.pipe(v.string(), v.regex(SHA256_HEX, 'must be 64 lowercase hex digits'));

const url = v.pipe(
  v.string(),
  v.maxLength(LIMITS.urlBytes, `must be at most ${LIMITS.urlBytes} characters`),
  v.check((s) => {
    try {
      const u = new URL(s);
      return u.protocol === 'http:' || u.protocol === 'https:';
    } catch {
      return false;
    }
  }, 'must be an absolute http(s) URL'),
);

const fileName = v.pipe(
  v.string(),
  v.check((s) => nameProblem(s) === undefined, (issue) => `${displayName(issue.input as string)} ${nameProblem(issue.input as string)}`),
);

const compression = v.picklist(['gzip-n', 'zlib', 'xz', 'bzip2', 'none']);

const gitSource = v.strictObject({
  repo: v.pipe(v.string(), v.minLength(1), v.maxLength(LIMITS.urlBytes)),
  // Never an option (leading "-") nor revision syntax: it ends up on a git command line.
  ref: v.pipe(v.string(), v.regex(/^(?!-)(?!.*\.\.)[^\s~^:?*[\\]+$/, 'must be a git ref or object id')),
  // Absent: live-bootstrap's rule (snapshotPrefix), filled in below.
  prefix: v.optional(v.pipe(v.string(), v.regex(/^(?!\/)(?!.*(^|\/)\.\.?(\/|$)).*\/$/, 'must be a relative directory ending in "/"'))),
  compression,
  level: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(9))),
});

const distfile = v.strictObject({
  name: fileName,
  // At least one of sha256 and tarSha256 (checked below): every pinned hash must match.
  sha256: v.optional(sha256),
  size: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(Number.MAX_SAFE_INTEGER))),
  tarSha256: v.optional(sha256),
  merkleRoot: v.optional(sha256),
  urls: v.pipe(v.array(url), v.maxLength(LIMITS.urlsPerDistfile)),
  git: v.optional(gitSource),
  cleanse: v.optional(v.strictObject({ from: sha256, delete: v.pipe(v.array(v.pipe(v.string(), v.minLength(1))), v.minLength(1)) })),
  steps: v.optional(v.array(v.pipe(v.string(), v.minLength(1)))),
});

const manifest = v.strictObject({
  format: v.literal(MANIFEST_FORMAT),
  name: v.pipe(v.string(), v.minLength(1)),
  version: v.optional(v.string()),
  distfiles: v.pipe(v.array(distfile), v.maxLength(LIMITS.manifestDistfiles)),
});

/** Validate parsed JSON as a manifest; `source` names the input in errors. */
export function validateManifest(data: unknown, source: string): Manifest {
  const result = v.safeParse(manifest, data);
  if (!result.success) {
    const issue = result.issues[0];
    const where = issue.path?.map((p) => String(p.key)).join('.') || '(top level)';
    throw new SourcemeshError('E_MANIFEST', `${source}: ${where} ${issue.message}`, { source, path: where });
  }
  const out = result.output as Manifest;
  const seen = new Map<string, string>();
  for (const [i, d] of out.distfiles.entries()) {
    const other = seen.get(nameKey(d.name));
    if (other === d.name) throw new SourcemeshError('E_MANIFEST', `${source}: distfile ${displayName(d.name)} is listed twice`, { source, name: d.name });
    if (other !== undefined) throw new SourcemeshError('E_MANIFEST', `${source}: distfiles ${displayName(other)} and ${displayName(d.name)} differ only by Unicode normalization or case (one file on macOS and Windows)`, { source, name: d.name, other });
    seen.set(nameKey(d.name), d.name);
    if (d.sha256 === undefined && d.tarSha256 === undefined) throw new SourcemeshError('E_MANIFEST', `${source}: distfile "${d.name}" pins neither sha256 nor tarSha256`, { source, name: d.name });
    if (d.cleanse && d.sha256 === undefined) throw new SourcemeshError('E_MANIFEST', `${source}: distfile "${d.name}" has a cleanse recipe but no sha256 for its result`, { source, name: d.name });
    if (d.git && d.git.prefix === undefined) {
      // live-bootstrap's rule reads upstream's name from the URL; a local path names only where a copy is
      // kept (`/srv/git/flex/repo` would give `repo-REF/`), so there the prefix must be written out.
      if (isLocalRepo(d.git.repo)) throw new SourcemeshError('E_MANIFEST', `${source}: distfiles.${i}.git.prefix is required when git.repo is a local path (${JSON.stringify(d.git.repo)}): there is no upstream name to derive it from`, { source, name: d.name });
      d.git.prefix = snapshotPrefix(d.git.repo, d.git.ref);
    }
  }
  out.distfiles.sort(byName);
  return out;
}

export function parseManifestJson(text: string, source: string): Manifest {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new SourcemeshError('E_MANIFEST', `${source}: not valid JSON (${(err as Error).message})`, { source });
  }
  return validateManifest(data, source);
}
