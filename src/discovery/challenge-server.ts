// The discovery challenge over HTTP for a node that serves no HTTP of its own: `seed --announce` (its
// port speaks the BitTorrent peer wire). It answers only GET /.well-known/sourcemesh/challenge?nonce=HEX
// (docs/FORMATS.md, "Discovery challenge"), signed over the address and port the connection reached; every
// other target is 404. Anyone may ask: requests are rate-limited per client address and the server is
// bounded like the log's and the witness's (src/trust/log/http-server.ts).
import type http from 'node:http';
import { SourcemeshError } from '../errors.ts';
import { LIMITS, type Limits } from '../limits.ts';
import { retryAfterSeconds, TokenBuckets } from '../net/rate-limit.ts';
import { clientAddress, closeServer, createTrustServer, listen, sendText } from '../trust/log/http-server.ts';
import type { SignerKey } from '../trust/note.ts';
import { answerChallenge, challengeNonce, hostPort } from './challenge.ts';

export interface ChallengeServer {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/** The answer to one request to a challenge responder, or false when `target` is not the challenge. */
export function handleChallenge(key: SignerKey, req: http.IncomingMessage, res: http.ServerResponse): boolean {
  const nonce = challengeNonce(req.url ?? '');
  if (nonce === undefined) return false;
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    sendText(res, 405, 'use GET', { allow: 'GET, HEAD' });
    return true;
  }
  if (nonce === 'bad') {
    sendText(res, 400, 'the challenge needs ?nonce= and 32 to 64 lowercase hex digits');
    return true;
  }
  // Signed over the address and port this connection reached, never the Host header.
  sendText(res, 200, answerChallenge(key, nonce, hostPort(req.socket.localAddress ?? '', req.socket.localPort ?? 0)));
  return true;
}

export async function startChallengeServer(o: { key: SignerKey; host: string; port: number; limits?: Limits; now?: () => number }): Promise<ChallengeServer> {
  const limits = o.limits ?? LIMITS;
  const now = o.now ?? Date.now;
  const rate = new TokenBuckets({ perSecond: limits.discoveryChallengesPerSecond, burst: limits.discoveryChallengeBurst, maxClients: 4096 });
  const server = createTrustServer(limits, (req, res) => {
    req.resume();
    if ((req.url ?? '').length > 256) return sendText(res, 414, 'request target too long');
    const wait = rate.take(clientAddress(req), now());
    if (wait > 0) return sendText(res, 429, 'too many requests', { 'retry-after': String(retryAfterSeconds(wait)) });
    if (!handleChallenge(o.key, req, res)) sendText(res, 404, 'not found');
  });
  const url = await listen(server, o.host, o.port).catch((err: Error) => {
    throw new SourcemeshError('E_NETWORK', `cannot listen on ${o.host}:${o.port} for the discovery challenge: ${err.message}`, {}, { cause: err });
  });
  return { url, port: Number(new URL(url).port), close: () => closeServer(server) };
}
