// The log's entry types: every entry the log takes is one of these (docs/FORMATS.md, "Log entry types").
// Adding a type is one module implementing EntryType (types.ts) and one line here; what the admission
// policy asks of it follows from the Subject its check returns.

import { SourcemeshError } from '../../../errors.ts';
import { dsseEntry } from './dsse.ts';
import { releaseEntry } from './release.ts';
import { rotationEntry } from './rotation.ts';
import type { CheckedEntry, EntryLimits, EntryType, KeyLookup } from './types.ts';

export const ENTRY_TYPES: readonly EntryType[] = [releaseEntry, rotationEntry, dsseEntry];

/** The type an entry claims to be, or undefined. */
export function entryTypeOf(entry: Uint8Array): EntryType | undefined {
  return ENTRY_TYPES.find((t) => t.claims(entry));
}

/** Check an entry of any type (see EntryType.check); E_FORMAT when no type claims it. */
export function checkEntry(entry: Uint8Array, keys: KeyLookup, limits: EntryLimits): CheckedEntry {
  if (entry.length > Math.min(limits.logEntryBytes, 0xffff)) throw new SourcemeshError('E_FORMAT', `a log entry is at most ${Math.min(limits.logEntryBytes, 0xffff)} bytes`);
  const type = entryTypeOf(entry);
  if (type === undefined) {
    throw new SourcemeshError('E_FORMAT', 'not a statement this log takes: a signed release or rotation statement (sourcemesh.release/v1, sourcemesh.rotation/v1) or a DSSE envelope');
  }
  return type.check(entry, keys, limits);
}
