// The builders' quorum as `fetch --trust-policy` and `mirror sync --trust-policy` apply it (docs/FORMATS.md,
// "Builders' quorum"): after the release check and before any download, every git snapshot of the manifest
// must have the quorum (attestations from the policy's log, online, and from --attestations paths); the
// manifest comes back with each snapshot pinned to the accepted bytes, so the download or the mirror's own
// derivation is checked against them. Throws E_POLICY (exit 3) when a snapshot is refused.
import type { Dispatcher } from '../net/undici.ts';
import { requireBuilders } from '../attest/check.ts';
import type { Limits } from '../limits.ts';
import type { Manifest } from '../manifest/index.ts';
import { readPolicy } from '../trust/check-release.ts';
import { LogClient } from '../trust/log-client.ts';
import type { Io } from './output.ts';

export async function applyBuilders(io: Io, manifest: Manifest, o: { trustPolicy: string; attestations: readonly string[]; offline?: boolean; dispatcher: Dispatcher; stateDir: string; limits: Limits }): Promise<Manifest> {
  const policy = await readPolicy(o.trustPolicy);
  if (!policy.builders) return manifest;
  const log = policy.log.url !== undefined && !o.offline ? new LogClient(policy.log.url, { dispatcher: o.dispatcher }) : undefined;
  const r = await requireBuilders({ manifest, policy, paths: o.attestations, ...(log ? { log } : {}), stateDir: o.stateDir, now: new Date(), limits: o.limits });
  for (const s of r.report?.snapshots ?? []) {
    io.stderr.write(`builders: ${s.name} sha256 ${s.verdict!.sha256} attested by ${s.verdict!.builders.length} of ${policy.builders.keys.length}${s.verdict!.liars.length ? `; ${s.verdict!.liars.length} disagreed, evidence in ${s.evidenceDir}` : ''}\n`);
  }
  for (const c of r.report?.upstreamChanges ?? []) io.stderr.write(`warning: upstream changed: ${c.url} was downloaded as ${c.versions.map((v) => `sha256 ${v.sha256} (by ${v.builders.length} node(s))`).join(' and as ')}\n`);
  return r.manifest;
}
