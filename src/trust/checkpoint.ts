// C2SP tlog-checkpoint: the note text a log signs for its tree head. Exactly:
//   <origin>\n<tree size in decimal>\n<base64 root hash>\n[<extension line>\n]...
// Parsing is strict (one spelling per checkpoint), formatting is exact, so that a checkpoint
// round-trips byte for byte and its signatures stay valid.

import { SourcemeshError } from '../errors.ts';
import { LIMITS, type Limits } from '../limits.ts';
import { decodeBase64, encodeBase64 } from './base64.ts';
import { EMPTY_TREE_HASH, HASH_SIZE, type Hash, hashesEqual } from './merkle.ts';
import { checkNoteText, openNote, type NoteLimits, type NoteVerifier, type OpenedNote } from './note.ts';

export interface Checkpoint {
  /** The log's identity, e.g. `example.com/log42`. */
  readonly origin: string;
  /** Number of leaves in the tree. */
  readonly size: number;
  readonly rootHash: Hash;
  /** Opaque extension lines, without newlines (C2SP tlog-checkpoint: NOT RECOMMENDED, but allowed). */
  readonly extensions: readonly string[];
}

export type CheckpointLimits = Pick<Limits, 'noteBytes' | 'noteKeyNameBytes' | 'checkpointExtensionLines'>;

const utf8 = new TextEncoder();
// C2SP tlog-checkpoint: the tree size is ASCII decimal with no leading zeroes (`0` for the empty tree).
const DECIMAL = /^(?:0|[1-9][0-9]*)$/;

/** Parse checkpoint note text (what openNote returns as `text`). Attacker-controlled. */
export function parseCheckpoint(text: string, limits: CheckpointLimits = LIMITS): Checkpoint {
  const bad = (why: string): never => {
    throw new SourcemeshError('E_FORMAT', `malformed checkpoint: ${why}`);
  };
  if (typeof text !== 'string') bad('not text');
  if (text.length > limits.noteBytes) bad(`longer than ${limits.noteBytes} characters`);
  try {
    checkNoteText(text);
  } catch (err) {
    bad((err as Error).message);
  }
  const lines = text.slice(0, -1).split('\n');
  if (lines.length < 3) bad('fewer than three lines');
  if (lines.length - 3 > limits.checkpointExtensionLines) bad(`more than ${limits.checkpointExtensionLines} extension lines`);
  const [origin, sizeText, rootText] = lines as [string, string, string];
  const extensions = lines.slice(3);
  // C2SP tlog-checkpoint: the origin MUST be non-empty (its SHOULD-rules about spaces and + are the log's business).
  if (origin.length === 0) bad('the origin line is empty');
  if (utf8.encode(origin).length > limits.noteKeyNameBytes) bad(`the origin is longer than ${limits.noteKeyNameBytes} bytes`);
  if (!DECIMAL.test(sizeText)) bad('the tree size is not a decimal number without leading zeros');
  const size = Number(sizeText);
  if (!Number.isSafeInteger(size)) bad('the tree size is above 2^53-1');
  // C2SP tlog-checkpoint: the root hash line is base64 (of a 32-byte SHA-256 hash: 44 characters).
  const rootHash = (rootText.length === 44 ? decodeBase64(rootText) : undefined) ?? bad('the root hash is not the base64 of 32 bytes');
  if (rootHash.length !== HASH_SIZE) bad('the root hash is not 32 bytes');
  // RFC 9162 §2.1.1: the empty tree has exactly one root.
  if (size === 0 && !hashesEqual(rootHash, EMPTY_TREE_HASH)) bad('a tree of size 0 has the root SHA-256("")');
  // C2SP tlog-checkpoint: extension lines, if any, MUST be non-empty.
  if (extensions.some((line) => line.length === 0)) bad('an extension line is empty');
  return { origin, size, rootHash: Buffer.from(rootHash), extensions };
}

/** The checkpoint's note text, exactly as C2SP tlog-checkpoint lays it out. */
export function formatCheckpoint(checkpoint: Checkpoint, limits: CheckpointLimits = LIMITS): string {
  const { origin, size, rootHash, extensions } = checkpoint;
  const text = `${origin}\n${size}\n${encodeBase64(rootHash)}\n${extensions.map((line) => `${line}\n`).join('')}`;
  // What we write must be what we read back: a checkpoint we could not parse is never signed.
  const back = parseCheckpoint(text, limits);
  if (back.origin !== origin || back.size !== size || back.extensions.length !== extensions.length || !hashesEqual(back.rootHash, rootHash)) {
    throw new SourcemeshError('E_FORMAT', 'the checkpoint does not round-trip (an origin or extension line contains a newline?)');
  }
  return text;
}

export interface OpenedCheckpoint {
  readonly checkpoint: Checkpoint;
  readonly note: OpenedNote;
}

/**
 * Open a signed checkpoint: verify it against `verifiers` (C2SP signed-note rules: unknown signatures
 * ignored, at least one known valid one) and parse its text. Which keys must have signed is the caller's
 * policy; `note.verified` lists them.
 */
export function openCheckpoint(note: Uint8Array | string, verifiers: readonly NoteVerifier[], limits: CheckpointLimits & NoteLimits = LIMITS): OpenedCheckpoint {
  const opened = openNote(note, verifiers, limits);
  return { checkpoint: parseCheckpoint(opened.text, limits), note: opened };
}
