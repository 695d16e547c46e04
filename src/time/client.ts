// A chained Roughtime measurement over UDP (RFC 10049 "Measurement Sequence"): the servers are asked in
// order, twice, each nonce after the first being H(previous response || rand), so the chain of signed
// responses proves the order in which they were given. An attempt that times out or brings an invalid
// answer is retried (limits.roughtimeAttempts); a server with no valid answer is reported as failed, not
// as a liar (an unsigned failure proves nothing). Only datagrams from the address asked are read.
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import { SourcemeshError } from '../errors.ts';
import { LIMITS, type Limits } from '../limits.ts';
import { buildRequest, chainedNonce, verifyResponse, type VerifiedResponse } from './protocol.ts';

export interface TimeServer {
  /** Its name in output (the witness key's name). */
  readonly name: string;
  /** HOST:PORT or [IPV6]:PORT. */
  readonly address: string;
  /** The long-term Ed25519 public key (the witness key's). */
  readonly publicKey: Uint8Array;
}

export interface Exchange {
  readonly server: string;
  readonly publicKey: Uint8Array;
  /** The 32 random bytes hashed with the previous response into this nonce (absent for the first). */
  readonly rand?: Uint8Array;
  readonly request: Buffer;
  readonly response: Buffer;
  /** Local monotonic milliseconds. */
  readonly sent: number;
  readonly received: number;
  readonly verified: VerifiedResponse;
}

export interface Measurement {
  /** Valid exchanges in the order they happened: the chain. */
  readonly chain: readonly Exchange[];
  /** Servers with no valid answer, and why. */
  readonly failed: readonly { readonly server: string; readonly reason: string }[];
  /** The local monotonic instant and wall clock (POSIX ms) read together at the end. */
  readonly at: number;
  readonly wallAt: number;
}

export function parseAddress(address: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(address);
  const port = m ? Number(m[3]) : NaN;
  if (m === null || port < 1 || port > 65535) throw new SourcemeshError('E_FORMAT', `Roughtime address ${JSON.stringify(address)}: expected HOST:PORT or [IPV6]:PORT`);
  return { host: m[1] ?? m[2]!, port };
}

export interface MeasureOptions {
  readonly rounds?: number;
  readonly limits?: Limits;
  readonly random?: (n: number) => Buffer;
  readonly monotonic?: () => number;
  readonly wallClock?: () => number;
}

/** Ask `servers` in order, `rounds` times (2, as the RFC asks), chaining the nonces. */
export async function measure(servers: readonly TimeServer[], options: MeasureOptions = {}): Promise<Measurement> {
  const limits = options.limits ?? LIMITS;
  const random = options.random ?? randomBytes;
  const monotonic = options.monotonic ?? (() => performance.now());
  const rounds = options.rounds ?? 2;
  const sockets = new Map<string, dgram.Socket>();
  const chain: Exchange[] = [];
  const failures = new Map<string, string>();
  try {
    for (let round = 0; round < rounds; round++) {
      for (const s of servers) {
        if (failures.has(s.name)) continue;
        const { host, port } = parseAddress(s.address);
        const family = isIP(host) === 6 ? 'udp6' : 'udp4';
        let socket = sockets.get(family);
        if (socket === undefined) {
          socket = dgram.createSocket(family);
          sockets.set(family, socket);
        }
        let reason = 'no answer';
        let done = false;
        for (let attempt = 0; attempt < limits.roughtimeAttempts && !done; attempt++) {
          const previous = chain[chain.length - 1];
          const rand = previous === undefined ? undefined : random(32);
          const nonce = previous === undefined ? random(32) : chainedNonce(previous.response, rand!);
          const request = buildRequest(nonce, { publicKey: s.publicKey });
          const sent = monotonic();
          const answer = await exchange(socket, host, port, request, limits, (r) => verifyResponse(request, r, s.publicKey, limits));
          const received = monotonic();
          if ('reason' in answer) {
            reason = `${answer.reason} (${attempt + 1} attempts)`;
            continue;
          }
          chain.push({ server: s.name, publicKey: s.publicKey, ...(rand === undefined ? {} : { rand }), request, response: answer.response, sent, received, verified: answer.verified });
          done = true;
        }
        if (!done) failures.set(s.name, reason);
      }
    }
  } finally {
    for (const s of sockets.values()) s.close();
  }
  return { chain, failed: [...failures].map(([server, reason]) => ({ server, reason })), at: monotonic(), wallAt: (options.wallClock ?? Date.now)() };
}

/**
 * Send one request and wait for a valid answer from that address: datagrams that fail `verify` (stray,
 * forged, or for an older request) are skipped until the timeout, whose reason names the last failure.
 */
function exchange(socket: dgram.Socket, host: string, port: number, request: Buffer, limits: Limits, verify: (response: Buffer) => VerifiedResponse): Promise<{ response: Buffer; verified: VerifiedResponse } | { reason: string }> {
  return new Promise((resolve) => {
    let reason = `no answer within ${limits.roughtimeTimeoutMs} ms`;
    const literal = isIP(host) ? host : undefined;
    const finish = (value: { response: Buffer; verified: VerifiedResponse } | { reason: string }) => {
      clearTimeout(timer);
      socket.off('message', onMessage);
      resolve(value);
    };
    const onMessage = (msg: Buffer, rinfo: dgram.RemoteInfo) => {
      if (rinfo.port !== port || (literal !== undefined && rinfo.address !== literal)) return;
      if (msg.length > limits.roughtimePacketBytes) return;
      try {
        finish({ response: msg, verified: verify(msg) });
      } catch (err) {
        reason = `no valid answer within ${limits.roughtimeTimeoutMs} ms; the last was refused: ${(err as Error).message}`;
      }
    };
    const timer = setTimeout(() => finish({ reason }), limits.roughtimeTimeoutMs);
    socket.on('message', onMessage);
    socket.send(request, port, host, (err) => {
      if (err) finish({ reason: `cannot send: ${err.message}` });
    });
  });
}
