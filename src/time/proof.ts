// The proof a measurement leaves: the chain of requests and signed responses, in the JSON of an RFC 10049
// malfeasance report ("Malfeasance Report Format", application/roughtime-malfeasance+json): {"responses":
// [{"rand"?, "publicKey", "request", "response"}]}, base64, in the order received. Anyone holding it can
// check every signature and that each nonce was derived from the response before it (checkProof), so a
// causal-order break in it proves a server lied. Format in docs/FORMATS.md, "Roughtime proof".
import * as v from 'valibot';
import { SourcemeshError } from '../errors.ts';
import { LIMITS, type Limits } from '../limits.ts';
import { firstIssue } from '../trust/release.ts';
import type { Exchange } from './client.ts';
import { causalBreaks, type Contradiction } from './measure.ts';
import { chainedNonce, parseRequest, verifyResponse, type VerifiedResponse } from './protocol.ts';

export const PROOF_MEDIA_TYPE = 'application/roughtime-malfeasance+json';

export function formatProof(chain: readonly Exchange[]): string {
  const b64 = (x: Uint8Array) => Buffer.from(x).toString('base64');
  return JSON.stringify({
    responses: chain.map((e) => ({
      ...(e.rand === undefined ? {} : { rand: b64(e.rand) }),
      publicKey: b64(e.publicKey), request: b64(e.request), response: b64(e.response),
    })),
  }, null, 2) + '\n';
}

const b64 = v.pipe(v.string(), v.maxLength(8192), v.regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64'));
const schema = v.object({
  responses: v.pipe(v.array(v.object({ rand: v.optional(b64), publicKey: b64, request: b64, response: b64 })), v.minLength(1), v.maxLength(1024)),
});

export interface CheckedProof {
  readonly responses: readonly (VerifiedResponse & { readonly publicKey: string })[];
  /** Causal-order breaks: each proves that one of the two servers gave a wrong time. */
  readonly breaks: readonly Contradiction[];
}

/**
 * Check a proof: every response valid for its request and key, every nonce after the first derived from
 * the previous response and its rand. E_FORMAT, E_SIGNATURE or E_PROOF naming the response at fault.
 */
export function checkProof(text: string, source: string, limits: Pick<Limits, 'roughtimeProofBytes' | 'roughtimePacketBytes' | 'roughtimeTags'> = LIMITS): CheckedProof {
  if (Buffer.byteLength(text) > limits.roughtimeProofBytes) throw new SourcemeshError('E_FORMAT', `${source}: more than ${limits.roughtimeProofBytes} bytes`);
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new SourcemeshError('E_FORMAT', `${source}: not JSON: ${(err as Error).message}`);
  }
  const r = v.safeParse(schema, data);
  if (!r.success) throw new SourcemeshError('E_FORMAT', `${source}: not a Roughtime proof: ${firstIssue(r.issues)}`);
  const out: (VerifiedResponse & { publicKey: string })[] = [];
  let previous: Buffer | undefined;
  r.output.responses.forEach((e, i) => {
    const request = Buffer.from(e.request, 'base64');
    const response = Buffer.from(e.response, 'base64');
    const where = `${source}: response ${i}`;
    try {
      if (previous !== undefined) {
        if (e.rand === undefined) throw new SourcemeshError('E_PROOF', 'no rand: its nonce is not tied to the response before it');
        const rand = Buffer.from(e.rand, 'base64');
        if (rand.length !== 32) throw new SourcemeshError('E_FORMAT', `rand is ${rand.length} bytes, not 32`);
        if (!chainedNonce(previous, rand).equals(parseRequest(request, limits).nonce)) throw new SourcemeshError('E_PROOF', 'its nonce is not H(previous response || rand): the chain is broken');
      }
      out.push({ ...verifyResponse(request, response, Buffer.from(e.publicKey, 'base64'), limits), publicKey: e.publicKey });
    } catch (err) {
      const se = err as SourcemeshError;
      throw new SourcemeshError(se.code ?? 'E_FORMAT', `${where}: ${se.message}`, { index: i });
    }
    previous = response;
  });
  const breaks = causalBreaks(out.map((o) => ({ server: o.publicKey, sent: 0, received: 0, midpoint: Number(o.midpoint), radius: o.radius })));
  return { responses: out, breaks };
}
