// Who may write to the log: the admission policy of `log serve` and the decision for one checked entry.
// Pure: the chain positions the log holds are passed in. docs/FORMATS.md ("Log entry types", "Log
// admission file") and docs/OPERATIONS.md ("Who may write to the log").
//
//   --admit VKEY, the file's "keys": keys admitted for any statement they sign, except a listed project's
//   --admit-file FILE, its "projects": per project (the manifest's name), its genesis release key set; its
//       releases must be signed by a threshold of the key set that the rotation chain in the log makes
//       current, and a rotation statement of its chain must follow the log's last one, signed by a
//       threshold of the current set: the log refuses what no client policy pinning that genesis set could
//       ever accept
//   --admit-any-signed: any key with a valid signature (the submitter names its vkey), under per-key quotas
//   --admit-unsigned: any bytes, unchecked (what `log serve` did before admission): private logs, benchmarks

import * as v from 'valibot';
import { SourcemeshError } from '../../errors.ts';
import { LIMITS, type Limits } from '../../limits.ts';
import { formatVerifierKey, KEY_TYPE_ED25519, parseVerifierKey } from '../note.ts';
import { firstIssue, parseBoundedJson } from '../release.ts';
import { chainIdOf, type ChainPosition, genesisPosition, keySetFrom, type KeySet } from '../rotation.ts';
import type { CheckedEntry } from './entries/types.ts';

export const ADMISSION_FORMAT = 'sourcemesh.log-admission/v1';

export type AdmissionMode = 'admitted' | 'any-signed' | 'unsigned';

export interface AdmittedProject {
  readonly name: string;
  readonly genesis: KeySet;
  /** chainIdOf(genesis). */
  readonly chain: string;
}

export interface AdmissionPolicy {
  readonly mode: AdmissionMode;
  /** vkeys admitted for every statement they sign (but a listed project's releases and rotations). */
  readonly keys: ReadonlySet<string>;
  readonly projects: ReadonlyMap<string, AdmittedProject>;
  /** Listed projects by chain ID (several names may share one genesis set). */
  readonly chains: ReadonlyMap<string, readonly AdmittedProject[]>;
}

export type AdmissionLimits = Pick<Limits, 'logAdmissionBytes' | 'logAdmittedKeys' | 'logAdmittedProjects' | 'rotationKeys' | 'noteKeyNameBytes'>;

export interface AdmissionFile {
  readonly keys: readonly string[];
  readonly projects: readonly AdmittedProject[];
}

const utf8 = new TextEncoder();

function projectNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'is empty';
  if (!name.isWellFormed()) return 'is not valid Unicode';
  if (/[\u0000-\u001f\u007f]/.test(name)) return 'contains a control character';
  if (name.trim() !== name) return 'has leading or trailing white space';
  if (utf8.encode(name).length > 256) return 'is longer than 256 bytes';
  return undefined;
}

/** An admitted key: vkey text of an Ed25519 note key, in its one spelling. */
export function admittedKey(text: string, what: string, limits: Pick<Limits, 'noteKeyNameBytes'> = LIMITS): string {
  let key;
  try {
    key = parseVerifierKey(text.trim(), limits);
  } catch (err) {
    throw new SourcemeshError('E_INPUT', `${what}: ${(err as Error).message}`);
  }
  if (key.type !== KEY_TYPE_ED25519) throw new SourcemeshError('E_INPUT', `${what}: ${key.name} is not an Ed25519 note key (type 0x01); submitters sign with note keys`);
  return formatVerifierKey(key);
}

/** Parse an admission file (`sourcemesh.log-admission/v1`); `source` names it in errors. Operator-written, still bounded. */
export function parseAdmissionFile(text: string, source: string, limits: AdmissionLimits = LIMITS): AdmissionFile {
  let data: unknown;
  try {
    data = parseBoundedJson(text, source, limits.logAdmissionBytes, 'log admission file');
  } catch (err) {
    // The operator's own file: bad input (E_INPUT), like a bad flag.
    throw new SourcemeshError('E_INPUT', (err as Error).message, { source });
  }
  const vkey = v.pipe(v.string(), v.maxLength(1024));
  const schema = v.strictObject({
    format: v.literal(ADMISSION_FORMAT),
    keys: v.optional(v.pipe(v.array(vkey), v.maxLength(limits.logAdmittedKeys)), []),
    projects: v.optional(v.pipe(v.array(v.strictObject({
      name: v.string(),
      threshold: v.pipe(v.number(), v.safeInteger(), v.minValue(1)),
      keys: v.pipe(v.array(vkey), v.minLength(1), v.maxLength(limits.rotationKeys)),
    })), v.maxLength(limits.logAdmittedProjects)), []),
  });
  const r = v.safeParse(schema, data);
  if (!r.success) throw new SourcemeshError('E_INPUT', `${source}: not a log admission file: ${firstIssue(r.issues)}`, { source });
  const keys = r.output.keys.map((k, i) => admittedKey(k, `${source}: keys.${i}`, limits));
  const projects: AdmittedProject[] = [];
  const names = new Set<string>();
  for (const [i, p] of r.output.projects.entries()) {
    const problem = projectNameProblem(p.name);
    if (problem !== undefined) throw new SourcemeshError('E_INPUT', `${source}: projects.${i}.name ${JSON.stringify(p.name.slice(0, 80))} ${problem}`, { source });
    if (names.has(p.name)) throw new SourcemeshError('E_INPUT', `${source}: the project ${p.name} is listed twice`, { source });
    names.add(p.name);
    let genesis: KeySet;
    try {
      genesis = keySetFrom(p.keys.map((k) => k.trim()), p.threshold, `projects.${i} (${p.name})`, limits);
    } catch (err) {
      throw new SourcemeshError('E_INPUT', `${source}: ${(err as Error).message}`, { source });
    }
    projects.push({ name: p.name, genesis, chain: chainIdOf(genesis) });
  }
  return { keys, projects };
}

/** The policy from the command line's keys and mode and the admission file's content. */
export function admissionPolicy(mode: AdmissionMode, flagKeys: readonly string[], file: AdmissionFile | undefined): AdmissionPolicy {
  const projects = new Map<string, AdmittedProject>();
  const chains = new Map<string, AdmittedProject[]>();
  for (const p of file?.projects ?? []) {
    projects.set(p.name, p);
    chains.set(p.chain, [...(chains.get(p.chain) ?? []), p]);
  }
  return { mode, keys: new Set([...flagKeys, ...(file?.keys ?? [])]), projects, chains };
}

/** The genesis position of every listed chain. */
export function genesisPositions(policy: AdmissionPolicy): Map<string, ChainPosition> {
  const out = new Map<string, ChainPosition>();
  for (const [chain, projects] of policy.chains) out.set(chain, genesisPosition(projects[0]!.genesis));
  return out;
}

/** The keys the verifier threads must know: admitted keys and every listed chain's current key set. */
export function knownKeys(policy: AdmissionPolicy, positions: ReadonlyMap<string, ChainPosition>): string[] {
  const all = new Set(policy.keys);
  for (const chain of policy.chains.keys()) for (const k of (positions.get(chain)?.keySet.vkeys ?? [])) all.add(k);
  return [...all];
}

export type Decision =
  /** Admitted: the keys whose quotas it is charged to, and the chain position a rotation moves to. */
  | { readonly ok: true; readonly charge: readonly string[]; readonly advance?: ChainPosition }
  | { readonly ok: false; readonly reason: string };

const refuse = (reason: string): Decision => ({ ok: false, reason });

function namedBy(c: CheckedEntry): string {
  return c.named.length === 0 ? '' : ` (its signatures name ${[...new Set(c.named)].slice(0, 4).join(', ')})`;
}

/** Admitted when an admitted key signed it (any verified key under --admit-any-signed). */
function anyAdmittedSigner(c: CheckedEntry, policy: AdmissionPolicy): Decision {
  const charge = policy.mode === 'any-signed' ? c.signers : c.signers.filter((k) => policy.keys.has(k));
  if (charge.length > 0) return { ok: true, charge };
  return refuse(`${c.describe}: not signed by a key this log admits${namedBy(c)}`);
}

function threshold(c: CheckedEntry, at: ChainPosition, what: string): string[] | string {
  const current = new Set(at.keySet.vkeys);
  const signers = c.signers.filter((k) => current.has(k));
  if (signers.length >= at.keySet.threshold) return signers;
  return `${c.describe}: signed by ${signers.length} of the ${at.keySet.vkeys.length} keys of ${what}'s current key set (${at.sequence}); ${at.keySet.threshold} are required${signers.length === 0 ? namedBy(c) : ''}`;
}

/**
 * Whether the log takes `c` under `policy`, given the position the log holds for each listed chain
 * (`position(chain)`). The caller applies `advance` for the entries that follow.
 */
export function decide(c: CheckedEntry, policy: AdmissionPolicy, position: (chain: string) => ChainPosition | undefined): Decision {
  if (policy.mode === 'unsigned') return { ok: true, charge: [] };
  const s = c.subject;
  if (s.kind === 'release') {
    const project = policy.projects.get(s.project);
    if (project === undefined) return anyAdmittedSigner(c, policy);
    const at = position(project.chain) ?? genesisPosition(project.genesis);
    const r = threshold(c, at, `project ${project.name}`);
    return typeof r === 'string' ? refuse(r) : { ok: true, charge: r };
  }
  if (s.kind === 'rotation') {
    const projects = policy.chains.get(s.chain);
    if (projects === undefined) return anyAdmittedSigner(c, policy);
    const project = projects[0]!;
    const at = position(s.chain) ?? genesisPosition(project.genesis);
    if (s.sequence !== at.sequence + 1 || s.previous !== at.hash) {
      return refuse(`${c.describe}: does not follow key set ${at.sequence} of project ${project.name}, the log's current one (rotation statement ${at.sequence + 1} must name it as previous)`);
    }
    const r = threshold(c, at, `project ${project.name}`);
    if (typeof r === 'string') return refuse(r);
    let keySet: KeySet;
    try {
      keySet = keySetFrom(s.vkeys, s.threshold, c.describe);
    } catch (err) {
      return refuse((err as Error).message);
    }
    return { ok: true, charge: r, advance: { chain: s.chain, sequence: s.sequence, hash: s.hash, keySet } };
  }
  return anyAdmittedSigner(c, policy);
}
