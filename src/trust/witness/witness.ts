// A C2SP tlog-witness: for each log it knows (by origin, the name of the log's verifier key), it keeps the
// latest checkpoint it cosigned, and cosigns a new checkpoint only when it verifies under the log's key
// and a consistency proof shows it extends that one. Rollbacks and forks are refused with the spec's
// status codes, never cosigned.
//
// addCheckpoint is synchronous from start to end, so within one process two requests can't interleave;
// the store runs the check and the write in one transaction, so two processes on one state can't either
// (the race C2SP tlog-witness describes, where a late request for size N rolls back an accepted N+K).
// The clock is passed in (POSIX seconds), so tests pin the cosignature timestamps.

import { createHash } from 'node:crypto';
import { isSourcemeshError, SourcemeshError } from '../../errors.ts';
import { LIMITS, type Limits } from '../../limits.ts';
import { encodeBase64 } from '../base64.ts';
import { parseCheckpoint, type Checkpoint } from '../checkpoint.ts';
import { EMPTY_TREE_HASH, type Hash, hashesEqual, verifyConsistency } from '../merkle.ts';
import {
  createSigner, createVerifier, formatNote, formatSignatureLine, formatVerifierKey, KEY_TYPE_COSIGNATURE_V1, KEY_TYPE_ED25519, type NoteSignature,
  type NoteSigner, type NoteVerifier, openNote, parseNote, type SignerKey, type VerifierKey,
} from '../note.ts';
import { formatTreeSize, parseAddCheckpoint, TREE_SIZE_CONTENT_TYPE } from './protocol.ts';

/** What a witness remembers of one log: the latest checkpoint it cosigned. */
export interface LogRecord {
  readonly size: number;
  readonly root: Hash;
  /** That checkpoint with the log's verified signatures and this witness's cosignature (served to monitors). */
  readonly checkpoint: string;
}

/** Durable per-log state. `atomically` runs its function as one transaction: no writer in between. */
export interface WitnessStore {
  atomically<T>(fn: () => T): T;
  get(origin: string): LogRecord | undefined;
  put(origin: string, record: LogRecord): void;
}

export type WitnessStatus = 200 | 400 | 403 | 404 | 409 | 422 | 500;

export interface WitnessAnswer {
  readonly status: WitnessStatus;
  readonly contentType: string;
  readonly body: string;
  /** For the operator's log: which log, what was asked, why it was refused. */
  readonly origin?: string;
  readonly old?: number;
  readonly size?: number;
  readonly reason?: string;
  /**
   * A correctly signed checkpoint that failed a consistency check: possible evidence of a log showing
   * different views (C2SP tlog-witness: the witness MAY log it). The note is attached.
   */
  readonly evidence?: string;
}

export interface WitnessOptions {
  /** The witness's cosigning key (type 0x04, cosignature/v1). */
  readonly key: SignerKey;
  /** The logs it witnesses; several keys may share one origin (a key rotation). */
  readonly logs: readonly VerifierKey[];
  readonly store: WitnessStore;
  /** POSIX seconds. */
  readonly clock: () => number;
  readonly limits?: Limits;
}

const TEXT = 'text/plain; charset=utf-8';
const EMPTY_ROOT_B64 = encodeBase64(EMPTY_TREE_HASH);

export function originHash(origin: string): string {
  return createHash('sha256').update(origin, 'utf8').digest('hex');
}

export class Witness {
  readonly vkey: string;
  readonly name: string;
  readonly #signer: NoteSigner;
  readonly #logs = new Map<string, NoteVerifier[]>();
  readonly #byHash = new Map<string, string>();
  readonly #store: WitnessStore;
  readonly #limits: Limits;

  constructor(options: WitnessOptions) {
    if (options.key.type !== KEY_TYPE_COSIGNATURE_V1) {
      throw new SourcemeshError('E_INPUT', `a witness key must be a cosignature/v1 key (type 0x04); ${options.key.name} is not (make one with \`sourcemesh key generate NAME --type cosignature\`)`);
    }
    const clock = options.clock;
    this.#signer = createSigner(options.key, {
      clock: () => {
        const now = clock();
        // C2SP tlog-witness: the cosignature MUST NOT omit the timestamp (it must not be zero).
        if (!(now > 0)) throw new SourcemeshError('E_INTERNAL', `the witness clock gave ${now}`);
        return now;
      },
    });
    this.vkey = formatVerifierKey(options.key);
    this.name = options.key.name;
    for (const key of options.logs) {
      if (key.type !== KEY_TYPE_ED25519) throw new SourcemeshError('E_INPUT', `log key ${key.name} is not an Ed25519 note key (type 0x01)`);
      const verifier = createVerifier(key);
      const list = this.#logs.get(key.name) ?? [];
      list.push(verifier);
      this.#logs.set(key.name, list);
      this.#byHash.set(originHash(key.name), key.name);
    }
    this.#store = options.store;
    this.#limits = options.limits ?? LIMITS;
  }

  /** The origins this witness knows. */
  get origins(): string[] {
    return [...this.#logs.keys()];
  }

  /** C2SP tlog-witness monitor retrieval: the latest cosigned checkpoint of the log whose origin hashes to `hash`. */
  latest(hash: string): string | undefined {
    const origin = this.#byHash.get(hash);
    return origin === undefined ? undefined : this.#store.get(origin)?.checkpoint;
  }

  /** Handle one add-checkpoint request body (attacker-controlled). Never throws for bad input: it answers. */
  addCheckpoint(body: Uint8Array): WitnessAnswer {
    const refuse = (status: WitnessStatus, reason: string, extra: Partial<WitnessAnswer> = {}): WitnessAnswer => ({ status, contentType: TEXT, body: `${reason}\n`, reason, ...extra });
    let request;
    let parsed;
    try {
      request = parseAddCheckpoint(body, this.#limits);
      parsed = parseNote(request.note, this.#limits);
    } catch (err) {
      if (isSourcemeshError(err, 'E_FORMAT')) return refuse(400, err.message);
      throw err;
    }
    const origin = parsed.text.slice(0, parsed.text.indexOf('\n'));
    const verifiers = this.#logs.get(origin);
    if (verifiers === undefined) return refuse(404, 'unknown log origin', { origin: origin.slice(0, 256) });
    const old = request.old;
    let opened;
    try {
      // C2SP tlog-witness: signatures from unknown keys are ignored; none valid from a trusted key, or
      // one from a trusted key that fails, is 403.
      opened = openNote(request.note, verifiers, this.#limits);
    } catch (err) {
      if (isSourcemeshError(err, 'E_SIGNATURE') || isSourcemeshError(err, 'E_FORMAT')) return refuse(403, err.message, { origin, old });
      throw err;
    }
    const lines = opened.text.split('\n');
    // C2SP tlog-witness: a size-zero checkpoint must carry the empty tree's root, else 422.
    if (lines[1] === '0' && lines[2] !== EMPTY_ROOT_B64) return refuse(422, 'a checkpoint of size 0 must have the root SHA-256("")', { origin, old, size: 0, evidence: request.note });
    let checkpoint: Checkpoint;
    try {
      checkpoint = parseCheckpoint(opened.text, this.#limits);
    } catch (err) {
      if (isSourcemeshError(err, 'E_FORMAT')) return refuse(400, err.message, { origin, old });
      throw err;
    }
    const size = checkpoint.size;
    if (old > size) return refuse(400, `old size ${old} is beyond the checkpoint size ${size}`, { origin, old, size });
    const logSignatures: NoteSignature[] = opened.verified.map(({ name, keyId, signature }) => ({ name, keyId, signature }));

    return this.#store.atomically((): WitnessAnswer => {
      const stored = this.#store.get(origin);
      const storedSize = stored?.size ?? 0;
      if (old !== storedSize) {
        return { status: 409, contentType: TREE_SIZE_CONTENT_TYPE, body: formatTreeSize(storedSize), origin, old, size, reason: `old size ${old} is not the latest cosigned size ${storedSize}` };
      }
      const evidence = { origin, old, size, evidence: request.note };
      if (old === 0) {
        if (request.proof.length !== 0) return refuse(422, 'a consistency proof from size 0 must be empty', evidence);
      } else if (old === size) {
        // Same size: the same tree or a fork. C2SP tlog-witness (current text) says 422; earlier drafts
        // said 409. We answer 422, and clients must accept either.
        if (request.proof.length !== 0) return refuse(422, 'a consistency proof between equal sizes must be empty', evidence);
        if (!hashesEqual(stored!.root, checkpoint.rootHash)) return refuse(422, `another root for size ${size} than the one cosigned: a fork`, evidence);
      } else {
        try {
          verifyConsistency(old, size, stored!.root, checkpoint.rootHash, request.proof, this.#limits);
        } catch (err) {
          if (isSourcemeshError(err, 'E_PROOF') || isSourcemeshError(err, 'E_FORMAT')) return refuse(422, err.message, evidence);
          throw err;
        }
      }
      const cosignature: NoteSignature = { name: this.#signer.name, keyId: this.#signer.keyId, signature: this.#signer.sign(opened.textBytes) };
      const note = formatNote(opened.text, [...logSignatures, cosignature], this.#limits);
      // C2SP tlog-witness: the witness MUST persist the new checkpoint before responding.
      this.#store.put(origin, { size, root: Buffer.from(checkpoint.rootHash), checkpoint: note });
      return { status: 200, contentType: TEXT, body: formatSignatureLine(cosignature), origin, old, size };
    });
  }
}
