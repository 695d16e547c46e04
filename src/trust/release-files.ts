// Reading the files a release involves: trust policies, release bundles, rotation chains and detached
// notes, each bounded by its limit in src/limits.ts; and the subject a release names (a manifest or a
// mirror list) with the digest the release statement carries (docs/FORMATS.md, "Releases").

import { isSourcemeshError, SourcemeshError } from '../errors.ts';
import { parseMirrorList } from '../fetch/mirror-list.ts';
import { readBoundedFile } from '../fs/bounded-read.ts';
import { LIMITS } from '../limits.ts';
import { canonicalDigest, loadManifest, manifestDigest, type Manifest } from '../manifest/index.ts';
import { parseNote, type NoteSignature } from './note.ts';
import type { ReleaseSubject } from './policy.ts';
import { parseReleaseBundle, type ReleaseBundle, type ReleaseKind } from './release.ts';
import { parseChainFile, type ChainFile } from './rotation.ts';

/** The release subject of a manifest already loaded. */
export function manifestSubject(manifest: Manifest): ReleaseSubject {
  return { kind: 'manifest', sha256: manifestDigest(manifest) };
}

/** What a release of `file` names (kind and digest), and the manifest's own name and version if it has them. */
export async function loadReleaseSubject(file: string, kind: ReleaseKind): Promise<{ subject: ReleaseSubject; name?: string; version?: string }> {
  if (kind === 'manifest') {
    const m = await loadManifest(file);
    return { subject: manifestSubject(m), name: m.name, ...(m.version === undefined ? {} : { version: m.version }) };
  }
  const text = await readBoundedFile(file, LIMITS.manifestBytes, 'mirror list');
  parseMirrorList(text, file);
  // The canonical JSON of the list as written: key order and spacing are free, every field counts.
  return { subject: { kind, sha256: canonicalDigest(JSON.parse(text)) } };
}

export async function readChainFile(file: string): Promise<ChainFile> {
  return parseChainFile(await readBoundedFile(file, LIMITS.rotationChainBytes, 'rotation chain'), file);
}

/** The release bundle at `file`, or undefined when there is none or it is not one (it will be replaced). */
export async function readBundleIfAny(file: string): Promise<ReleaseBundle | undefined> {
  try {
    return parseReleaseBundle(await readBoundedFile(file, LIMITS.releaseBundleBytes, 'release bundle'), file);
  } catch {
    return undefined;
  }
}

/**
 * The signatures of release notes signed elsewhere (`release --detached`). Each must sign exactly
 * `statement`: a note of another file, name or version is refused rather than mixed in. Their validity
 * is for the verifier (the policy's keys) to judge; with --chain they are checked against the chain.
 */
export async function readDetachedSignatures(files: readonly string[], statement: string): Promise<NoteSignature[]> {
  const all: NoteSignature[] = [];
  for (const f of files) {
    let note: ReturnType<typeof parseNote>;
    try {
      note = parseNote(await readBoundedFile(f, LIMITS.noteBytes, 'signed note'));
    } catch (err) {
      if (isSourcemeshError(err, 'E_FORMAT')) throw new SourcemeshError('E_FORMAT', `--signature ${f}: ${err.message}`, { file: f });
      throw err;
    }
    if (note.text !== statement) throw new SourcemeshError('E_INPUT', `--signature ${f}: signs another release statement than this one (a different file, name, version or kind)`, { file: f });
    all.push(...note.signatures);
  }
  return all;
}
