// Release statements (`sourcemesh.release/v1`, the note text release keys sign and the log stores) and
// release bundles (`sourcemesh.release-bundle/v1`, JSON: the signed release, its log index, a cosigned
// checkpoint, the inclusion proof, the rotation hops from the policy's genesis key set, and optional
// consistency proofs from older tree sizes). Formats in docs/FORMATS.md, "Releases".
//
// Bundles arrive next to manifests, from mirrors and from projects: attacker-controlled. Parsing is
// strict and bounded (LIMITS.releaseBundleBytes, proofHashes, rotationHops, bundleConsistencyProofs);
// nothing here says whether a bundle is trusted: that is policy.ts.

import * as v from 'valibot';
import { SourcemeshError } from '../errors.ts';
import { LIMITS, type Limits } from '../limits.ts';
import { encodeBase64 } from './base64.ts';
import { type Hash, parseProofLines } from './merkle.ts';
import { checkNoteText } from './note.ts';

export const RELEASE_FORMAT = 'sourcemesh.release/v1';
export const BUNDLE_FORMAT = 'sourcemesh.release-bundle/v1';

/** What a release statement releases: a manifest or a mirror list (rotations have their own statement). */
export const RELEASE_KINDS = ['manifest', 'mirror-list'] as const;
export type ReleaseKind = (typeof RELEASE_KINDS)[number];

export interface ReleaseStatement {
  readonly kind: ReleaseKind;
  /** The project's name for what is released (the manifest's `name`). */
  readonly name: string;
  readonly version: string;
  /** Hex SHA-256 of the RFC 8785 canonical JSON of the manifest or mirror list. */
  readonly sha256: string;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;
/** A name or version: one line of printable text, no leading or trailing space. */
const FIELD_BYTES = 256;

function fieldProblem(value: string): string | undefined {
  if (typeof value !== 'string' || value.length === 0) return 'is empty';
  if (!value.isWellFormed()) return 'is not valid Unicode';
  if (/[\u0000-\u001f\u007f]/.test(value)) return 'contains a control character';
  if (value.trim() !== value) return 'has leading or trailing white space';
  if (Buffer.byteLength(value, 'utf8') > FIELD_BYTES) return `is longer than ${FIELD_BYTES} bytes`;
  return undefined;
}

/** The note text of a release statement (signed by the release keys; the signed note is the log entry). */
export function formatReleaseStatement(s: ReleaseStatement): string {
  for (const [field, value] of [['name', s.name], ['version', s.version]] as const) {
    const problem = fieldProblem(value);
    if (problem !== undefined) throw new SourcemeshError('E_USAGE', `the release ${field} ${JSON.stringify(value)} ${problem}`);
  }
  if (!RELEASE_KINDS.includes(s.kind)) throw new SourcemeshError('E_USAGE', `release kind ${s.kind}: expected ${RELEASE_KINDS.join(' or ')}`);
  if (!SHA256_HEX.test(s.sha256)) throw new SourcemeshError('E_INTERNAL', 'a release digest is 64 lowercase hex digits');
  const text = `${RELEASE_FORMAT}\nname ${s.name}\nversion ${s.version}\n${s.kind} sha256 ${s.sha256}\n`;
  checkNoteText(text);
  return text;
}

/** Parse release statement note text (exactly four lines, one spelling). Attacker-controlled. */
export function parseReleaseStatement(text: string): ReleaseStatement {
  const bad = (why: string): never => {
    throw new SourcemeshError('E_FORMAT', `malformed release statement: ${why}`);
  };
  if (typeof text !== 'string' || text.length > 4 * 1024) bad('not text, or longer than 4 KiB');
  if (!text.endsWith('\n')) bad('it does not end with a newline');
  const lines = text.slice(0, -1).split('\n');
  if (lines[0] !== RELEASE_FORMAT) bad(`the first line is not ${RELEASE_FORMAT}`);
  if (lines.length !== 4) bad(`${lines.length} lines instead of 4`);
  const field = (line: string, key: string): string => {
    if (!line.startsWith(`${key} `)) bad(`expected a "${key} " line`);
    const value = line.slice(key.length + 1);
    const problem = fieldProblem(value);
    if (problem !== undefined) bad(`the ${key} ${problem}`);
    return value;
  };
  const name = field(lines[1]!, 'name');
  const version = field(lines[2]!, 'version');
  const m = /^([a-z-]+) sha256 ([0-9a-f]{64})$/.exec(lines[3]!);
  if (m === null) bad('the last line is not "<kind> sha256 <64 hex digits>"');
  const kind = m![1] as ReleaseKind;
  if (!RELEASE_KINDS.includes(kind)) bad(`unknown kind ${m![1]}`);
  return { kind, name, version, sha256: m![2]! };
}

// ---------------------------------------------------------------------------------------------------
// Bundles

/** One step of the walk from the policy's genesis key set to the key set that signed the release. */
export interface RotationHop {
  /** The signed rotation statement, exactly as logged (the log entry). */
  readonly statement: string;
  /** Its index in the log, and its inclusion proof into the bundle's checkpoint. */
  readonly index: number;
  readonly inclusionProof: readonly Hash[];
  /** A skip link (signed by the key set this hop starts from) when the hop skips statements. */
  readonly link?: string;
}

export interface ConsistencyProof {
  /** The older tree size the proof starts from; it ends at the bundle's checkpoint. */
  readonly size: number;
  readonly proof: readonly Hash[];
}

export interface ReleaseBundle {
  /** The signed release statement, exactly as logged. */
  readonly release: string;
  readonly index: number;
  /** The checkpoint, signed by the log and cosigned by witnesses. */
  readonly checkpoint: string;
  readonly inclusionProof: readonly Hash[];
  readonly rotations: readonly RotationHop[];
  readonly consistency: readonly ConsistencyProof[];
}

export type BundleLimits = Pick<Limits, 'releaseBundleBytes' | 'noteBytes' | 'proofHashes' | 'rotationHops' | 'bundleConsistencyProofs'>;

function schemas(limits: BundleLimits) {
  const index = v.pipe(v.number(), v.safeInteger(), v.minValue(0));
  const note = v.pipe(v.string(), v.minLength(1), v.maxLength(limits.noteBytes));
  const proof = v.pipe(v.array(v.pipe(v.string(), v.length(44))), v.maxLength(limits.proofHashes));
  return v.strictObject({
    format: v.literal(BUNDLE_FORMAT),
    release: note,
    index,
    checkpoint: note,
    inclusionProof: proof,
    rotations: v.optional(v.pipe(v.array(v.strictObject({ statement: note, index, inclusionProof: proof, link: v.optional(note) })), v.maxLength(limits.rotationHops)), []),
    consistency: v.optional(v.pipe(v.array(v.strictObject({ size: v.pipe(index, v.minValue(1)), proof })), v.maxLength(limits.bundleConsistencyProofs)), []),
  });
}

/** The first problem valibot found, as `where: message`. */
export function firstIssue(issues: readonly v.BaseIssue<unknown>[]): string {
  const issue = issues[0]!;
  const where = issue.path?.map((p) => String(p.key)).join('.') || '(top level)';
  return `${where} ${issue.message}`;
}

/** Parse JSON text of at most `maxBytes`, naming `source` in the error. */
export function parseBoundedJson(text: string, source: string, maxBytes: number, what: string): unknown {
  if (typeof text !== 'string') throw new SourcemeshError('E_FORMAT', `${source}: not text`);
  if (text.length > maxBytes || Buffer.byteLength(text) > maxBytes) throw new SourcemeshError('E_FORMAT', `${source}: a ${what} larger than ${maxBytes} bytes`, { source });
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new SourcemeshError('E_FORMAT', `${source}: not a ${what}: invalid JSON (${(err as Error).message})`, { source });
  }
}

/** Parse a release bundle. Attacker-controlled; `source` names it in errors. */
export function parseReleaseBundle(text: string, source: string, limits: BundleLimits = LIMITS): ReleaseBundle {
  const data = parseBoundedJson(text, source, limits.releaseBundleBytes, 'release bundle');
  const r = v.safeParse(schemas(limits), data);
  if (!r.success) throw new SourcemeshError('E_FORMAT', `${source}: not a release bundle: ${firstIssue(r.issues)}`, { source });
  const proof = (lines: readonly string[], where: string): Hash[] => {
    try {
      return parseProofLines(lines, limits);
    } catch (err) {
      throw new SourcemeshError('E_FORMAT', `${source}: ${where}: ${(err as Error).message}`, { source });
    }
  };
  const o = r.output;
  return {
    release: o.release,
    index: o.index,
    checkpoint: o.checkpoint,
    inclusionProof: proof(o.inclusionProof, 'inclusionProof'),
    rotations: o.rotations.map((h, i) => ({ statement: h.statement, index: h.index, inclusionProof: proof(h.inclusionProof, `rotations.${i}.inclusionProof`), ...(h.link === undefined ? {} : { link: h.link }) })),
    consistency: o.consistency.map((c, i) => ({ size: c.size, proof: proof(c.proof, `consistency.${i}.proof`) })),
  };
}

const b64 = (proof: readonly Hash[]) => proof.map((h) => encodeBase64(h));

/** The bundle as JSON text (two-space indent, fixed key order, final newline). */
export function formatReleaseBundle(b: ReleaseBundle): string {
  return `${JSON.stringify({
    format: BUNDLE_FORMAT,
    release: b.release,
    index: b.index,
    checkpoint: b.checkpoint,
    inclusionProof: b64(b.inclusionProof),
    rotations: b.rotations.map((h) => ({ statement: h.statement, index: h.index, inclusionProof: b64(h.inclusionProof), ...(h.link === undefined ? {} : { link: h.link }) })),
    consistency: b.consistency.map((c) => ({ size: c.size, proof: b64(c.proof) })),
  }, null, 2)}\n`;
}
