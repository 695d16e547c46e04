// The witness over HTTP (C2SP tlog-witness): POST /add-checkpoint, and the monitor retrieval endpoint
// GET /<hex SHA-256 of the origin>/checkpoint. The submission and monitoring prefixes are both the root.

import type http from 'node:http';
import type { Logger } from '../../logger.ts';
import { LIMITS, type Limits } from '../../limits.ts';
import { SourcemeshError } from '../../errors.ts';
import { retryAfterSeconds, TokenBuckets } from '../../net/rate-limit.ts';
import { BodyTooLarge, clientAddress, closeServer, createTrustServer, listen, readBody, sendText } from '../log/http-server.ts';
import type { SignerKey, VerifierKey } from '../note.ts';
import { handleChallenge } from '../../discovery/challenge-server.ts';
import { CHALLENGE_PATH } from '../../discovery/challenge.ts';
import { ADD_CHECKPOINT_PATH } from './protocol.ts';
import { SqliteWitnessStore } from './state.ts';
import { Witness } from './witness.ts';

export interface WitnessServerOptions {
  readonly witness: Witness;
  readonly logger: Logger;
  readonly limits?: Limits;
  /** Milliseconds, for rate limiting. */
  readonly now?: () => number;
  /** `witness serve --announce`: also answer the discovery challenge, signed by this (the witness) key. */
  readonly challengeKey?: SignerKey;
}

const MONITOR_PATH = /^\/([0-9a-f]{64})\/checkpoint$/;

export function createWitnessServer(options: WitnessServerOptions): http.Server {
  const { witness, logger } = options;
  const limits = options.limits ?? LIMITS;
  const now = options.now ?? Date.now;
  const rate = new TokenBuckets({ perSecond: limits.witnessRequestsPerSecond, burst: limits.witnessRequestBurst, maxClients: limits.witnessRateClients });

  return createTrustServer(limits, (req, res) => {
    void handle(req, res).catch((err) => {
      logger.error({ err }, 'witness request failed');
      sendText(res, 500, 'internal error');
    });
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const target = req.url ?? '/';
    if (target.length > 256) return sendText(res, 414, 'request target too long');
    const pathname = target.split('?')[0]!;
    if (pathname === ADD_CHECKPOINT_PATH) {
      if (req.method !== 'POST') return sendText(res, 405, 'use POST', { allow: 'POST' });
      const wait = rate.take(clientAddress(req), now());
      if (wait > 0) {
        req.resume();
        return sendText(res, 429, 'too many requests', { 'retry-after': String(retryAfterSeconds(wait)) });
      }
      let body: Buffer;
      try {
        body = await readBody(req, limits.witnessRequestBytes);
      } catch (err) {
        if (err instanceof BodyTooLarge) return sendText(res, 413, `an add-checkpoint body is at most ${limits.witnessRequestBytes} bytes`, { connection: 'close' });
        throw err;
      }
      const answer = witness.addCheckpoint(body);
      const fields = { status: answer.status, origin: answer.origin, old: answer.old, size: answer.size, reason: answer.reason };
      if (answer.evidence !== undefined) logger.warn({ ...fields, checkpoint: answer.evidence }, 'refused a validly signed checkpoint: possible log misbehaviour');
      else if (answer.status === 200) logger.info(fields, 'cosigned');
      else logger.info(fields, 'refused');
      res.writeHead(answer.status, { 'content-type': answer.contentType, 'content-length': Buffer.byteLength(answer.body), 'cache-control': 'no-store' });
      res.end(answer.body);
      return;
    }
    if (options.challengeKey !== undefined && pathname === CHALLENGE_PATH) {
      const wait = rate.take(clientAddress(req), now());
      req.resume();
      if (wait > 0) return sendText(res, 429, 'too many requests', { 'retry-after': String(retryAfterSeconds(wait)) });
      handleChallenge(options.challengeKey, req, res);
      return;
    }
    const monitor = MONITOR_PATH.exec(pathname);
    if (monitor !== null) {
      if (req.method !== 'GET' && req.method !== 'HEAD') return sendText(res, 405, 'use GET', { allow: 'GET, HEAD' });
      const note = witness.latest(monitor[1]!);
      if (note === undefined) return sendText(res, 404, 'no checkpoint cosigned for this log');
      const bytes = Buffer.from(note, 'utf8');
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': bytes.length, 'cache-control': 'no-cache' });
      res.end(req.method === 'HEAD' ? undefined : bytes);
      return;
    }
    req.resume();
    sendText(res, 404, 'not found');
  }
}

export interface RunningWitness {
  readonly url: string;
  readonly vkey: string;
  close(): Promise<void>;
}

/** Open the state, listen, serve. `sourcemesh witness serve` is this with flags parsed. */
export async function startWitness(options: {
  readonly stateDir: string;
  readonly key: SignerKey;
  readonly logs: readonly VerifierKey[];
  readonly host: string;
  readonly port: number;
  readonly logger: Logger;
  /** POSIX seconds, for cosignature timestamps. */
  readonly clock?: () => number;
  readonly limits?: Limits;
  /** Answer the discovery challenge (docs/FORMATS.md, "Discovery challenge"), for `--announce`. */
  readonly challenge?: boolean;
}): Promise<RunningWitness> {
  const store = SqliteWitnessStore.open(options.stateDir);
  let server: http.Server;
  let url: string;
  try {
    const witness = new Witness({ key: options.key, logs: options.logs, store, clock: options.clock ?? (() => Math.floor(Date.now() / 1000)), limits: options.limits });
    server = createWitnessServer({ witness, logger: options.logger, limits: options.limits, ...(options.challenge ? { challengeKey: options.key } : {}) });
    url = await listen(server, options.host, options.port).catch((err) => {
      throw new SourcemeshError('E_IO', `cannot listen on ${options.host}:${options.port}: ${(err as Error).message}`, {}, { cause: err });
    });
    options.logger.info({ url, vkey: witness.vkey, logs: witness.origins }, 'witness serving');
    return {
      url,
      vkey: witness.vkey,
      async close() {
        await closeServer(server);
        store.close();
      },
    };
  } catch (err) {
    store.close();
    throw err;
  }
}
