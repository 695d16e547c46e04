// Under --tor or --proxy every connection fetch makes goes through the SOCKS5 proxy (src/fetch/network.ts).
// Some features cannot: the DHT is UDP (BEP 5), which SOCKS5 CONNECT and Tor do not carry; mDNS discovery
// is link-local multicast, and the nodes it finds are on the LAN, out of any Tor exit's reach; the
// BitTorrent peer wire opens its own TCP connections to peers. Used anyway, they would leave the proxy and
// show the user's address to the DHT, the LAN and the swarm, so they are refused before anything starts
// (docs/OPERATIONS.md, proxies and Tor).

export interface ProxyFlags {
  proxy?: string;
  tor?: boolean;
  mirrorList?: readonly string[];
  discover?: string | true;
  bittorrent?: boolean;
  dhtBootstrap?: readonly string[];
}

/** Why these flags would send traffic around the proxy (one line naming the option), or undefined. */
export function proxyRefusal(o: ProxyFlags): string | undefined {
  if (!o.tor && o.proxy === undefined) return undefined;
  const via = o.tor ? '--tor' : '--proxy';
  const dhtList = o.mirrorList?.find((l) => l.startsWith('dht:'));
  if (dhtList !== undefined) return `--mirror-list ${dhtList}: the DHT lookup is UDP, which ${via} cannot carry (it would go around the proxy); give the mirror list by URL or file instead`;
  if (o.discover !== undefined) return `--discover: mDNS is multicast on the local network and its nodes are reached directly, not through ${via}`;
  if (o.bittorrent) return `--bittorrent: the peer wire connects to peers directly, not through ${via}`;
  if (o.dhtBootstrap !== undefined && o.dhtBootstrap.length > 0) return `--dht-bootstrap: the DHT is UDP, which ${via} cannot carry (it would go around the proxy)`;
  return undefined;
}
