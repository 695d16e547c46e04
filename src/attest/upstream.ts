// Upstream replacements: nodes attest the bytes they first downloaded from each upstream URL
// (upstream-download attestations); two of them recording different bytes for one URL mean upstream
// served different files under one name: a silently replaced release tarball, or a node that lies. Pure.
import type { Attested } from './quorum.ts';

export interface UpstreamChange<T> {
  readonly url: string;
  /** Each distinct sha256 seen for the URL, with the builders that recorded it and where. */
  readonly versions: readonly { readonly sha256: string; readonly builders: readonly string[]; readonly sources: readonly T[] }[];
}

export function upstreamChanges<T>(attested: readonly Attested<T>[]): UpstreamChange<T>[] {
  const byUrl = new Map<string, Map<string, { builders: Set<string>; sources: T[] }>>();
  for (const a of attested) {
    if (a.claim.kind !== 'upstream-download') continue;
    const versions = byUrl.get(a.claim.url) ?? new Map<string, { builders: Set<string>; sources: T[] }>();
    const v = versions.get(a.claim.sha256) ?? { builders: new Set<string>(), sources: [] };
    v.builders.add(a.claim.builder);
    v.sources.push(a.source);
    versions.set(a.claim.sha256, v);
    byUrl.set(a.claim.url, versions);
  }
  return [...byUrl].filter(([, v]) => v.size > 1).sort(([x], [y]) => (x < y ? -1 : 1)).map(([url, v]) => ({
    url, versions: [...v].sort(([x], [y]) => (x < y ? -1 : 1)).map(([sha256, g]) => ({ sha256, builders: [...g.builders].sort(), sources: g.sources })),
  }));
}
