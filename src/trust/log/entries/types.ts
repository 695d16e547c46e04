// What the log knows about an entry once it is checked, and what each entry type module provides. The log
// takes only entries of the types in registry.ts (docs/FORMATS.md, "Log entry types"); checking one is
// pure (parsing and signature verification, no clock, no state), so that it runs on the verifier threads
// (../verifier.ts), off the sequencing path. Whether a checked entry is admitted is ../admission.ts's
// decision, which needs the log's state.

import type { Limits } from '../../../limits.ts';
import type { NoteVerifier } from '../../note.ts';

export type EntryLimits = Pick<Limits, 'logEntryBytes' | 'noteBytes' | 'noteSignatures' | 'noteKeyNameBytes' | 'rotationKeys'>;

/** A key the checker can verify signatures with: its vkey text and a verifier. */
export interface KnownKey {
  readonly vkey: string;
  readonly verifier: NoteVerifier;
}

/** Keys by the name and key ID a signature names (C2SP signed-note: both must match). */
export interface KeyLookup {
  byId(name: string, keyId: number): KnownKey | undefined;
}

/** What an entry asks of the admission policy. */
export type Subject =
  /** A release statement: must be signed as the project `project` requires (its current key set), if listed. */
  | { readonly kind: 'release'; readonly project: string }
  /** A key rotation statement: if its chain is a listed project's, it must follow the chain the log holds. */
  | {
    readonly kind: 'rotation';
    readonly chain: string;
    readonly sequence: number;
    readonly previous: string;
    /** statementHash of its note text. */
    readonly hash: string;
    readonly threshold: number;
    readonly vkeys: readonly string[];
  }
  /** Anything else signed: admitted when an admitted key signed it. */
  | { readonly kind: 'signed' };

/** The result of checking one entry (plain data: it crosses from a verifier thread). */
export interface CheckedEntry {
  /** The entry type's name (registry.ts). */
  readonly type: string;
  readonly subject: Subject;
  /** vkeys of the known keys whose signature on the entry verified (each once). */
  readonly signers: readonly string[];
  /** Names the signature lines give, verified or not (for refusal messages). */
  readonly named: readonly string[];
  /** One line for logs and refusals, e.g. "release manifest tcc 0.9.27". */
  readonly describe: string;
}

export interface EntryType {
  readonly name: string;
  /** Whether `entry` claims to be of this type, from its first bytes (at most one type claims an entry). */
  claims(entry: Uint8Array): boolean;
  /**
   * Parse `entry` and verify every signature by a key `keys` knows. Throws E_FORMAT when the entry is
   * malformed and E_SIGNATURE when a known key's signature does not verify. Attacker-controlled.
   */
  check(entry: Uint8Array, keys: KeyLookup, limits: EntryLimits): CheckedEntry;
}

/** Does `bytes` start with the ASCII `prefix`? */
export function startsWithAscii(bytes: Uint8Array, prefix: string): boolean {
  if (bytes.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (bytes[i] !== prefix.charCodeAt(i)) return false;
  return true;
}
