// A raw TCP connection through a SOCKS5 proxy (RFC 1928 CONNECT, RFC 1929 username/password), for the
// protocols of ours that are not HTTP (Roughtime over TCP under --tor: undici's Socks5ProxyAgent only
// carries HTTP). The proxy URL is the one src/fetch/network.ts gives (socks5h://, with the stream-isolation
// credentials of the connection's key); the destination's name goes to the proxy as a name (ATYP 3), never
// resolved here. The proxy is as hostile as the network: the whole handshake is bounded by `timeoutMs`.
// The only module that imports `socks`.
import type net from 'node:net';
import { SocksClient } from 'socks';

/** Connect to HOST:PORT through `proxyUrl` (socks5h://[USER:PASS@]HOST:PORT) within `timeoutMs`; a reason on failure. */
export async function socksConnect(proxyUrl: string, host: string, port: number, timeoutMs: number): Promise<net.Socket | { reason: string }> {
  const proxy = new URL(proxyUrl);
  const user = proxy.username ? decodeURIComponent(proxy.username) : undefined;
  const password = proxy.password ? decodeURIComponent(proxy.password) : undefined;
  const via = `${proxy.hostname}:${proxy.port}`;
  try {
    const { socket } = await SocksClient.createConnection({
      command: 'connect',
      destination: { host, port },
      proxy: {
        host: proxy.hostname.replace(/^\[|\]$/g, ''),
        port: Number(proxy.port),
        type: 5,
        ...(user !== undefined ? { userId: user, password: password ?? '' } : {}),
      },
      timeout: timeoutMs,
      set_tcp_nodelay: true,
    });
    return socket;
  } catch (err) {
    return { reason: `cannot connect through the SOCKS5 proxy ${via}: ${(err as Error).message}` };
  }
}
