// The check shared by the entry types that are C2SP signed notes (release and rotation statements): the
// note's format, then the signature of every key the log knows. Signatures by keys the log does not know
// are ignored, as C2SP signed-note says; a known key's signature that does not verify refuses the entry.
// One signature line per key: a second line by the same key would cost a second verification and says
// nothing more, so it is refused.

import { SourcemeshError } from '../../../errors.ts';
import { parseNote } from '../../note.ts';
import type { EntryLimits, KeyLookup } from './types.ts';

export interface CheckedNote {
  readonly text: string;
  readonly signers: string[];
  readonly named: string[];
}

export function checkSignedNote(entry: Uint8Array, keys: KeyLookup, limits: EntryLimits): CheckedNote {
  const parsed = parseNote(entry, limits);
  const signers: string[] = [];
  const seen = new Set<string>();
  for (const sig of parsed.signatures) {
    const id = `${sig.keyId}:${sig.name}`;
    if (seen.has(id)) throw new SourcemeshError('E_FORMAT', `two signature lines by the key ${sig.name}`, { name: sig.name });
    seen.add(id);
    const known = keys.byId(sig.name, sig.keyId);
    if (known === undefined) continue;
    if (known.verifier.verify(parsed.textBytes, sig.signature) === undefined) {
      throw new SourcemeshError('E_SIGNATURE', `the signature by ${sig.name} (key ${sig.keyId.toString(16).padStart(8, '0')}) does not verify`, { name: sig.name });
    }
    signers.push(known.vkey);
  }
  return { text: parsed.text, signers, named: parsed.signatures.map((s) => s.name) };
}
