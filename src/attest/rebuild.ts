// The rebuilder role (`sourcemesh rebuild`): re-derive every git snapshot of a manifest from upstream,
// compare it with the pinned sha256, attest what was derived (whatever it is: the quorum of independent
// builders decides, src/attest/quorum.ts), and hand the attestation to the log. How a snapshot is derived
// is passed in (the CLI wires src/mirror's clones and generators), so that this module depends on no
// network or generator of its own. On a mismatch, the other generator's bytes are derived too and both
// tars are compared entry by entry: N-version agreement says which side is off, and where.
import { createHash } from 'node:crypto';
import { SourcemeshError } from '../errors.ts';
import { decompressedChunks } from '../compression/decompress.ts';
import type { Limits } from '../limits.ts';
import type { Distfile, Manifest } from '../manifest/distfile.ts';
import { digestsEqual } from '../store/digest.ts';
import { formatVerifierKey, type SignerKey } from '../trust/note.ts';
import { signAttestation, type AttestationBundle } from './bundle.ts';
import type { SnapshotClaim } from './statement.ts';
import { firstDifference, type TarDifference } from './tar-diff.ts';

export interface Derivation {
  readonly commit: string;
  readonly chunks: AsyncIterable<Uint8Array>;
}

export interface RebuildOptions {
  /** Derive the snapshot `d` with the chosen generator (clone or fetch, then generate). */
  derive(d: Distfile, signal?: AbortSignal): Promise<Derivation>;
  /** The same derivation's commit, sha256 and size only, when that is cheaper (on a thread: src/archive/threads.ts). */
  deriveHash?(d: Distfile, signal?: AbortSignal): Promise<{ commit: string; sha256: string; bytes: number }>;
  /** The other generator, on the same clone and commit: used only to explain a mismatch. */
  reference?: { readonly name: string; derive(d: Distfile, commit: string, signal?: AbortSignal): Promise<AsyncIterable<Uint8Array>> };
  /** The node key: each result is attested with it. */
  key?: SignerKey;
  version: string;
  now: () => Date;
  limits: Limits;
  signal?: AbortSignal;
  /** Snapshots derived at once (default 1): a derivation is one thread, `git archive | gzip` two processes. */
  jobs?: number;
  onResult?: (r: RebuildResult) => void;
}

export interface RebuildResult {
  readonly name: string;
  readonly commit?: string;
  readonly sha256?: string;
  readonly bytes?: number;
  readonly pinned?: string;
  /** undefined when nothing is pinned. */
  readonly matches?: boolean;
  /** On a mismatch: what the other generator derived, and the first tar entry where ours differs from it. */
  readonly reference?: { readonly generator: string; readonly sha256: string; readonly matchesPin?: boolean; readonly difference?: TarDifference };
  readonly attestation?: AttestationBundle;
  readonly claim?: SnapshotClaim;
  /** The derivation failed (clone, generator): the error, and nothing attested. */
  readonly error?: SourcemeshError;
}

async function hashAll(chunks: AsyncIterable<Uint8Array>): Promise<{ sha256: string; bytes: number }> {
  const h = createHash('sha256');
  let bytes = 0;
  for await (const c of chunks) {
    h.update(c);
    bytes += c.length;
  }
  return { sha256: h.digest('hex'), bytes };
}

/** Rebuild every git snapshot of `manifest`; one result per snapshot, in manifest order. */
export async function rebuildManifest(manifest: Manifest, o: RebuildOptions): Promise<RebuildResult[]> {
  const snapshots = manifest.distfiles.filter((d) => d.git);
  const results: RebuildResult[] = new Array(snapshots.length);
  let next = 0;
  const worker = async () => {
    while (next < snapshots.length) {
      const i = next++;
      o.signal?.throwIfAborted();
      const r = await rebuildOne(snapshots[i]!, o);
      results[i] = r;
      o.onResult?.(r);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(o.jobs ?? 1, snapshots.length)) }, worker));
  return results;
}

async function rebuildOne(d: Distfile, o: RebuildOptions): Promise<RebuildResult> {
  const git = d.git!;
  let derived: { commit: string; sha256: string; bytes: number };
  try {
    if (o.deriveHash) {
      derived = await o.deriveHash(d, o.signal);
    } else {
      const { commit, chunks } = await o.derive(d, o.signal);
      derived = { commit, ...(await hashAll(chunks)) };
    }
  } catch (err) {
    if (!(err instanceof SourcemeshError) || err.code === 'E_INTERNAL' || o.signal?.aborted) throw err;
    return { name: d.name, ...(d.sha256 ? { pinned: d.sha256 } : {}), error: err };
  }
  const matches = d.sha256 === undefined ? undefined : digestsEqual(derived.sha256, d.sha256);
  let reference: RebuildResult['reference'];
  if (matches === false && o.reference) reference = await explain(d, derived.commit, derived.sha256, o);
  let attestation: AttestationBundle | undefined;
  let claim: SnapshotClaim | undefined;
  if (o.key) {
    claim = {
      kind: 'git-snapshot', name: d.name, sha256: derived.sha256, builder: formatVerifierKey(o.key),
      repository: git.repo, ref: git.ref, commit: derived.commit, prefix: git.prefix, compression: git.compression, ...(git.level === undefined ? {} : { level: git.level }),
    };
    attestation = signAttestation(claim, o.key, { version: o.version, finishedOn: o.now() });
  }
  return {
    name: d.name, commit: derived.commit, sha256: derived.sha256, bytes: derived.bytes, ...(d.sha256 ? { pinned: d.sha256 } : {}),
    ...(matches === undefined ? {} : { matches }), ...(reference ? { reference } : {}), ...(attestation ? { attestation, claim } : {}),
  };
}

/** Derive the snapshot again with ours and the reference generator, and find the first differing tar entry. */
async function explain(d: Distfile, commit: string, oursSha256: string, o: RebuildOptions): Promise<RebuildResult['reference']> {
  const ref = o.reference!;
  const { sha256 } = await hashAll(await ref.derive(d, commit, o.signal));
  // Derived again, both, to compare their tars as streams (a mismatch is rare; memory stays bounded).
  const theirs = sha256 === oursSha256 ? undefined : await ref.derive(d, commit, o.signal);
  const ours = theirs === undefined ? undefined : (await o.derive(d, o.signal)).chunks;
  // The same bytes as ours: no entry differs; the pin is what no derivation reproduces.
  const difference = sha256 === oursSha256 ? undefined : await firstDifference(decompressedChunks(ours!, `${d.name} (ours)`, o.limits), decompressedChunks(theirs!, `${d.name} (${ref.name})`, o.limits), o.limits);
  return { generator: ref.name, sha256, ...(d.sha256 ? { matchesPin: digestsEqual(sha256, d.sha256) } : {}), ...(difference ? { difference } : {}) };
}
