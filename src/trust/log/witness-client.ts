// The log's side of C2SP tlog-witness: send a checkpoint with a consistency proof to one witness and get
// its cosignature. A 409 carries the size the witness last cosigned: the request is made again with a proof
// from that size. Everything the witness answers is checked (sizes bounded, cosignatures verified).

import { type Dispatcher, request } from '../../net/undici.ts';
import { isSourcemeshError, SourcemeshError } from '../../errors.ts';
import { readBoundedBody, USER_AGENT } from '../../fetch/http.ts';
import type { Limits } from '../../limits.ts';
import type { Hash } from '../merkle.ts';
import { createVerifier, formatVerifierKey, type NoteSignature, type NoteVerifier, type VerifierKey } from '../note.ts';
import { ADD_CHECKPOINT_PATH, formatAddCheckpoint, parseCosignatures, parseTreeSize, TREE_SIZE_CONTENT_TYPE } from '../witness/protocol.ts';

/** `--witness VKEY=URL`: a witness's cosignature key and its submission prefix. */
export interface WitnessEndpoint {
  readonly key: VerifierKey;
  readonly url: string;
}

/** 409 answers followed before giving up on one checkpoint (a witness moving under us every time is odd). */
const MAX_CONFLICTS = 3;

export class WitnessClient {
  readonly name: string;
  readonly vkey: string;
  readonly url: string;
  readonly #verifier: NoteVerifier;
  readonly #dispatcher: Dispatcher;
  readonly #limits: Limits;
  /** The size this witness last told us it cosigned (200 or 409), if known. */
  knownSize: number | undefined;

  constructor(endpoint: WitnessEndpoint, dispatcher: Dispatcher, limits: Limits) {
    this.name = endpoint.key.name;
    this.vkey = formatVerifierKey(endpoint.key);
    this.url = endpoint.url.replace(/\/+$/, '') + ADD_CHECKPOINT_PATH;
    this.#verifier = createVerifier(endpoint.key);
    this.#dispatcher = dispatcher;
    this.#limits = limits;
  }

  /**
   * Get this witness's cosignature on `note` (the signed checkpoint whose text is `text`, of `size`
   * leaves). `prove(old)` gives the consistency proof from `old` leaves. `guess` is the old size to try
   * when the witness's is unknown (the published checkpoint's size, say).
   */
  async cosign(text: string, note: string, size: number, prove: (old: number) => Promise<readonly Hash[]>, guess: number, signal?: AbortSignal): Promise<NoteSignature[]> {
    let old = Math.min(this.knownSize ?? guess, size);
    for (let conflicts = 0; ; conflicts++) {
      if (this.knownSize !== undefined && this.knownSize > size) {
        throw new SourcemeshError('E_POLICY', `witness ${this.name} has cosigned ${this.knownSize} entries, more than this checkpoint's ${size}`, { witness: this.name, witnessSize: this.knownSize, size });
      }
      const body = formatAddCheckpoint({ old, proof: old === 0 || old === size ? [] : await prove(old), note });
      const answer = await this.#post(body, signal);
      if (answer.status === 200) {
        const signatures = parseCosignatures(text, answer.body, this.#verifier, this.#limits);
        this.knownSize = size;
        return signatures;
      }
      if (answer.status === 409 && answer.contentType === TREE_SIZE_CONTENT_TYPE) {
        this.knownSize = parseTreeSize(answer.body);
        if (conflicts + 1 >= MAX_CONFLICTS) break;
        old = this.knownSize;
        continue;
      }
      const line = answer.body.split('\n', 1)[0]!.slice(0, 200);
      throw new SourcemeshError('E_HTTP', `witness ${this.name} answered ${answer.status} to a checkpoint of ${size} entries (old ${old}): ${line}`, { witness: this.name, status: answer.status, old, size });
    }
    throw new SourcemeshError('E_HTTP', `witness ${this.name} kept answering 409 for a checkpoint of ${size} entries`, { witness: this.name, size });
  }

  async #post(body: string, stop?: AbortSignal): Promise<{ status: number; contentType: string; body: string }> {
    const timeout = AbortSignal.timeout(this.#limits.logWitnessTimeoutMs);
    const signal = stop === undefined ? timeout : AbortSignal.any([timeout, stop]);
    try {
      const res = await request(this.url, {
        method: 'POST',
        body,
        headers: { 'content-type': 'text/plain; charset=utf-8', 'user-agent': USER_AGENT },
        dispatcher: this.#dispatcher,
        signal,
        headersTimeout: this.#limits.logWitnessTimeoutMs,
        bodyTimeout: this.#limits.logWitnessTimeoutMs,
      });
      // The answer is attacker-controlled: at most a note's worth of signature lines is read.
      const max = this.#limits.noteBytes;
      const answer = await readBoundedBody(res.body, max, () => new SourcemeshError('E_FORMAT', `witness ${this.name} answered with over ${max} bytes`, { witness: this.name }));
      const type = res.headers['content-type'];
      return { status: res.statusCode, contentType: String(Array.isArray(type) ? type[0] : type ?? '').split(';')[0]!.trim(), body: answer.toString('utf8') };
    } catch (err) {
      if (isSourcemeshError(err)) throw err;
      throw new SourcemeshError('E_NETWORK', `witness ${this.name} at ${this.url}: ${(err as Error).message}`, { witness: this.name }, { cause: err });
    }
  }
}

/**
 * Split `--witness VKEY=URL`: the URL begins at the first `=http://` or `=https://` (a vkey's base64 may
 * itself end in `=`). The key part is returned as text for the caller to parse (or read from a file).
 */
export function splitWitnessFlag(value: string): { key: string; url: string } {
  const m = /^(.+?)=(https?:\/\/.+)$/.exec(value);
  if (m === null) throw new SourcemeshError('E_USAGE', `--witness ${value.slice(0, 200)}: expected VKEY=URL (an http or https URL)`);
  let url: URL;
  try {
    url = new URL(m[2]!);
  } catch {
    throw new SourcemeshError('E_USAGE', `--witness: ${m[2]} is not a URL`);
  }
  return { key: m[1]!, url: url.href };
}
