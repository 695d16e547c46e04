// Roughtime when the command goes through a proxy (--tor, --proxy: src/fetch/network.ts): Tor carries no
// UDP, so every witness is asked over TCP (RFC 10049 "Protocol Details": the TCP transport mode) through
// the same SOCKS5 proxy as the command's other connections, each witness with the stream-isolation
// credentials of its own address (its own Tor circuit), and no datagram leaves. A proxy's round trips are
// long: the query timeout is raised to limits.roughtimeProxyTimeoutMs (the interval widens by the round
// trip, which the judgement accounts for).
import type { Network } from '../fetch/network.ts';
import type { Limits } from '../limits.ts';
import { socksConnect } from '../net/socks.ts';
import type { MeasureOptions } from './client.ts';

/** The measure options for `network`: through its proxy when it has one, else undefined (direct, UDP allowed). */
export function measureThrough(network: Network, limits: Limits): MeasureOptions | undefined {
  // proxyUrlFor keys the isolation credentials by its argument (by origin for a URL; this is none).
  if (network.proxyUrlFor('roughtime') === undefined) return undefined;
  return {
    limits: { ...limits, roughtimeTimeoutMs: Math.max(limits.roughtimeTimeoutMs, limits.roughtimeProxyTimeoutMs) },
    proxy: (host, port, timeoutMs) => socksConnect(network.proxyUrlFor(`roughtime ${host}:${port}`)!, host, port, timeoutMs),
  };
}
