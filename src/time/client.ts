// A chained Roughtime measurement (RFC 10049 "Measurement Sequence"): the servers are asked in order,
// twice, each nonce after the first being H(previous response || rand), so the chain of signed responses
// proves the order in which they were given. Each server is asked over the transport its policy entry
// names: UDP (only datagrams from the address asked are read) or TCP (src/time/tcp-client.ts, one
// connection per server for the measurement; the round trip is timed from the write, after the handshake).
// An attempt that times out or brings an invalid answer is retried (limits.roughtimeAttempts) after the
// RFC's exponential backoff ("Protocol Details"); a server with no valid answer is reported as failed,
// not as a liar (an unsigned failure proves nothing).
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import { SourcemeshError } from '../errors.ts';
import { LIMITS, type Limits } from '../limits.ts';
import { buildRequest, chainedNonce, verifyResponse, type VerifiedResponse } from './protocol.ts';
import { type Answer, type Dialer, RoughtimeTcpConnection } from './tcp-client.ts';

export interface TimeServer {
  /** Its name in output (the witness key's name). */
  readonly name: string;
  /** HOST:PORT or [IPV6]:PORT. */
  readonly address: string;
  /** The long-term Ed25519 public key (the witness key's). */
  readonly publicKey: Uint8Array;
  /** The transport mode (the RFC's server lists name it per address); UDP when absent. */
  readonly protocol?: 'udp' | 'tcp';
  /** With UDP: the server's TCP address, asked when UDP brings no valid answer. */
  readonly tcpFallback?: string;
}

/**
 * The least time between the starts of attempt `failures` and the one after it ("Protocol Details":
 * min(1.5^(n-1), 86400) seconds after n failures, with the limits' initial interval, base and maximum).
 */
export function retryIntervalMs(failures: number, limits: Pick<Limits, 'roughtimeRetryInitialMs' | 'roughtimeRetryBase' | 'roughtimeRetryMaxMs'>): number {
  if (failures < 1) return 0;
  return Math.min(limits.roughtimeRetryInitialMs * limits.roughtimeRetryBase ** (failures - 1), limits.roughtimeRetryMaxMs);
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
  /**
   * Through a proxy (--tor, --proxy): every witness is asked over TCP through `dial`, and no datagram is
   * ever sent (Tor carries no UDP; a direct datagram would say who is asking). A witness with no TCP
   * endpoint (protocol "tcp", or a UDP entry with a TCP fallback) fails with that reason.
   */
  readonly proxy?: Dialer;
}

/** Ask `servers` in order, `rounds` times (2, as the RFC asks), chaining the nonces. */
export async function measure(servers: readonly TimeServer[], options: MeasureOptions = {}): Promise<Measurement> {
  const limits = options.limits ?? LIMITS;
  const random = options.random ?? randomBytes;
  const monotonic = options.monotonic ?? (() => performance.now());
  const rounds = options.rounds ?? 2;
  const sockets = new Map<string, dgram.Socket>();
  const connections = new Map<string, RoughtimeTcpConnection>();
  const answeredOver = new Map<string, number>();
  const chain: Exchange[] = [];
  const failures = new Map<string, string>();
  try {
    for (let round = 0; round < rounds; round++) {
      for (const s of servers) {
        if (failures.has(s.name)) continue;
        // "A client SHOULD attempt to use the TCP transport mode ... if it does not receive responses to
        // its UDP queries": the server's TCP address after its UDP one; once a route answered, it is kept.
        let routes = [{ address: s.address, protocol: s.protocol ?? 'udp' }];
        if (s.tcpFallback !== undefined && routes[0]!.protocol === 'udp') routes.push({ address: s.tcpFallback, protocol: 'tcp' });
        if (options.proxy !== undefined) {
          routes = routes.filter((r) => r.protocol === 'tcp');
          if (routes.length === 0) {
            failures.set(s.name, `only a UDP endpoint (${s.address}) and the proxy carries TCP only: not asked (list its TCP endpoint in the policy)`);
            continue;
          }
        }
        const reasons: string[] = [];
        let done = false;
        for (const [r, route] of routes.entries()) {
          if (done || (answeredOver.has(s.name) && answeredOver.get(s.name) !== r)) continue;
          const { host, port } = parseAddress(route.address);
          let reason = 'no answer';
          let started = -Infinity;
          for (let attempt = 0; attempt < limits.roughtimeAttempts && !done; attempt++) {
            const wait = started + retryIntervalMs(attempt, limits) - performance.now();
            if (wait > 0) await new Promise((r) => setTimeout(r, wait));
            started = performance.now();
            let send: (request: Buffer, verify: (response: Buffer) => VerifiedResponse) => Promise<Answer>;
            if (route.protocol === 'tcp') {
              let conn = connections.get(s.name);
              if (conn === undefined || !conn.usable) {
                const made = await RoughtimeTcpConnection.connect(host, port, limits, options.proxy);
                if (!(made instanceof RoughtimeTcpConnection)) {
                  reason = `${made.reason} (${attempt + 1} attempts)`;
                  continue;
                }
                conn = made;
                connections.set(s.name, conn);
              }
              const c = conn;
              send = (request, verify) => c.exchange(request, limits, verify);
            } else {
              const family = isIP(host) === 6 ? 'udp6' : 'udp4';
              let socket = sockets.get(family);
              if (socket === undefined) {
                socket = dgram.createSocket(family);
                sockets.set(family, socket);
              }
              const u = socket;
              send = (request, verify) => exchange(u, host, port, request, limits, verify);
            }
            const previous = chain[chain.length - 1];
            const rand = previous === undefined ? undefined : random(32);
            const nonce = previous === undefined ? random(32) : chainedNonce(previous.response, rand!);
            const request = buildRequest(nonce, { publicKey: s.publicKey });
            const sent = monotonic();
            const answer = await send(request, (r) => verifyResponse(request, r, s.publicKey, limits));
            const received = monotonic();
            if ('reason' in answer) {
              reason = `${answer.reason} (${attempt + 1} attempts)`;
              continue;
            }
            chain.push({ server: s.name, publicKey: s.publicKey, ...(rand === undefined ? {} : { rand }), request, response: answer.response, sent, received, verified: answer.verified });
            answeredOver.set(s.name, r);
            done = true;
          }
          if (!done) reasons.push(routes.length > 1 ? `${route.protocol} ${reason}` : reason);
        }
        if (!done) failures.set(s.name, reasons.join('; '));
      }
    }
  } finally {
    for (const s of sockets.values()) s.close();
    for (const c of connections.values()) c.close();
  }
  return { chain, failed: [...failures].map(([server, reason]) => ({ server, reason })), at: monotonic(), wallAt: (options.wallClock ?? Date.now)() };
}

/**
 * Send one request and wait for a valid answer from that address: datagrams that fail `verify` (stray,
 * forged, or for an older request) are skipped until the timeout, whose reason names the last failure.
 */
function exchange(socket: dgram.Socket, host: string, port: number, request: Buffer, limits: Limits, verify: (response: Buffer) => VerifiedResponse): Promise<Answer> {
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
