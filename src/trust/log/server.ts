// The log over HTTP:
//   POST /add                    body = one entry (a statement: gate.ts); 200 {"index": N} once it is durably
//                                stored, or logged before; 400 not a statement it takes, 403 not admitted,
//                                413 too large, 429 over a quota or the address's rate, 503 busy
//   POST /add?wait=checkpoint    the same, answered once a published checkpoint covers it, with that
//                                checkpoint and the entry's inclusion proof
//   GET  /checkpoint             the published checkpoint (C2SP tlog-tiles), never cached for long
//   GET  /tile/<L>/<N>[.p/<W>]   tiles, and /tile/entries/... entry bundles (C2SP tlog-tiles): full ones
//                                immutable, partial ones cached briefly
//   GET  /attestations/sha256/<64 hex>, /attestations/name/<percent-encoded name>   [?size=N][&after=I]
//                                the DSSE entries whose statement has that subject (the subject index,
//                                entry-index.ts), each with its inclusion proof in the tree of N entries (a
//                                published size; default the published checkpoint's), in log order after
//                                index I, a page at a time ("more": true when there are others)
// Only tiles of the committed tree are served, so files a crash left beyond it never reach a client.

import type http from 'node:http';
import type { Logger } from '../../logger.ts';
import { isSourcemeshError } from '../../errors.ts';
import type { Limits } from '../../limits.ts';
import { clientKey, retryAfterSeconds, TokenBuckets } from '../../net/rate-limit.ts';
import { encodeBase64 } from '../base64.ts';
import { parseCheckpoint } from '../checkpoint.ts';
import { parseNote } from '../note.ts';
import { parseTilePath, TILE_WIDTH, tileWidth, tilePath, entryBundlePath, type TilePath } from '../tiles.ts';
import { BodyTooLarge, createTrustServer, readBody, sendText } from './http-server.ts';
import type { Checkpointer } from './checkpoints.ts';
import { type Gate, Refused } from './gate.ts';
import type { Sequencer } from './sequencer.ts';
import type { LogStorage } from './storage.ts';
import type { EntryIndex } from './entry-index.ts';
import { entrySubjectKeys, subjectKey } from './subjects.ts';

export interface LogServerOptions {
  readonly storage: LogStorage;
  readonly sequencer: Pick<Sequencer<unknown>, 'head'>;
  readonly gate: Gate;
  readonly checkpointer: Checkpointer;
  readonly logger: Logger;
  readonly limits: Limits;
  /** POST /add per client address: sustained per second (0: no limit) and burst. */
  readonly addRate: { readonly perSecond: number; readonly burst: number };
  /** The subject index (GET /attestations/...); without it those paths are 404. */
  readonly index?: Pick<EntryIndex, 'subjects' | 'rebuildSubjects'>;
  /** Milliseconds (tests pin it). */
  readonly now?: () => number;
}

/** Header in which a submitter names the vkeys that signed its entry (used under --admit-any-signed). */
export const SUBMITTER_KEY_HEADER = 'sourcemesh-key';

const IMMUTABLE = 'public, max-age=31536000, immutable';
const SHORT = 'public, max-age=10';

export function createLogServer(options: LogServerOptions): http.Server {
  const { storage, sequencer, gate, checkpointer, logger, limits } = options;
  const maxEntry = Math.min(limits.logEntryBytes, 0xffff);
  const now = options.now ?? Date.now;
  // Per address as well as per key: unsigned junk and bad signatures cost a check each, and no key pays for them.
  const rate = new TokenBuckets({ perSecond: options.addRate.perSecond, burst: options.addRate.burst, maxClients: limits.logAddRateClients });

  return createTrustServer(limits, (req, res) => {
    void handle(req, res).catch((err) => {
      logger.error({ err }, 'log request failed');
      sendText(res, 500, 'internal error');
    });
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const target = req.url ?? '/';
    if (target.length > limits.tilePathBytes + 64) return sendText(res, 414, 'request target too long');
    const q = target.indexOf('?');
    const pathname = q < 0 ? target : target.slice(0, q);
    const query = q < 0 ? '' : target.slice(q + 1);
    if (pathname === '/add') return add(req, res, query === 'wait=checkpoint');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      req.resume();
      return sendText(res, 405, 'use GET', { allow: 'GET, HEAD' });
    }
    if (pathname === '/checkpoint') return checkpoint(req, res);
    if (pathname.startsWith('/tile/')) return tile(req, res, pathname.slice(1));
    if (pathname.startsWith('/attestations/') && options.index) return attestations(res, pathname, query);
    sendText(res, 404, 'not found');
  }

  async function attestations(res: http.ServerResponse, pathname: string, query: string): Promise<void> {
    const m = /^\/attestations\/(sha256|name)\/([^/]+)$/.exec(pathname);
    let key: Buffer | undefined;
    try {
      key = m ? subjectKey(m[1] as 'sha256' | 'name', decodeURIComponent(m[2]!)) : undefined;
    } catch {
      key = undefined;
    }
    if (!key) return sendText(res, 404, 'not an attestation lookup: /attestations/sha256/<64 hex> or /attestations/name/<name>');
    const q = new URLSearchParams(query);
    const note = await storage.readCheckpoint();
    if (note === undefined) return sendText(res, 404, 'no checkpoint published yet');
    const published = parseCheckpoint(parseNote(note, limits).text, limits).size;
    const size = q.has('size') ? Number(q.get('size')) : published;
    const after = q.has('after') ? Number(q.get('after')) : -1;
    if (!Number.isSafeInteger(size) || size < 0 || size > published) return sendText(res, 400, `size must be a published tree size, at most ${published}`);
    if (!Number.isSafeInteger(after) || after < -1) return sendText(res, 400, 'after must be an entry index');
    for (let attempt = 0; ; attempt++) {
      const page = await lookup(key, size, after);
      if (page) return sendJson(res, { size, ...page });
      // A row named an entry without that subject: the index is damaged. Rebuilt from the entries, once.
      if (attempt > 0) return sendText(res, 500, 'the subject index does not match the entries');
      logger.warn({ size }, 'the subject index names an entry without that subject; rebuilding it');
      await options.index!.rebuildSubjects();
    }
  }

  /** A page of entries filed under `key`, each re-read and checked; undefined when a row does not hold. */
  async function lookup(key: Buffer, size: number, after: number): Promise<{ entries: { index: number; entry: string; inclusionProof: string[] }[]; more: boolean } | undefined> {
    const rows = options.index!.subjects(key, after, limits.attestationLookupPage + 1).filter((i) => i < size);
    const bundles = new Map<number, Uint8Array[]>();
    const entries: { index: number; entry: string; inclusionProof: string[] }[] = [];
    let bytes = 0;
    for (const index of rows.slice(0, limits.attestationLookupPage)) {
      const b = Math.floor(index / TILE_WIDTH);
      let bundle = bundles.get(b);
      if (!bundle) bundles.set(b, (bundle = await storage.readEntryBundle(b, Math.min(TILE_WIDTH, size - b * TILE_WIDTH))));
      const entry = bundle[index % TILE_WIDTH];
      if (!entry || !entrySubjectKeys(entry).some((k) => k.equals(key))) return undefined;
      const e = { index, entry: encodeBase64(entry), inclusionProof: (await checkpointer.inclusionProof(index, size)).map(encodeBase64) };
      bytes += e.entry.length + e.inclusionProof.length * 48 + 64;
      // The answer stays within what a client reads (logFetchBytes); the rest is the next page.
      if (bytes > limits.logFetchBytes - 4096 && entries.length > 0) return { entries, more: true };
      entries.push(e);
    }
    return { entries, more: rows.length > entries.length };
  }

  async function add(req: http.IncomingMessage, res: http.ServerResponse, wait: boolean): Promise<void> {
    if (req.method !== 'POST') {
      req.resume();
      return sendText(res, 405, 'use POST', { allow: 'POST' });
    }
    const waitMs = rate.enabled ? rate.take(clientKey(req.socket.remoteAddress), now()) : 0;
    if (waitMs > 0) {
      req.resume();
      return sendText(res, 429, 'too many submissions from this address; slow down', { 'retry-after': String(retryAfterSeconds(waitMs)) });
    }
    if (!gate.accepting) {
      req.resume();
      return sendText(res, 503, 'the log is busy; try again', { 'retry-after': '1' });
    }
    let keys: string[] = [];
    try {
      if (gate.policy.mode === 'any-signed') keys = submitterKeys(req);
    } catch (err) {
      req.resume();
      return sendText(res, 400, (err as Error).message);
    }
    let entry: Buffer;
    try {
      entry = await readBody(req, maxEntry);
    } catch (err) {
      if (err instanceof BodyTooLarge) return sendText(res, 413, `a log entry is at most ${maxEntry} bytes`, { connection: 'close' });
      throw err;
    }
    let index: number;
    try {
      index = await gate.submit(entry, keys);
    } catch (err) {
      if (err instanceof Refused) {
        logger.debug({ status: err.status, reason: err.message, client: clientKey(req.socket.remoteAddress) }, 'entry refused');
        return sendText(res, err.status, oneLine(err.message), err.retryAfterSeconds === undefined ? {} : { 'retry-after': String(err.retryAfterSeconds) });
      }
      return sendText(res, 503, `entry not stored: ${isSourcemeshError(err) ? err.message : 'internal error'}`, { 'retry-after': '1' });
    }
    if (!wait) return sendJson(res, { index });
    let published;
    try {
      published = await checkpointer.waitFor(index);
    } catch (err) {
      if (!isSourcemeshError(err)) throw err;
    }
    if (published === undefined) return sendJson(res, { index });
    const proof = await checkpointer.inclusionProof(index, published.size);
    sendJson(res, { index, checkpoint: published.note, inclusionProof: proof.map(encodeBase64) });
  }

  /** The vkeys named in Sourcemesh-Key headers (space-separated; the header may repeat). */
  function submitterKeys(req: http.IncomingMessage): string[] {
    const lines = req.headersDistinct[SUBMITTER_KEY_HEADER];
    if (lines === undefined) return [];
    const keys = lines.flatMap((l) => l.split(' ')).filter((k) => k.length > 0);
    if (keys.length > limits.logSubmitterKeys) throw new Error(`at most ${limits.logSubmitterKeys} keys in ${SUBMITTER_KEY_HEADER} headers`);
    return keys;
  }

  async function checkpoint(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const bytes = await storage.readCheckpoint();
    if (bytes === undefined) return sendText(res, 404, 'no checkpoint published yet');
    // C2SP tlog-tiles: the checkpoint is mutable; caching beyond a few seconds SHOULD be prevented.
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': bytes.length, 'cache-control': 'no-cache' });
    res.end(req.method === 'HEAD' ? undefined : bytes);
  }

  async function tile(req: http.IncomingMessage, res: http.ServerResponse, relative: string): Promise<void> {
    let parsed: TilePath;
    try {
      parsed = parseTilePath(relative, limits);
    } catch {
      return sendText(res, 404, 'not a tile path');
    }
    const level = parsed.kind === 'tile' ? parsed.level : 0;
    const committed = (size: number) => tileWidth(level, parsed.index, size) >= parsed.width;
    if (!committed(sequencer.head.size) && !committed(storage.readHead().size)) return sendText(res, 404, 'beyond the tree');
    const full = parsed.kind === 'tile' ? tilePath({ level, index: parsed.index, width: TILE_WIDTH }) : entryBundlePath({ index: parsed.index, width: TILE_WIDTH });
    const data = await storage.readTileFile(parsed.kind, relative, parsed.width, full);
    if (data === undefined) return sendText(res, 404, 'not found');
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': data.length, 'cache-control': parsed.width === TILE_WIDTH ? IMMUTABLE : SHORT });
    res.end(req.method === 'HEAD' ? undefined : data);
  }
}

/** Refusal reasons quote submitted text: one line of printable characters. */
function oneLine(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f]+/g, ' ').slice(0, 1000);
}

function sendJson(res: http.ServerResponse, value: unknown): void {
  const bytes = Buffer.from(`${JSON.stringify(value)}\n`, 'utf8');
  // The flat [name, value, ...] form: the hot path of /add, one answer per entry.
  res.writeHead(200, ['content-type', 'application/json', 'content-length', String(bytes.length), 'cache-control', 'no-store']);
  res.end(bytes);
}
