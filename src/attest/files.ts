// Attestations on disk: reading bundles given as files or directories (each bounded, each verified on its
// own: one bad bundle is reported, never fatal for the others), writing a node's or a rebuilder's bundles,
// and keeping the evidence of a disagreement (docs/FORMATS.md, "Attestations").
import { lstat, readdir } from 'node:fs/promises';
import path from 'node:path';
import { SourcemeshError } from '../errors.ts';
import { readBoundedFile } from '../fs/bounded-read.ts';
import { writeFilesDurable } from '../fs/durable-file.ts';
import type { Limits } from '../limits.ts';
import type { KeyLookup } from '../trust/log/entries/types.ts';
import { keyLabel } from '../trust/policy.ts';
import { formatBundle, verifyAttestation, type AttestationLimits, type AttestationBundle, type VerifiedAttestation } from './bundle.ts';
import type { Attested } from './quorum.ts';

/** Where a mirror publishes attestations, under its root (served by `serve` like the inventory). */
export const ATTESTATIONS_DIR = path.join('.well-known', 'sourcemesh', 'attestations');

export interface Refused {
  readonly file: string;
  readonly code: string;
  readonly message: string;
}

/** The file names of `paths` (files, or the regular `*.json` files directly in directories), bounded. */
export async function attestationFiles(paths: readonly string[], limits: Pick<Limits, 'attestationFiles'>): Promise<string[]> {
  const out: string[] = [];
  for (const p of paths) {
    const st = await lstat(p).catch((err: NodeJS.ErrnoException) => {
      throw new SourcemeshError('E_INPUT', `${p}: ${err.code === 'ENOENT' ? 'no such file or directory' : err.message}`, { file: p });
    });
    if (!st.isDirectory()) {
      out.push(p);
    } else {
      const names = (await readdir(p, { withFileTypes: true })).filter((e) => e.isFile() && e.name.endsWith('.json') && !e.name.startsWith('.')).map((e) => e.name).sort();
      for (const n of names) out.push(path.join(p, n));
    }
    if (out.length > limits.attestationFiles) throw new SourcemeshError('E_INPUT', `more than ${limits.attestationFiles} attestation files given`, { limit: limits.attestationFiles });
  }
  return out;
}

/** Read and verify each file; the verified ones and the refused ones (with their codes). */
export async function readAttestations(files: readonly string[], keys: KeyLookup, limits: AttestationLimits): Promise<{ verified: Attested<{ file: string; attestation: VerifiedAttestation }>[]; refused: Refused[] }> {
  const verified: Attested<{ file: string; attestation: VerifiedAttestation }>[] = [];
  const refused: Refused[] = [];
  // Read a batch at a time (the reads overlap; a directory of small files is mostly open and close),
  // verify in order (CPU: the Ed25519 checks).
  const READ_AHEAD = 64;
  let reads: Promise<string>[] = [];
  for (const [i, file] of files.entries()) {
    if (i % READ_AHEAD === 0) {
      reads = files.slice(i, i + READ_AHEAD).map((f) => {
        const p = readBoundedFile(f, limits.attestationBytes, 'attestation');
        p.catch(() => {}); // handled when its turn comes
        return p;
      });
    }
    try {
      const text = await reads[i % READ_AHEAD]!;
      const attestation = verifyAttestation(text, file, keys, limits);
      verified.push({ claim: attestation.claim, source: { file, attestation } });
    } catch (err) {
      if (!(err instanceof SourcemeshError) || err.code === 'E_INTERNAL') throw err;
      refused.push({ file, code: err.code, message: err.message });
    }
  }
  return { verified, refused };
}

/** A bundle's file name: the subject and the builder, so that bundles of one file sort together. */
export function bundleFileName(name: string, builder: string): string {
  const safe = (s: string) => s.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 120);
  return `${safe(name)}.${safe(keyLabel(builder))}.sigstore.json`;
}

/** Write bundles into `dir`, durably, each under bundleFileName. The paths written. */
export async function writeBundles(dir: string, bundles: readonly { name: string; builder: string; bundle: AttestationBundle }[]): Promise<string[]> {
  const files = bundles.map((b) => ({ path: path.join(dir, bundleFileName(b.name, b.builder)), data: new TextEncoder().encode(formatBundle(b.bundle)) }));
  if (files.length) await writeFilesDurable(files, { what: 'cannot write the attestation' });
  return files.map((f) => f.path);
}

/** Keep every bundle of a disagreement in STATE/attest-evidence/<time>-<name>/; the directory. */
export async function saveEvidence(stateDir: string, name: string, evidence: readonly { claim: { builder: string; name: string }; bundle: AttestationBundle }[], now: Date): Promise<string> {
  const dir = path.join(path.resolve(stateDir), 'attest-evidence', `${now.toISOString().replace(/[:.]/g, '-')}-${name.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 120)}`);
  // Numbered: a builder that equivocated has two bundles for one name.
  const files = evidence.map((e, i) => ({ path: path.join(dir, `${i + 1}.${bundleFileName(e.claim.name, e.claim.builder)}`), data: new TextEncoder().encode(formatBundle(e.bundle)) }));
  await writeFilesDurable(files, { what: 'cannot write the evidence' });
  return dir;
}
