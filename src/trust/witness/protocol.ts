// C2SP tlog-witness `add-checkpoint`: the request body a log sends, the 409 body a witness answers with,
// and the cosignature lines of a 200. Shared by the witness (which parses requests) and the log (which
// writes them and parses answers). Both directions are attacker-controlled from the reader's side.

import { SourcemeshError } from '../../errors.ts';
import { LIMITS, type Limits } from '../../limits.ts';
import { formatProofLines, type Hash, parseProofLines } from '../merkle.ts';
import { openNote, type NoteSignature, type NoteVerifier } from '../note.ts';

/** C2SP tlog-witness: the 409 body's media type. */
export const TREE_SIZE_CONTENT_TYPE = 'text/x.tlog.size';
export const ADD_CHECKPOINT_PATH = '/add-checkpoint';

export interface AddCheckpointRequest {
  /** The size of the checkpoint the log believes the witness cosigned last (0: none). */
  readonly old: number;
  readonly proof: readonly Hash[];
  /** The signed checkpoint note, as sent. */
  readonly note: string;
}

// C2SP tlog-witness: sizes are ASCII decimal with no leading zeroes (`0` for zero).
const DECIMAL = /^(?:0|[1-9][0-9]{0,15})$/;

function parseSize(text: string): number | undefined {
  if (!DECIMAL.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** The request body: `old <size>\n`, one base64 proof hash per line, an empty line, the checkpoint note. */
export function formatAddCheckpoint(request: AddCheckpointRequest): string {
  if (!Number.isSafeInteger(request.old) || request.old < 0) throw new SourcemeshError('E_INTERNAL', `old size ${request.old} is not a tree size`);
  return `old ${request.old}\n${formatProofLines(request.proof)}\n${request.note}`;
}

const fatalUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Parse an add-checkpoint request body (attacker-controlled). E_FORMAT when malformed (a witness answers
 * 400). The note is returned unparsed: the witness opens it with the origin's keys.
 */
export function parseAddCheckpoint(body: Uint8Array, limits: Pick<Limits, 'witnessRequestBytes' | 'witnessProofLines' | 'proofHashes'> = LIMITS): AddCheckpointRequest {
  const bad = (why: string): never => {
    throw new SourcemeshError('E_FORMAT', `malformed add-checkpoint request: ${why}`);
  };
  if (body.length > limits.witnessRequestBytes) bad(`over ${limits.witnessRequestBytes} bytes`);
  let text: string;
  try {
    text = fatalUtf8.decode(body);
  } catch {
    return bad('not UTF-8');
  }
  let at = text.indexOf('\n');
  if (at < 0) bad('no old size line');
  const first = text.slice(0, at);
  if (!first.startsWith('old ')) bad('the first line is not `old <size>`');
  const old = parseSize(first.slice(4)) ?? bad('the old size is not a decimal tree size without leading zeros');
  const lines: string[] = [];
  for (;;) {
    const next = text.indexOf('\n', at + 1);
    if (next < 0) bad('no empty line after the proof');
    const line = text.slice(at + 1, next);
    at = next;
    if (line === '') break;
    // C2SP tlog-witness: the client MUST NOT send more than 63 consistency proof lines.
    if (lines.length === limits.witnessProofLines) bad(`more than ${limits.witnessProofLines} proof lines`);
    lines.push(line);
  }
  const proof = parseProofLines(lines, limits);
  const note = text.slice(at + 1);
  if (note.length === 0) bad('no checkpoint after the empty line');
  return { old, proof, note };
}

/** The 409 body: the witness's latest cosigned size and a newline. */
export function formatTreeSize(size: number): string {
  return `${size}\n`;
}

/** Parse a 409 body from a witness (attacker-controlled; a few bytes at most). */
export function parseTreeSize(body: string): number {
  const m = /^([0-9]{1,16})\n$/.exec(body);
  const size = m ? parseSize(m[1]!) : undefined;
  if (size === undefined) throw new SourcemeshError('E_FORMAT', `a witness's ${TREE_SIZE_CONTENT_TYPE} body is not a tree size and a newline`, { body: body.slice(0, 40) });
  return size;
}

/**
 * The witness's cosignatures in a 200 answer: signature lines, checked by appending them to the checkpoint
 * text and opening the note with the witness's key (C2SP tlog-witness suggests exactly this). Lines from
 * other keys are ignored. E_FORMAT or E_SIGNATURE if no valid cosignature by `witness` is in it.
 */
export function parseCosignatures(checkpointText: string, body: string, witness: NoteVerifier, limits: Pick<Limits, 'noteBytes' | 'noteSignatures' | 'noteKeyNameBytes'> = LIMITS): NoteSignature[] {
  if (body.length > limits.noteBytes) throw new SourcemeshError('E_FORMAT', `a witness answer over ${limits.noteBytes} bytes`);
  if (!body.endsWith('\n') || !body.startsWith('\u2014 ')) throw new SourcemeshError('E_FORMAT', 'a witness answer is not signature lines');
  const opened = openNote(`${checkpointText}\n${body}`, [witness], limits);
  return opened.verified.map(({ name, keyId, signature }) => ({ name, keyId, signature }));
}
