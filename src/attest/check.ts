// Checking attestations against a trust policy's builders: verify each bundle, then decide each snapshot
// by the quorum (quorum.ts), keeping the evidence of any disagreement. Used by `attest verify`; the
// snapshot inputs come from a manifest (with its pinned hashes) or, without one, from the claims themselves.
import { SourcemeshError } from '../errors.ts';
import type { Limits } from '../limits.ts';
import type { Manifest } from '../manifest/distfile.ts';
import { withEvidence } from '../trust/check-release.ts';
import { TrustState } from '../trust/client-state.ts';
import type { TrustPolicy } from '../trust/policy.ts';
import { keyLookup, type VerifiedAttestation } from './bundle.ts';
import { attestationFiles, readAttestations, saveEvidence, type Refused } from './files.ts';
import { attestationsFromLog, attestationsFromLogIndex, type LogAttestations, type LogReader } from './log-source.ts';
import { decideSnapshot, type Attested, type QuorumVerdict, type SnapshotInputs } from './quorum.ts';
import type { SnapshotClaim } from './statement.ts';
import { upstreamChanges, type UpstreamChange } from './upstream.ts';

type Source = { file: string; attestation: VerifiedAttestation; index?: number };

export interface SnapshotDecision {
  readonly name: string;
  readonly inputs: SnapshotInputs;
  readonly verdict?: QuorumVerdict<Source>;
  readonly error?: SourcemeshError;
  /** Where the bundles of a disagreement were saved. */
  readonly evidenceDir?: string;
}

export interface AttestationReport {
  readonly verified: readonly Attested<Source>[];
  readonly refused: readonly Refused[];
  readonly snapshots: readonly SnapshotDecision[];
  /** URLs for which attestations record different downloaded bytes (upstream.ts). */
  readonly upstreamChanges: readonly UpstreamChange<Source>[];
}

export function inputsOfClaim(c: SnapshotClaim): SnapshotInputs {
  return { name: c.name, repository: c.repository, ref: c.ref, prefix: c.prefix, compression: c.compression, ...(c.level === undefined ? {} : { level: c.level }) };
}

export function inputsOfManifest(manifest: Manifest): SnapshotInputs[] {
  return manifest.distfiles.filter((d) => d.git !== undefined).map((d) => ({
    name: d.name, repository: d.git!.repo, ref: d.git!.ref, prefix: d.git!.prefix, compression: d.git!.compression,
    ...(d.git!.level === undefined ? {} : { level: d.git!.level }), ...(d.sha256 === undefined ? {} : { sha256: d.sha256 }),
  }));
}

export async function checkAttestations(o: { paths: readonly string[]; policy: TrustPolicy; manifest?: Manifest; log?: LogReader; stateDir: string; now: Date; limits: Limits }): Promise<AttestationReport> {
  const builders = o.policy.builders;
  if (builders === undefined) throw new SourcemeshError('E_USAGE', 'the trust policy names no builders (builders: {threshold, vkeys})');
  const keys = keyLookup(builders.keys);
  const { verified, refused } = await readAttestations(await attestationFiles(o.paths, o.limits), keys, o.limits);
  if (o.log) {
    // With a manifest, only its files' attestations are wanted: the log's index finds them (O(matches)).
    const logged = await fromLogWithState(o.log, o.policy, keys, o.now, o.stateDir, o.limits, o.manifest?.distfiles.map((d) => d.name));
    verified.push(...logged.verified);
    refused.push(...logged.refused);
  }
  let inputs: SnapshotInputs[];
  if (o.manifest) {
    inputs = inputsOfManifest(o.manifest);
  } else {
    const seen = new Map<string, SnapshotInputs>();
    for (const a of verified) if (a.claim.kind === 'git-snapshot') seen.set(JSON.stringify(inputsOfClaim(a.claim)), inputsOfClaim(a.claim));
    inputs = [...seen.values()];
  }
  const snapshots: SnapshotDecision[] = [];
  // Only attestations of the same file name can be about a snapshot (the others would be left out, each
  // with the same reason): grouped once, so that many snapshots cost no more than their attestations.
  const byName = new Map<string, Attested<Source>[]>();
  for (const a of verified) {
    const list = byName.get(a.claim.name);
    if (list) list.push(a);
    else byName.set(a.claim.name, [a]);
  }
  for (const i of inputs) snapshots.push(await decideAndKeep(i, byName.get(i.name) ?? [], builders.threshold, o.stateDir, o.now));
  return { verified, refused, snapshots, upstreamChanges: upstreamChanges(verified) };
}

/** How many times the log is read again when other processes keep moving the stored checkpoint. */
const STATE_ATTEMPTS = 5;

/**
 * Attestations from the log, its checkpoint held against the one this client stored (STATE/trust.sqlite, the
 * same rows release verification keeps, so either path notices the other's rollback) and the newer stored by
 * compare-and-swap. A rollback or fork is refused (E_POLICY, exit 3) with both checkpoints kept as evidence.
 */
async function fromLogWithState(log: LogReader, policy: TrustPolicy, keys: ReturnType<typeof keyLookup>, now: Date, stateDir: string, limits: Limits, names?: readonly string[]): Promise<LogAttestations> {
  const state = TrustState.open(stateDir);
  try {
    for (let attempt = 1; ; attempt++) {
      const stored = state.checkpoint(policy.log.key.name, policy.log.key);
      const seconds = Math.floor(now.getTime() / 1000);
      let logged: LogAttestations;
      try {
        logged = names === undefined ? await attestationsFromLog(log, policy, keys, seconds, limits, stored) : await attestationsFromLogIndex(log, policy, keys, seconds, limits, stored, names);
      } catch (err) {
        throw await withEvidence(err, stateDir, seconds);
      }
      if (state.update(policy.log.key.name, policy.log.key, { ...(stored ? { checkpoint: stored } : {}) }, logged.checkpoint)) return logged;
      if (attempt >= STATE_ATTEMPTS) throw new SourcemeshError('E_LOCKED', `${state.file}: the stored checkpoint kept changing while attestations were read from ${log.url}`);
    }
  } finally {
    state.close();
  }
}

async function decideAndKeep(i: SnapshotInputs, verified: readonly Attested<Source>[], threshold: number, stateDir: string, now: Date): Promise<SnapshotDecision> {
  try {
    const verdict = decideSnapshot(i, verified, threshold);
    const evidenceDir = verdict.evidence.length ? await saveEvidence(stateDir, i.name, verdict.evidence.map((e) => ({ claim: e.claim, bundle: e.source.attestation.bundle })), now) : undefined;
    return { name: i.name, inputs: i, verdict, ...(evidenceDir ? { evidenceDir } : {}) };
  } catch (err) {
    if (!(err instanceof SourcemeshError) || err.code !== 'E_POLICY') throw err;
    const sources = (err.details.evidence ?? []) as Source[];
    const evidenceDir = sources.length ? await saveEvidence(stateDir, i.name, sources.map((s) => ({ claim: s.attestation.claim, bundle: s.attestation.bundle })), now) : undefined;
    const error = evidenceDir ? new SourcemeshError('E_POLICY', `${err.message}; the bundles are kept in ${evidenceDir}`, { ...err.details, evidence: sources.map((s) => s.file), evidenceDir }) : new SourcemeshError('E_POLICY', err.message, { ...err.details, evidence: [] });
    return { name: i.name, inputs: i, error, ...(evidenceDir ? { evidenceDir } : {}) };
  }
}

/**
 * What `fetch --trust-policy` and `release verify` ask when the policy has builders: every git snapshot of
 * `manifest` accepted by the builders' quorum, from attestation files and the policy's log. Throws E_POLICY
 * (after keeping any evidence) naming each refused snapshot; otherwise the manifest with each snapshot
 * pinned to the bytes the quorum accepted, so that the download is checked against them.
 */
export async function requireBuilders(o: { manifest: Manifest; policy: TrustPolicy; paths: readonly string[]; log?: LogReader; stateDir: string; now: Date; limits: Limits }): Promise<{ manifest: Manifest; report?: AttestationReport }> {
  if (o.policy.builders === undefined || !o.manifest.distfiles.some((d) => d.git)) return { manifest: o.manifest };
  const report = await checkAttestations(o);
  const refused = report.snapshots.filter((s) => s.error);
  if (refused.length) {
    throw new SourcemeshError('E_POLICY', `${refused[0]!.error!.message}${refused.length > 1 ? ` (and ${refused.length - 1} more git snapshot(s) refused)` : ''}`, {
      snapshots: refused.map((s) => ({ name: s.name, message: s.error!.message, ...s.error!.details })), refusedAttestations: report.refused,
    });
  }
  const accepted = new Map(report.snapshots.map((s) => [s.name, s.verdict!.sha256]));
  return { manifest: { ...o.manifest, distfiles: o.manifest.distfiles.map((d) => (d.git && accepted.has(d.name) ? { ...d, sha256: accepted.get(d.name)! } : d)) }, report };
}
