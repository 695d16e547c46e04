// What the log's attestation index (entry-index.ts, table `subject`) files a DSSE entry under: the sha256 of
// each subject of its in-toto statement, and each subject's name. Keys are fixed-size: a kind byte, then 32
// bytes (the digest itself, or the SHA-256 of the name's UTF-8), so that a hostile name costs no more room
// than any other. The index is a hint for finding entries, never evidence: the server re-reads every entry it
// answers with (a row that does not hold makes it rebuild the index), and a client checks each against the
// checkpoint's root and its own policy (src/attest/log-source.ts). Format: docs/FORMATS.md, "Log entry types".

import { hash } from 'node:crypto';

export type SubjectKind = 'sha256' | 'name';

const KIND_BYTE: Record<SubjectKind, number> = { sha256: 1, name: 2 };
const HEX64 = /^[0-9a-f]{64}$/;
/** Subjects of one statement that are indexed (the log's DSSE entries hold one; more is no attestation of ours). */
const MAX_SUBJECTS = 16;

/** The index key of a subject sha256 (64 lowercase hex digits) or name; undefined for a malformed digest. */
export function subjectKey(kind: SubjectKind, value: string): Buffer | undefined {
  if (kind === 'sha256') return HEX64.test(value) ? Buffer.concat([Buffer.of(KIND_BYTE.sha256), Buffer.from(value, 'hex')]) : undefined;
  return Buffer.concat([Buffer.of(KIND_BYTE.name), hash('sha256', Buffer.from(value, 'utf8'), 'buffer')]);
}

/**
 * The keys a log entry is indexed under: none for an entry that is not a DSSE envelope of an in-toto
 * statement (release and rotation notes, anything malformed). The entry was admitted by the log's gate
 * (or logged unchecked): nothing here is trusted, it is only parsed, bounded by the entry's own size.
 */
export function entrySubjectKeys(entry: Uint8Array): Buffer[] {
  if (entry.length === 0 || entry[0] !== 0x7b) return []; // '{': the DSSE entry type (log entries registry)
  try {
    const env = JSON.parse(Buffer.from(entry.buffer, entry.byteOffset, entry.byteLength).toString('utf8')) as { payload?: unknown };
    if (typeof env?.payload !== 'string') return [];
    // DSSE allows standard or URL-safe base64; Node's decoder reads both.
    const st = JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8')) as { subject?: unknown };
    if (!Array.isArray(st?.subject)) return [];
    const keys: Buffer[] = [];
    for (const s of st.subject.slice(0, MAX_SUBJECTS) as { name?: unknown; digest?: { sha256?: unknown } }[]) {
      const digest = s?.digest?.sha256;
      if (typeof digest === 'string') {
        const k = subjectKey('sha256', digest);
        if (k) keys.push(k);
      }
      if (typeof s?.name === 'string') keys.push(subjectKey('name', s.name)!);
    }
    return keys;
  } catch {
    return [];
  }
}
