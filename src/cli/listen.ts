// `--listen HOST:PORT` for every command that listens (serve, seed, node, fetch --bittorrent): a module of
// its own, without serve's logger and server, so that `fetch` need not load them to read one flag.
import net from 'node:net';
import os from 'node:os';
import { SourcemeshError } from '../errors.ts';

/**
 * `HOST:PORT` or `[IPV6]:PORT`. HOST may be an address, a host name, or the name of a network
 * interface (its first IPv4 address, else its first IPv6 one): `virbr0:8080` for a VM bridge.
 */
export function parseListen(text: string, interfaces: NodeJS.Dict<os.NetworkInterfaceInfo[]> = os.networkInterfaces()): { host: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(text);
  const port = Number(m?.[3]);
  if (!m || port > 65535) throw new SourcemeshError('E_USAGE', `--listen ${text}: expected HOST:PORT or [IPV6]:PORT (port 0 to 65535)`);
  if (m[1] !== undefined) {
    if (!net.isIPv6(m[1])) throw new SourcemeshError('E_USAGE', `--listen ${text}: ${m[1]} is not an IPv6 address`);
    return { host: m[1], port };
  }
  const host = m[2]!;
  const iface = net.isIP(host) ? undefined : interfaces[host];
  if (iface !== undefined) {
    const addr = iface.find((a) => a.family === 'IPv4') ?? iface.find((a) => a.family === 'IPv6');
    if (!addr) throw new SourcemeshError('E_USAGE', `--listen ${text}: the interface ${host} has no address`);
    return { host: addr.family === 'IPv6' && addr.scopeid ? `${addr.address}%${host}` : addr.address, port };
  }
  return { host, port };
}
