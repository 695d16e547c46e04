// The Roughtime server of a witness (`witness serve --roughtime HOST:PORT`): UDP, RFC 10049. The witness's
// own Ed25519 key is the long-term key; it signs a delegation (CERT) to an online key made at start-up
// and again before each delegation ends, so a client that trusts the witness's vkey trusts its time.
// Requests that arrive together are answered under one signature (a Merkle tree of their hashes): the
// datagrams read in one turn of the event loop, up to limits.roughtimeBatch, form a batch.
// Hostile datagrams are dropped unanswered (the RFC has no error replies); so is any request whose answer
// would be larger than it ("Amplification Attacks").
// Each client address (IPv6: its /64) has a token bucket (src/net/rate-limit.ts), taken before a datagram
// is parsed: one address flooding the server is dropped at its rate and cannot fill the queue or the
// signing time the other clients need.
// With `tcp`, the same requests are also read from TCP streams (src/time/tcp-server.ts) into the same
// batches, under the same bucket per client address, and answered by the same rules.
import { generateKeyPairSync, sign as cryptoSign } from 'node:crypto';
import dgram from 'node:dgram';
import { isIP } from 'node:net';
import { SourcemeshError } from '../errors.ts';
import { LIMITS, type Limits } from '../limits.ts';
import { type Logger, SILENT } from '../logger.ts';
import { clientKey, TokenBuckets } from '../net/rate-limit.ts';
import type { SignerKey } from '../trust/note.ts';
import { delegate, type Delegation, parseRequest, respondBatch, srvOf, SUPPORTED_VERSIONS } from './protocol.ts';
import { listenRoughtimeTcp, type TcpStats } from './tcp-server.ts';

export interface RoughtimeServerOptions {
  /** The witness key: its seed is the long-term key. */
  readonly key: SignerKey;
  readonly host: string;
  readonly port: number;
  /** POSIX milliseconds; the witness's clock. */
  readonly clock?: () => number;
  /** RADI in seconds ("Servers that do not have any leap second information SHOULD set ... at least 3"). */
  readonly radius?: number;
  readonly logger?: Logger;
  readonly limits?: Limits;
  /** Requests per client address (IPv6: per /64): sustained per second (0: no limit) and burst. */
  readonly rate?: { readonly perSecond: number; readonly burst: number };
  /** The monotonic clock (ms) of the rate limit. */
  readonly monotonic?: () => number;
  /** Also answer over TCP here (RFC 10049: "Servers SHOULD support both the UDP and TCP transport modes"). */
  readonly tcp?: { readonly host: string; readonly port: number };
}

export interface RoughtimeServer {
  /** HOST:PORT as bound (port 0 becomes the port chosen). */
  readonly address: string;
  /** HOST:PORT of the TCP listener as bound, when `tcp` was given. */
  readonly tcpAddress?: string;
  /**
   * Requests over either transport: `limited` counts those dropped by the per-client rate limit (also
   * counted in `dropped`). `tcp` counts connections.
   */
  readonly stats: { received: number; answered: number; dropped: number; limited: number; batches: number; tcp: TcpStats };
  close(): Promise<void>;
}

/** How a request was taken: queued for the next batch, or not (and then it is never answered). */
export type Submitted = 'queued' | 'limited' | 'full' | 'ignored';

interface Pending { packet: Buffer; nonce: Buffer; reply: (response: Buffer) => void }

const RENEW_BEFORE_SECONDS = 3600n;

export async function startRoughtimeServer(options: RoughtimeServerOptions): Promise<RoughtimeServer> {
  const limits = options.limits ?? LIMITS;
  const clock = options.clock ?? Date.now;
  const radius = options.radius ?? 3;
  const logger = options.logger ?? SILENT;
  const srv = srvOf(options.key.publicKey);
  const stats = { received: 0, answered: 0, dropped: 0, limited: 0, batches: 0, tcp: { accepted: 0, refused: 0, closedForError: 0, open: 0 } };
  const rate = options.rate ?? { perSecond: limits.roughtimeRequestsPerSecond, burst: limits.roughtimeRequestBurst };
  const buckets = new TokenBuckets({ perSecond: rate.perSecond, burst: Math.max(1, rate.burst), maxClients: limits.roughtimeRateClients });
  const monotonic = options.monotonic ?? (() => performance.now());
  let delegation: Delegation | undefined;

  const currentDelegation = (now: bigint): Delegation => {
    if (delegation === undefined || now < delegation.mint || now + RENEW_BEFORE_SECONDS > delegation.maxt) {
      const pair = generateKeyPairSync('ed25519');
      const jwk = pair.publicKey.export({ format: 'jwk' });
      const online = { publicKey: Buffer.from(jwk.x!, 'base64url'), sign: (m: Uint8Array) => cryptoSign(null, m, pair.privateKey) };
      // MINT a minute back: a request processed in the second the key was made is inside it.
      delegation = delegate(options.key.seed, online, now - 60n, now + BigInt(limits.roughtimeDelegationSeconds));
      logger.info({ mint: Number(delegation.mint), maxt: Number(delegation.maxt) }, 'roughtime delegated a new online key');
    }
    return delegation;
  };

  const family = isIP(options.host) === 6 ? 'udp6' : 'udp4';
  const socket = dgram.createSocket({ type: family, ipv6Only: family === 'udp6' });
  const queue: Pending[] = [];
  let scheduled = false;

  const flush = () => {
    scheduled = false;
    while (queue.length > 0) {
      const batch = queue.splice(0, limits.roughtimeBatch);
      const now = BigInt(Math.floor(clock() / 1000));
      let responses: Buffer[];
      try {
        responses = respondBatch(batch, currentDelegation(now), { midpoint: now, radius });
      } catch (err) {
        logger.error({ err }, 'roughtime batch failed');
        stats.dropped += batch.length;
        continue;
      }
      stats.batches++;
      for (let i = 0; i < batch.length; i++) {
        const r = batch[i]!;
        if (responses[i]!.length > r.packet.length) {
          stats.dropped++;
          continue;
        }
        stats.answered++;
        r.reply(responses[i]!);
      }
    }
  };

  /** Take one request packet from `clientAddress`: attacker-controlled, rate-limited before it is parsed. */
  const submit = (msg: Buffer, clientAddress: string | undefined, reply: (response: Buffer) => void): Submitted => {
    stats.received++;
    if (buckets.take(clientKey(clientAddress), monotonic()) !== 0) {
      stats.limited++;
      stats.dropped++;
      return 'limited';
    }
    if (queue.length >= limits.roughtimeQueue) {
      stats.dropped++;
      return 'full';
    }
    let nonce: Buffer;
    try {
      const req = parseRequest(msg, limits);
      // "If the request contains a SRV tag, then the server looks up the long-term key ... If no such
      // key exists, then the server MUST ignore the request." A request without a version we speak is ignored.
      if ((req.srv !== undefined && !req.srv.equals(srv)) || !req.versions.some((v) => (SUPPORTED_VERSIONS as readonly number[]).includes(v))) {
        stats.dropped++;
        return 'ignored';
      }
      nonce = req.nonce;
    } catch {
      stats.dropped++;
      return 'ignored';
    }
    queue.push({ packet: msg, nonce, reply });
    if (queue.length >= limits.roughtimeBatch) flush();
    else if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
    return 'queued';
  };

  socket.on('message', (msg, rinfo) => {
    submit(msg, rinfo.address, (response) => socket.send(response, rinfo.port, rinfo.address));
  });
  socket.on('error', (err) => logger.error({ err }, 'roughtime socket error'));

  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(options.port, options.host, () => {
      socket.off('error', reject);
      resolve();
    });
  }).catch((err) => {
    socket.close();
    throw new SourcemeshError('E_IO', `cannot listen for Roughtime on ${options.host}:${options.port}: ${(err as Error).message}`, {}, { cause: err });
  });
  currentDelegation(BigInt(Math.floor(clock() / 1000)));
  const bound = socket.address();
  const address = bound.family === 'IPv6' ? `[${bound.address}]:${bound.port}` : `${bound.address}:${bound.port}`;
  const closeUdp = () => new Promise<void>((resolve) => socket.close(() => resolve()));
  const tcp = options.tcp === undefined ? undefined
    : await listenRoughtimeTcp({ ...options.tcp, limits, logger, stats: stats.tcp, submit }).catch(async (err: unknown) => {
      await closeUdp();
      throw err;
    });
  logger.info({ address, ...(tcp === undefined ? {} : { tcp: tcp.address }) }, 'roughtime serving');
  let closing: Promise<void> | undefined;
  return {
    address,
    ...(tcp === undefined ? {} : { tcpAddress: tcp.address }),
    stats,
    close: () => (closing ??= Promise.all([closeUdp(), tcp?.close()]).then(() => undefined)),
  };
}
