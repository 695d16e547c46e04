// Log entry type `dsse`: an in-toto Statement v1 in a DSSE envelope (the rebuilders' attestations), signed
// with Ed25519 by note keys. The envelope is JSON {"payloadType", "payload", "signatures": [{"keyid", "sig"}]}
// (DSSE v1, standard or URL-safe base64); each signature is over PAE(payloadType, payload) =
// "DSSEv1 <len> <type> <len> <payload>", and its keyid names the key as `<name>+<8 hex key ID>` (a vkey
// without its key; the whole vkey is accepted too), so that the log finds it the way it finds a signed
// note's. Format: docs/FORMATS.md, "Log entry types".
// The admission policy admits it when an admitted key signed it.

import * as v from 'valibot';
import { SourcemeshError } from '../../../errors.ts';
import { decodeBase64 } from '../../base64.ts';
import { isValidKeyName } from '../../note.ts';
import { firstIssue } from '../../release.ts';
import type { EntryType, KeyLookup } from './types.ts';

export const DSSE_PAYLOAD_TYPE = 'application/vnd.in-toto+json';
export const IN_TOTO_STATEMENT_V1 = 'https://in-toto.io/Statement/v1';
const utf8 = new TextEncoder();

/** DSSE v1: standard or URL-safe base64 (verifiers MUST accept both), padded or not; no mix of the two alphabets. */
function decodeDsseBase64(text: string): Buffer | undefined {
  if (/[+/]/.test(text) && /[-_]/.test(text)) return undefined;
  const std = text.replace(/-/g, '+').replace(/_/g, '/');
  return decodeBase64(std.endsWith('=') ? std : std.padEnd(std.length + ((4 - (std.length % 4)) % 4), '='));
}

/** DSSE v1 pre-authentication encoding. */
export function pae(payloadType: string, payload: Uint8Array): Uint8Array {
  const type = utf8.encode(payloadType);
  return Buffer.concat([utf8.encode(`DSSEv1 ${type.length} `), type, utf8.encode(` ${payload.length} `), payload]);
}

function envelopeSchema(maxSignatures: number) {
  return v.strictObject({
    payloadType: v.pipe(v.string(), v.maxLength(256)),
    payload: v.string(),
    signatures: v.pipe(v.array(v.strictObject({ keyid: v.pipe(v.string(), v.maxLength(1024)), sig: v.pipe(v.string(), v.maxLength(128)) })), v.minLength(1), v.maxLength(maxSignatures)),
  });
}

const statementSchema = v.looseObject({
  _type: v.literal(IN_TOTO_STATEMENT_V1),
  subject: v.pipe(v.array(v.looseObject({ name: v.optional(v.string()), digest: v.record(v.string(), v.string()) })), v.minLength(1)),
  predicateType: v.pipe(v.string(), v.minLength(1)),
});

/** The known key a DSSE keyid names: `<name>+<hex key ID>` or a whole vkey. */
function keyOf(keyid: string, keys: KeyLookup): { name: string; known: ReturnType<KeyLookup['byId']> } {
  // Split like a vkey: the name has no `+`, the key ID is 8 hex digits, the key's base64 may hold more `+`.
  const first = keyid.indexOf('+');
  const name = first < 0 ? keyid : keyid.slice(0, first);
  const id = first < 0 ? undefined : keyid.slice(first + 1, first + 9);
  const key = keyid.length > first + 9 ? keyid.slice(first + 9) : undefined;
  if (id === undefined || !isValidKeyName(name) || !/^[0-9a-f]{8}$/.test(id) || (key !== undefined && !key.startsWith('+'))) {
    throw new SourcemeshError('E_FORMAT', `DSSE keyid ${JSON.stringify(keyid.slice(0, 80))} is not <name>+<8 hex digits> (a vkey without its key)`);
  }
  const known = keys.byId(name, Number.parseInt(id, 16));
  // A whole vkey must be the key the log knows by that name and ID, not merely share them.
  return { name, known: known !== undefined && key !== undefined && known.vkey !== keyid ? undefined : known };
}

export const dsseEntry: EntryType = {
  name: 'dsse',
  claims: (entry) => entry.length > 0 && entry[0] === 0x7b, // '{'
  check(entry, keys, limits) {
    const bad = (why: string): never => {
      throw new SourcemeshError('E_FORMAT', `not a DSSE envelope: ${why}`);
    };
    let json: unknown;
    try {
      json = JSON.parse(Buffer.from(entry.buffer, entry.byteOffset, entry.byteLength).toString('utf8'));
    } catch {
      bad('invalid JSON');
    }
    const env = v.safeParse(envelopeSchema(limits.noteSignatures), json);
    if (!env.success) return bad(firstIssue(env.issues));
    const { payloadType, payload: payloadText, signatures } = env.output;
    if (payloadType !== DSSE_PAYLOAD_TYPE) bad(`payloadType ${JSON.stringify(payloadType)}; the log takes ${DSSE_PAYLOAD_TYPE} (in-toto statements)`);
    const payload = decodeDsseBase64(payloadText) ?? bad('the payload is not canonical base64');
    let statement: unknown;
    try {
      statement = JSON.parse(payload.toString('utf8'));
    } catch {
      bad('the payload is not JSON');
    }
    const st = v.safeParse(statementSchema, statement);
    if (!st.success) return bad(`the payload is not an in-toto Statement v1 (${firstIssue(st.issues)})`);
    const message = pae(payloadType, payload);
    const signers: string[] = [];
    const seen = new Set<string>();
    for (const s of signatures) {
      const { name, known } = keyOf(s.keyid, keys);
      if (seen.has(s.keyid)) bad(`two signatures by the key ${name}`);
      seen.add(s.keyid);
      const sig = decodeDsseBase64(s.sig) ?? bad(`the signature by ${name} is not canonical base64`);
      if (known === undefined) continue;
      if (known.verifier.verify(message, sig) === undefined) throw new SourcemeshError('E_SIGNATURE', `the DSSE signature by ${name} does not verify`, { name });
      if (!signers.includes(known.vkey)) signers.push(known.vkey);
    }
    const first = st.output.subject[0]!;
    return {
      type: 'dsse',
      subject: { kind: 'signed' },
      signers,
      named: signatures.map((s) => s.keyid.split('+')[0]!),
      describe: `in-toto statement (${st.output.predicateType}) about ${first.name ?? Object.values(first.digest)[0] ?? 'a subject'}`,
    };
  },
};
