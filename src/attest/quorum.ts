// The builders' quorum (a trust policy's `builders: {threshold, vkeys}`): a git snapshot is accepted only
// when at least `threshold` distinct builders attested the same bytes for the same inputs. Pure: the
// verified claims (bundle.ts) and the snapshot's inputs are arguments. Rules (docs/FORMATS.md, "Builders'
// quorum"):
//   - only claims about exactly these inputs count (name, repository, ref, prefix, compression, level): an
//     attestation replayed from another ref or another file is not about this snapshot;
//   - one builder counts once; a builder that attested two different results for these inputs
//     equivocated and counts for none;
//   - a pinned sha256 always wins: only a group with the pinned bytes can be accepted;
//   - builders that attested other bytes of the same commit than the accepted ones are named as liars,
//     and both sides' bundles are the evidence.

import { SourcemeshError } from '../errors.ts';
import { keyLabel } from '../trust/policy.ts';
import type { Claim, SnapshotClaim } from './statement.ts';

export interface SnapshotInputs {
  readonly name: string;
  readonly repository: string;
  readonly ref: string;
  readonly prefix: string;
  readonly compression: SnapshotClaim['compression'];
  readonly level?: number;
  /** The manifest's pinned sha256, if any. */
  readonly sha256?: string;
}

export interface Attested<T = unknown> {
  readonly claim: Claim;
  /** Where it came from (a file, a log index), for messages and evidence; carried through. */
  readonly source: T;
}

export interface QuorumVerdict<T = unknown> {
  readonly sha256: string;
  readonly commit: string;
  /** vkeys of the builders whose attestations agree on these bytes. */
  readonly builders: readonly string[];
  /** Builders that attested other bytes of the same commit, or (pinned) any other bytes; with their sha256. */
  readonly liars: readonly { readonly builder: string; readonly sha256: string }[];
  /** Builders that attested two results for these inputs: counted for none. */
  readonly equivocated: readonly string[];
  /** Every attestation of the accepted and the contradicting groups: what evidence keeps. */
  readonly evidence: readonly Attested<T>[];
  /** Claims left out because they are about other inputs (another ref, file, prefix, ...), with why. */
  readonly ignored: readonly { readonly source: T; readonly why: string }[];
}

/** Why `c` is not about `inputs`, or undefined when it is. */
export function inputMismatch(c: Claim, inputs: SnapshotInputs): string | undefined {
  if (c.kind !== 'git-snapshot') return 'it attests a download, not a git snapshot';
  if (c.name !== inputs.name) return `it is about ${JSON.stringify(c.name)}`;
  if (c.repository !== inputs.repository) return `it is about the repository ${c.repository}`;
  if (c.ref !== inputs.ref) return `it is about the ref ${JSON.stringify(c.ref)}, not ${JSON.stringify(inputs.ref)}`;
  if (c.prefix !== inputs.prefix) return `its prefix is ${JSON.stringify(c.prefix)}`;
  if (c.compression !== inputs.compression || c.level !== inputs.level) return `its compression is ${c.compression} ${c.level ?? ''}`.trimEnd();
  return undefined;
}

/**
 * Decide which bytes of the snapshot `inputs` the builders' quorum accepts. Throws E_POLICY (details: the
 * groups, liars and evidence sources) when no group of `threshold` builders agrees on acceptable bytes.
 */
export function decideSnapshot<T>(inputs: SnapshotInputs, attested: readonly Attested<T>[], threshold: number): QuorumVerdict<T> {
  if (!Number.isSafeInteger(threshold) || threshold < 1) throw new SourcemeshError('E_INTERNAL', `a builders' threshold of ${threshold}`);
  const ignored: { source: T; why: string }[] = [];
  const about: Attested<T>[] = [];
  for (const a of attested) {
    const why = inputMismatch(a.claim, inputs);
    if (why === undefined) about.push(a);
    else ignored.push({ source: a.source, why });
  }
  // Each builder's distinct results for these inputs.
  const results = new Map<string, Set<string>>();
  for (const a of about) {
    const c = a.claim as SnapshotClaim;
    const set = results.get(c.builder) ?? new Set<string>();
    set.add(`${c.commit} ${c.sha256}`);
    results.set(c.builder, set);
  }
  const equivocated = [...results].filter(([, s]) => s.size > 1).map(([b]) => b).sort();
  const groups = new Map<string, { commit: string; sha256: string; builders: Set<string>; attested: Attested<T>[] }>();
  for (const a of about) {
    const c = a.claim as SnapshotClaim;
    const key = `${c.commit} ${c.sha256}`;
    const g = groups.get(key) ?? { commit: c.commit, sha256: c.sha256, builders: new Set<string>(), attested: [] };
    if (!equivocated.includes(c.builder)) g.builders.add(c.builder);
    g.attested.push(a);
    groups.set(key, g);
  }
  const all = [...groups.values()].sort((x, y) => y.builders.size - x.builders.size || (x.sha256 < y.sha256 ? -1 : 1));
  const candidates = all.filter((g) => inputs.sha256 === undefined || g.sha256 === inputs.sha256);
  const reached = candidates.filter((g) => g.builders.size >= threshold);
  const summary = all.map((g) => ({ commit: g.commit, sha256: g.sha256, builders: [...g.builders].sort() }));
  const label = (g: { sha256: string; builders: Set<string> }) => `${g.builders.size} for sha256 ${g.sha256}${g.builders.size ? ` (${[...g.builders].map(keyLabel).sort().join(', ')})` : ''}`;
  if (reached.length !== 1) {
    const why = reached.length > 1
      ? `builders disagree: ${reached.map(label).join('; ')} each reach the threshold ${threshold}`
      : all.length === 0
        ? `no attestation by a policy builder is about these inputs${ignored.length ? ` (${ignored.length} about others: ${ignored[0]!.why})` : ''}`
        : `${threshold} builders must agree; ${all.map(label).join('; ')}${inputs.sha256 !== undefined ? `; the manifest pins sha256 ${inputs.sha256}, which always wins` : ''}`;
    throw new SourcemeshError('E_POLICY', `${inputs.name}: the builders' quorum refuses the snapshot: ${why}${equivocated.length ? `; ${equivocated.map(keyLabel).join(', ')} attested two results and count for none` : ''}`, {
      name: inputs.name, groups: summary, equivocated, ...(inputs.sha256 === undefined ? {} : { pinned: inputs.sha256 }),
      evidence: all.length > 1 || equivocated.length ? all.flatMap((g) => g.attested.map((a) => a.source)) : [],
    });
  }
  const win = reached[0]!;
  const contradicting = all.filter((g) => g !== win && (g.commit === win.commit || inputs.sha256 !== undefined));
  const liars = contradicting.flatMap((g) => [...g.builders].map((builder) => ({ builder, sha256: g.sha256 })))
    .concat(equivocated.map((builder) => ({ builder, sha256: 'several' })))
    .sort((x, y) => (x.builder < y.builder ? -1 : 1));
  return {
    sha256: win.sha256, commit: win.commit, builders: [...win.builders].sort(), liars, equivocated,
    evidence: liars.length ? [win, ...contradicting].flatMap((g) => g.attested) : [], ignored,
  };
}
