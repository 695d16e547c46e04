// The liveness challenge of a discovered node (docs/FORMATS.md, "Discovery challenge"). A signed
// inventory proves a key once; anyone who copies it can serve it again under their own address. So
// `discover` also sends a fresh nonce, and the node answers with a signed note over the nonce and the
// address and port the connection reached (the socket's own, never the Host header, which the client, or
// a relay, chooses). A replaying node cannot sign, and a relay that forwards the challenge to the genuine
// node gets back the genuine node's address, which is not the one the client connected to.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { SourcemeshError } from '../errors.ts';
import { LIMITS, type Limits } from '../limits.ts';
import { createSigner, createVerifier, openNote, signNote, type SignerKey, type VerifierKey } from '../trust/note.ts';

export const CHALLENGE_PATH = '/.well-known/sourcemesh/challenge';
export const CHALLENGE_FORMAT = 'sourcemesh.challenge/v1';
/** 16 to 32 random bytes in lowercase hex: enough that a replayer cannot have seen the nonce before. */
const NONCE = /^[0-9a-f]{32,64}$/;

export function isNonce(s: string): boolean {
  return NONCE.test(s);
}

export function newNonce(random: (n: number) => Buffer = randomBytes): string {
  return random(16).toString('hex');
}

/** host:port as signed: IPv4-mapped IPv6 as IPv4, IPv6 in brackets, no zone. */
export function hostPort(address: string, port: number): string {
  let host = address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address;
  host = host.replace(/%.*$/, '');
  return `${net.isIPv6(host) ? `[${host}]` : host}:${port}`;
}

export function challengeText(nonce: string, where: string): string {
  return `${CHALLENGE_FORMAT}\n${where}\n${nonce}\n`;
}

/**
 * The node's answer: a signed note over the nonce and the address the connection reached. A witness's
 * cosignature key (type 0x04) stamps its signature with `clock()`, POSIX seconds.
 */
export function answerChallenge(key: SignerKey, nonce: string, where: string, clock: () => number = () => Math.floor(Date.now() / 1000)): string {
  if (!isNonce(nonce)) throw new SourcemeshError('E_USAGE', `challenge: the nonce must be 32 to 64 lowercase hex digits`);
  return signNote(challengeText(nonce, where), [createSigner(key, { clock })]);
}

/** Throws unless `body` is the node key's signature over exactly this nonce and this host:port. */
export function checkChallengeAnswer(body: Uint8Array, key: VerifierKey, nonce: string, where: string, url: string, limits: Limits = LIMITS): void {
  let text: string;
  try {
    text = openNote(body, [createVerifier(key)], limits).text;
  } catch (err) {
    throw new SourcemeshError('E_SIGNATURE', `${url}: the challenge answer is not signed by the announced key (${(err as Error).message})`);
  }
  const expected = challengeText(nonce, where);
  if (text !== expected) {
    const signedFor = text.split('\n')[1] ?? '';
    throw new SourcemeshError('E_SIGNATURE', `${url}: the challenge answer signs ${JSON.stringify(signedFor.slice(0, 80))} and another nonce or address than asked (${where}): a copy of another node's answer`);
  }
}

/**
 * The nonce of a request target `CHALLENGE_PATH?nonce=HEX` (the nonce is the whole query), `'bad'` for
 * that path with anything else, undefined for any other path.
 */
export function challengeNonce(target: string): string | 'bad' | undefined {
  const q = target.indexOf('?');
  if ((q < 0 ? target : target.slice(0, q)) !== CHALLENGE_PATH) return undefined;
  const query = q < 0 ? '' : target.slice(q + 1);
  const nonce = query.startsWith('nonce=') ? query.slice(6) : '';
  return isNonce(nonce) ? nonce : 'bad';
}
