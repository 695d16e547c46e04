// Attestations of what this node derived in one run (docs/FORMATS.md, "Attestations", "Who writes them"):
// each git snapshot it made itself (its commit from the clone it was made from) and each file it downloaded
// from upstream (its URL). Bytes taken from a mirror or a peer were not derived here and are not attested.
// Shared by `mirror sync` (ROOT/.well-known/sourcemesh/attestations/) and `fetch` (STORE/attestations/).
import type { FileOutcome } from '../fetch/fetcher.ts';
import type { Distfile, Manifest } from '../manifest/distfile.ts';
import { formatVerifierKey, type SignerKey } from '../trust/note.ts';
import { VERSION } from '../version.ts';
import { signAttestation } from './bundle.ts';
import { writeBundles } from './files.ts';
import type { Claim } from './statement.ts';

export async function writeDerivedAttestations(dir: string, manifest: Manifest, outcomes: readonly FileOutcome[], key: SignerKey, o: { resolveCommit: (d: Distfile) => Promise<string>; now: Date }): Promise<string[]> {
  const byName = new Map(manifest.distfiles.map((d) => [d.name, d]));
  const builder = formatVerifierKey(key);
  const bundles = [];
  for (const f of outcomes) {
    const d = byName.get(f.name);
    if (!d || f.status !== 'fetched' || (f.via !== undefined && f.via !== 'upstream')) continue;
    const tar = d.tarSha256 === undefined ? {} : { tarSha256: d.tarSha256 };
    let claim: Claim;
    if (d.git) {
      const commit = await o.resolveCommit(d);
      claim = { kind: 'git-snapshot', name: d.name, sha256: f.sha256, builder, repository: d.git.repo, ref: d.git.ref, commit, prefix: d.git.prefix, compression: d.git.compression, ...(d.git.level === undefined ? {} : { level: d.git.level }), ...tar };
    } else {
      if (f.source === undefined) continue;
      claim = { kind: 'upstream-download', name: d.name, sha256: f.sha256, builder, url: f.source, ...tar };
    }
    bundles.push({ name: d.name, builder, bundle: signAttestation(claim, key, { version: VERSION, finishedOn: o.now }) });
  }
  return writeBundles(dir, bundles);
}
