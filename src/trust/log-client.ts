// A client of a sourcemesh log over HTTP: submit an entry (`POST /add?wait=checkpoint`), read the published
// checkpoint and tiles (C2SP tlog-tiles), and from them prove inclusion and consistency. Everything the
// log answers is attacker-controlled: bodies are bounded, and what is computed from tiles is trusted only
// after it verifies against a checkpoint the policy accepted (policy.ts).

import { request, type Dispatcher } from '../net/undici.ts';
import { isSourcemeshError, SourcemeshError } from '../errors.ts';
import { defaultDispatcher, readBoundedBody, USER_AGENT } from '../fetch/http.ts';
import { LIMITS, type Limits } from '../limits.ts';
import { decodeBase64 } from './base64.ts';
import { parseCheckpoint } from './checkpoint.ts';
import { type Hash, leafHash, parseProofLines, proveConsistency, proveInclusion, verifyInclusion } from './merkle.ts';
import { parseNote } from './note.ts';
import type { ReleaseBundle } from './release.ts';
import { type EntryBundle, entryBundlePath, type Tile, TileHashReader, tilePath } from './tiles.ts';

export type LogClientLimits = Pick<Limits, 'logFetchTimeoutMs' | 'logFetchBytes' | 'logCheckpointWaitMs' | 'noteBytes' | 'proofHashes' | 'noteSignatures' | 'noteKeyNameBytes' | 'checkpointExtensionLines'>;

/** One page of GET /attestations/...: entries and their inclusion proofs, unauthenticated until each proof verifies. */
export interface AttestationPage {
  readonly size: number;
  readonly entries: readonly { readonly index: number; readonly entry: Uint8Array; readonly inclusionProof: Hash[] }[];
  readonly more: boolean;
}

export interface Submitted {
  readonly index: number;
  readonly checkpoint?: string;
  readonly inclusionProof?: Hash[];
}

export class LogClient {
  readonly url: string;
  readonly #dispatcher: Dispatcher;
  readonly #limits: LogClientLimits;
  readonly #tiles = new Map<string, Uint8Array>();

  constructor(url: string, options: { dispatcher?: Dispatcher; limits?: LogClientLimits } = {}) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new SourcemeshError('E_USAGE', `log URL ${url}: not a URL`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new SourcemeshError('E_USAGE', `log URL ${url}: expected http(s)`);
    this.url = url.replace(/\/+$/, '');
    this.#dispatcher = options.dispatcher ?? defaultDispatcher();
    this.#limits = options.limits ?? LIMITS;
  }

  async #fetch(method: 'GET' | 'POST', path: string, body?: Uint8Array | string, timeoutMs = this.#limits.logFetchTimeoutMs, headers: Record<string, string> = {}): Promise<{ status: number; body: Buffer; retryAfter?: string }> {
    const url = `${this.url}/${path}`;
    try {
      const res = await request(url, {
        method,
        body,
        headers: { 'user-agent': USER_AGENT, ...(body === undefined ? {} : { 'content-type': 'application/octet-stream' }), ...headers },
        dispatcher: this.#dispatcher,
        signal: AbortSignal.timeout(timeoutMs),
        headersTimeout: timeoutMs,
        bodyTimeout: this.#limits.logFetchTimeoutMs,
      });
      const max = this.#limits.logFetchBytes;
      const answer = await readBoundedBody(res.body, max, () => new SourcemeshError('E_FORMAT', `${url}: the log answered with over ${max} bytes`, { url }));
      const retryAfter = res.headers['retry-after'];
      return { status: res.statusCode, body: answer, ...(typeof retryAfter === 'string' ? { retryAfter } : {}) };
    } catch (err) {
      if (isSourcemeshError(err)) throw err;
      throw new SourcemeshError('E_NETWORK', `${url}: ${(err as Error).message}`, { url }, { cause: err });
    }
  }

  /**
   * POST /add?wait=checkpoint: the index, and the cosigned checkpoint and inclusion proof once published.
   * `keys`: the vkeys of the keys that signed the entry, for a log that admits any signed statement (it
   * can't verify a signature without the key). A refusal by the log's admission is E_REFUSED with its reason.
   */
  async add(entry: Uint8Array | string, options: { keys?: readonly string[] } = {}): Promise<Submitted> {
    const headers: Record<string, string> = options.keys !== undefined && options.keys.length > 0 ? { 'sourcemesh-key': options.keys.join(' ') } : {};
    const a = await this.#fetch('POST', 'add?wait=checkpoint', entry, this.#limits.logCheckpointWaitMs + this.#limits.logFetchTimeoutMs, headers);
    if (a.status !== 200) throw refusal(`${this.url}/add`, a.status, a.body, a.retryAfter);
    let body: { index?: unknown; checkpoint?: unknown; inclusionProof?: unknown };
    try {
      body = JSON.parse(a.body.toString('utf8'));
    } catch {
      throw new SourcemeshError('E_FORMAT', `${this.url}/add: the answer is not JSON`);
    }
    if (!Number.isSafeInteger(body.index) || (body.index as number) < 0) throw new SourcemeshError('E_FORMAT', `${this.url}/add: the answer has no index`);
    const index = body.index as number;
    if (typeof body.checkpoint !== 'string' || !Array.isArray(body.inclusionProof) || !body.inclusionProof.every((l) => typeof l === 'string')) return { index };
    return { index, checkpoint: body.checkpoint, inclusionProof: parseProofLines(body.inclusionProof as string[], this.#limits) };
  }

  /** GET /checkpoint (not verified here). */
  async checkpoint(): Promise<string> {
    const a = await this.#fetch('GET', 'checkpoint');
    if (a.status !== 200) throw new SourcemeshError('E_HTTP', `${this.url}/checkpoint: HTTP ${a.status}`, { status: a.status });
    return a.body.toString('utf8');
  }

  async tile(tile: Tile): Promise<Uint8Array> {
    const p = tilePath(tile);
    const cached = this.#tiles.get(p);
    if (cached) return cached;
    const a = await this.#fetch('GET', p);
    if (a.status !== 200) throw new SourcemeshError('E_HTTP', `${this.url}/${p}: HTTP ${a.status}`, { status: a.status });
    this.#tiles.set(p, a.body);
    return a.body;
  }

  /** GET tile/entries/N[.p/W]: an entry bundle's bytes (unauthenticated until the entries hash to a checkpoint's root). */
  async entryBundle(bundle: EntryBundle): Promise<Uint8Array> {
    const p = entryBundlePath(bundle);
    const a = await this.#fetch('GET', p);
    if (a.status !== 200) throw new SourcemeshError('E_HTTP', `${this.url}/${p}: HTTP ${a.status}`, { status: a.status });
    return a.body;
  }

  /**
   * GET /attestations/{sha256|name}/VALUE?size=N&after=I: the entries the log's subject index files under that
   * subject (a page; nothing proven yet). undefined when the log has no such index (404: a log from before it).
   */
  async attestations(kind: 'sha256' | 'name', value: string, size: number, after: number): Promise<AttestationPage | undefined> {
    const p = `attestations/${kind}/${encodeURIComponent(value)}?size=${size}&after=${after}`;
    const a = await this.#fetch('GET', p);
    if (a.status === 404) return undefined;
    if (a.status !== 200) throw new SourcemeshError('E_HTTP', `${this.url}/${p}: HTTP ${a.status}`, { status: a.status });
    const bad = (why: string): never => {
      throw new SourcemeshError('E_FORMAT', `${this.url}/${p}: ${why}`, { url: `${this.url}/${p}` });
    };
    let body: { size?: unknown; entries?: unknown; more?: unknown };
    try {
      body = JSON.parse(a.body.toString('utf8'));
    } catch {
      return bad('the answer is not JSON');
    }
    if (body.size !== size || !Array.isArray(body.entries) || typeof body.more !== 'boolean') bad(`not an answer for the tree of ${size} entries`);
    const entries = (body.entries as { index?: unknown; entry?: unknown; inclusionProof?: unknown }[]).map((e) => {
      if (!Number.isSafeInteger(e?.index) || (e.index as number) <= after || (e.index as number) >= size) bad('an entry index outside the asked range');
      const entry = typeof e.entry === 'string' ? decodeBase64(e.entry) : undefined;
      if (!entry) bad('an entry that is not base64');
      if (!Array.isArray(e.inclusionProof) || !e.inclusionProof.every((l) => typeof l === 'string')) bad('an entry without its inclusion proof');
      return { index: e.index as number, entry: entry!, inclusionProof: parseProofLines(e.inclusionProof as string[], this.#limits) };
    });
    // Log order, each once: a page that goes back would let the client loop.
    for (let i = 1; i < entries.length; i++) if (entries[i]!.index <= entries[i - 1]!.index) bad('entries out of order');
    if (body.more && entries.length === 0) bad('"more" with no entries');
    return { size, entries, more: body.more as boolean };
  }

  /** Hashes of the tree of `size` leaves, read from the log's tiles (unauthenticated until a proof verifies). */
  reader(size: number): TileHashReader {
    return new TileHashReader(size, (tile) => this.tile(tile));
  }
}

/**
 * The log's answer to a submission as one line: 400, 403 and 413 (not a statement it takes, not admitted,
 * too large) are E_REFUSED, with the log's reason; 429 (a quota or rate) says when to retry; the rest is E_HTTP.
 */
function refusal(url: string, status: number, body: Buffer, retryAfter: string | undefined): SourcemeshError {
  // The reason is the log's text: one line of printable characters, bounded.
  const reason = body.toString('utf8').split('\n', 1)[0]!.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ').trim().slice(0, 300) || 'no reason given';
  if (status === 400 || status === 403 || status === 413) {
    return new SourcemeshError('E_REFUSED', `${url} refused the entry: ${reason} (HTTP ${status})`, { status, reason });
  }
  if (status === 429) {
    const after = retryAfter !== undefined && /^\d{1,9}$/.test(retryAfter) ? `; retry after ${retryAfter} s` : '';
    return new SourcemeshError('E_HTTP', `${url} refused the entry for now: ${reason} (HTTP 429${after})`, { status, reason, ...(after ? { retryAfter: Number(retryAfter) } : {}) });
  }
  return new SourcemeshError('E_HTTP', `${url}: HTTP ${status}: ${reason}`, { status });
}

/** The size of a checkpoint note, without verifying it (the policy does that). */
export function checkpointSize(note: string, limits: LogClientLimits = LIMITS): number {
  return parseCheckpoint(parseNote(note, limits).text, limits).size;
}

/**
 * A bundle re-proved against the log's current checkpoint: the same release and rotation hops, the new
 * checkpoint, inclusion proofs from its tiles, and the consistency proof from `storedSize` (when it is
 * smaller). Nothing here is trusted yet: verifyRelease checks all of it.
 */
export async function refreshBundle(bundle: ReleaseBundle, log: LogClient, storedSize: number | undefined): Promise<{ bundle: ReleaseBundle; consistencyProof?: Hash[] }> {
  const checkpoint = await log.checkpoint();
  const size = checkpointSize(checkpoint);
  const reader = log.reader(size);
  const prove = async (index: number, what: string) => {
    if (index >= size) throw new SourcemeshError('E_POLICY', `the log's checkpoint has ${size} entries: ${what} at index ${index} is not in it (a rollback?)`, { index, size });
    return proveInclusion(index, size, reader);
  };
  const inclusionProof = await prove(bundle.index, 'the release');
  const rotations = [];
  for (const hop of bundle.rotations) rotations.push({ ...hop, inclusionProof: await prove(hop.index, 'a rotation statement') });
  const consistencyProof = storedSize !== undefined && storedSize > 0 && storedSize < size ? await proveConsistency(storedSize, size, reader) : undefined;
  return { bundle: { ...bundle, checkpoint, inclusionProof, rotations, consistency: [] }, ...(consistencyProof ? { consistencyProof } : {}) };
}

/** Wait until the log publishes a checkpoint covering `index`; the note and the entry's inclusion proof. */
export async function awaitInclusion(log: LogClient, entry: Uint8Array, index: number, timeoutMs: number, pollMs = 250): Promise<{ checkpoint: string; inclusionProof: Hash[] }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let note: string | undefined;
    try {
      note = await log.checkpoint();
    } catch (err) {
      if (!isSourcemeshError(err, 'E_HTTP')) throw err;
    }
    if (note !== undefined) {
      const cp = parseCheckpoint(parseNote(note).text);
      if (cp.size > index) {
        const proof = await proveInclusion(index, cp.size, log.reader(cp.size));
        verifyInclusion(index, cp.size, leafHash(entry), proof, cp.rootHash);
        return { checkpoint: note, inclusionProof: proof };
      }
    }
    if (Date.now() > deadline) throw new SourcemeshError('E_NETWORK', `${log.url}: no checkpoint covering entry ${index} within ${Math.round(timeoutMs / 1000)} s`, { index });
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
