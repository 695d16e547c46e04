// What a node attests: an in-toto Statement v1 (in-toto/attestation spec/v1/statement.md, "Version: v1.1")
// whose predicate is SLSA Provenance v1 (predicateType https://slsa.dev/provenance/v1; fields as in
// slsa-framework/slsa docs/spec/v1.0/provenance.md and its schema/provenance.proto). Two build types of
// ours, documented in docs/FORMATS.md ("Attestations"): a git snapshot made from a commit, and a file
// downloaded from upstream for the first time. Pure: the statement is built from its inputs, and parsed
// back (strictly, as attacker-controlled input) into the one claim the policy compares.

import * as v from 'valibot';
import { SourcemeshError } from '../errors.ts';
import type { Compression } from '../manifest/distfile.ts';
import { firstIssue } from '../trust/release.ts';

export const STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
export const SLSA_PROVENANCE_V1 = 'https://slsa.dev/provenance/v1';
/**
 * The authority our URIs are under: the project's own page, the npm package `sourcemesh` (package.json
 * "name"), whose README and docs/FORMATS.md describe what each fragment names. An https URI (RFC 3986):
 * SLSA's buildType and builder.id are TypeURIs, and a URN needs a namespace registered with IANA (RFC 8141).
 */
export const PROJECT_URI = 'https://www.npmjs.com/package/sourcemesh';
/** Our build types (docs/FORMATS.md, "Attestations"). */
export const BUILD_TYPE_GIT_SNAPSHOT = `${PROJECT_URI}#build-type/git-snapshot/v1`;
export const BUILD_TYPE_UPSTREAM_DOWNLOAD = `${PROJECT_URI}#build-type/upstream-download/v1`;
/** runDetails.builder.id: this prefix, then the node key's vkey (name+keyid+key), escaped for a fragment. */
export const BUILDER_ID_PREFIX = `${PROJECT_URI}#builder/`;
/**
 * What 0.1.0 development builds wrote before (`urn:sourcemesh:...`, an unregistered URN namespace): still
 * read, as the same build types and builders, so that bundles already published keep verifying; never written.
 */
const LEGACY_BUILD_TYPES: Readonly<Record<string, string>> = {
  'urn:sourcemesh:build-type:git-snapshot:v1': BUILD_TYPE_GIT_SNAPSHOT,
  'urn:sourcemesh:build-type:upstream-download:v1': BUILD_TYPE_UPSTREAM_DOWNLOAD,
};
const LEGACY_BUILDER_ID_PREFIX = 'urn:sourcemesh:builder:';
/** A byproduct of this name carries tarSha256 (the decompressed tar's sha256): no digest algorithm. */
export const TAR_BYPRODUCT = 'tarSha256';

/** What one node derived: the subject and the inputs it was derived from. */
export type Claim = SnapshotClaim | DownloadClaim;

interface ClaimBase {
  /** The distfile name (the subject's name). */
  readonly name: string;
  readonly sha256: string;
  /** The decompressed tar's sha256, where known. */
  readonly tarSha256?: string;
  /** The vkey of the node that derived it (runDetails.builder.id names it). */
  readonly builder: string;
}

export interface SnapshotClaim extends ClaimBase {
  readonly kind: 'git-snapshot';
  readonly repository: string;
  readonly ref: string;
  /** The commit `ref` resolved to: 40 (SHA-1) or 64 (SHA-256) lowercase hex digits. */
  readonly commit: string;
  readonly prefix: string;
  readonly compression: Compression;
  readonly level?: number;
}

export interface DownloadClaim extends ClaimBase {
  readonly kind: 'upstream-download';
  readonly url: string;
}

const COMPRESSIONS: readonly Compression[] = ['gzip-n', 'zlib', 'xz', 'bzip2', 'none'];
const HEX64 = /^[0-9a-f]{64}$/;
const COMMIT = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
const TEXT = v.pipe(v.string(), v.minLength(1), v.maxLength(4096));

/** A fragment (RFC 3986 §3.5) may hold '/', '+', '=' but no second '#': encodeURI escapes the rest, and '%'. */
export function builderId(vkey: string): string {
  return BUILDER_ID_PREFIX + encodeURI(vkey).replaceAll('#', '%23');
}

/** The vkey a builder id names (either form); undefined when it is no builder id of ours or not well escaped. */
export function builderOfId(id: string): string | undefined {
  try {
    if (id.startsWith(BUILDER_ID_PREFIX)) return decodeURIComponent(id.slice(BUILDER_ID_PREFIX.length));
    if (id.startsWith(LEGACY_BUILDER_ID_PREFIX)) return decodeURI(id.slice(LEGACY_BUILDER_ID_PREFIX.length));
  } catch {
    return undefined;
  }
  return undefined;
}

/** The in-toto Statement v1 (SLSA Provenance v1 predicate) for `claim`. */
export function buildStatement(claim: Claim, meta: { version: string; finishedOn?: Date }): Record<string, unknown> {
  const externalParameters = claim.kind === 'git-snapshot'
    ? {
      repository: claim.repository, ref: claim.ref, prefix: claim.prefix, format: 'tar', compression: claim.compression,
      ...(claim.level === undefined ? {} : { level: claim.level }),
    }
    : { url: claim.url };
  const resolvedDependencies = claim.kind === 'git-snapshot'
    // in-toto ResourceDescriptor: the commit by its digest (digest set `gitCommit`), the repository as uri.
    ? [{ uri: claim.repository, digest: { gitCommit: claim.commit } }]
    : [{ uri: claim.url, digest: { sha256: claim.sha256 } }];
  return {
    _type: STATEMENT_TYPE,
    subject: [{ name: claim.name, digest: { sha256: claim.sha256 } }],
    predicateType: SLSA_PROVENANCE_V1,
    predicate: {
      buildDefinition: {
        buildType: claim.kind === 'git-snapshot' ? BUILD_TYPE_GIT_SNAPSHOT : BUILD_TYPE_UPSTREAM_DOWNLOAD,
        externalParameters,
        resolvedDependencies,
      },
      runDetails: {
        builder: { id: builderId(claim.builder), version: { sourcemesh: meta.version } },
        ...(meta.finishedOn === undefined ? {} : { metadata: { finishedOn: meta.finishedOn.toISOString().replace(/\.\d{3}Z$/, 'Z') } }),
        ...(claim.tarSha256 === undefined ? {} : { byproducts: [{ name: TAR_BYPRODUCT, mediaType: 'application/x-tar', digest: { sha256: claim.tarSha256 } }] }),
      },
    },
  };
}

// The reader: unknown fields are allowed where the specifications allow them (in-toto parsing rules:
// consumers ignore unknown fields), but every field our claim uses must be present and well formed.
const digestSha256 = v.looseObject({ sha256: v.pipe(v.string(), v.regex(HEX64)) });
const statementSchema = v.looseObject({
  _type: v.literal(STATEMENT_TYPE),
  subject: v.pipe(v.array(v.looseObject({ name: TEXT, digest: digestSha256 })), v.length(1, 'exactly one subject')),
  predicateType: v.literal(SLSA_PROVENANCE_V1),
  predicate: v.looseObject({
    buildDefinition: v.looseObject({
      buildType: v.picklist([BUILD_TYPE_GIT_SNAPSHOT, BUILD_TYPE_UPSTREAM_DOWNLOAD, ...Object.keys(LEGACY_BUILD_TYPES)]),
      externalParameters: v.looseObject({}),
      resolvedDependencies: v.optional(v.pipe(v.array(v.looseObject({ uri: v.optional(TEXT), digest: v.optional(v.record(v.string(), v.string())) })), v.maxLength(16))),
    }),
    runDetails: v.looseObject({
      builder: v.looseObject({ id: v.pipe(v.string(), v.maxLength(2048)) }),
      byproducts: v.optional(v.pipe(v.array(v.looseObject({ name: v.optional(v.string()), digest: v.optional(v.record(v.string(), v.string())) })), v.maxLength(16))),
    }),
  }),
});

const snapshotParams = v.looseObject({
  repository: TEXT, ref: TEXT, prefix: v.pipe(v.string(), v.maxLength(4096)), format: v.literal('tar'),
  compression: v.picklist(COMPRESSIONS), level: v.optional(v.pipe(v.number(), v.safeInteger(), v.minValue(0), v.maxValue(9))),
});
const downloadParams = v.looseObject({ url: TEXT });

/** Parse a statement (the DSSE payload, already JSON-parsed) into its claim; E_FORMAT naming `source`. */
export function parseStatement(data: unknown, source: string): Claim {
  const bad = (why: string): never => {
    throw new SourcemeshError('E_FORMAT', `${source}: not a sourcemesh attestation: ${why}`, { source });
  };
  const r = v.safeParse(statementSchema, data);
  if (!r.success) return bad(firstIssue(r.issues));
  const st = r.output;
  const subject = st.subject[0]!;
  const { buildDefinition: def, runDetails: run } = st.predicate;
  const builder = builderOfId(run.builder.id);
  if (builder === undefined) return bad(`runDetails.builder.id is not ${BUILDER_ID_PREFIX} followed by an escaped vkey`);
  const buildType = LEGACY_BUILD_TYPES[def.buildType] ?? def.buildType;
  const tar = run.byproducts?.find((b) => b.name === TAR_BYPRODUCT)?.digest?.sha256;
  if (tar !== undefined && !HEX64.test(tar)) bad(`the ${TAR_BYPRODUCT} byproduct's sha256 is not 64 lowercase hex digits`);
  const base = { name: subject.name, sha256: subject.digest.sha256, builder, ...(tar === undefined ? {} : { tarSha256: tar }) };
  if (buildType === BUILD_TYPE_UPSTREAM_DOWNLOAD) {
    const p = v.safeParse(downloadParams, def.externalParameters);
    if (!p.success) return bad(`externalParameters: ${firstIssue(p.issues)}`);
    return { kind: 'upstream-download', ...base, url: p.output.url };
  }
  const p = v.safeParse(snapshotParams, def.externalParameters);
  if (!p.success) return bad(`externalParameters: ${firstIssue(p.issues)}`);
  const commits = (def.resolvedDependencies ?? []).filter((d) => d.digest?.gitCommit !== undefined);
  if (commits.length !== 1) bad('resolvedDependencies must name exactly one git commit (digest gitCommit)');
  const commit = commits[0]!.digest!.gitCommit!;
  if (!COMMIT.test(commit)) bad('the resolved commit is not 40 or 64 lowercase hex digits');
  if (commits[0]!.uri !== undefined && commits[0]!.uri !== p.output.repository) bad('the resolved commit is of another repository than externalParameters.repository');
  const { repository, ref, prefix, compression, level } = p.output;
  return { kind: 'git-snapshot', ...base, repository, ref, commit, prefix, compression, ...(level === undefined ? {} : { level }) };
}
