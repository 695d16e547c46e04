// What fetch refuses before anything starts because a mode forbids the traffic an option makes.
//
// Under --tor or --proxy every connection fetch makes goes through the SOCKS5 proxy (src/fetch/network.ts).
// Some features cannot: the DHT is UDP (BEP 5), which SOCKS5 CONNECT and Tor do not carry; mDNS discovery
// is link-local multicast, and the nodes it finds are on the LAN, out of any Tor exit's reach; the
// BitTorrent peer wire opens its own TCP connections to peers. Used anyway, they would leave the proxy and
// show the user's address to the DHT, the LAN and the swarm (docs/OPERATIONS.md, proxies and Tor).
//
// Under --offline nothing touches the network (docs/OPERATIONS.md, fetch): a mirror list by URL or from the
// DHT, mDNS discovery, the DHT and the swarm all would, so they are refused rather than quietly used.

export interface NetworkFlags {
  proxy?: string;
  tor?: boolean;
  offline?: boolean;
  mirrorList?: readonly string[];
  discover?: string | true;
  bittorrent?: boolean;
  dhtBootstrap?: readonly string[];
}

/** Why these flags would send traffic around the proxy (one line naming the option), or undefined. */
export function proxyRefusal(o: NetworkFlags): string | undefined {
  if (!o.tor && o.proxy === undefined) return undefined;
  const via = o.tor ? '--tor' : '--proxy';
  const dhtList = o.mirrorList?.find((l) => l.startsWith('dht:'));
  if (dhtList !== undefined) return `--mirror-list ${dhtList}: the DHT lookup is UDP, which ${via} cannot carry (it would go around the proxy); give the mirror list by URL or file instead`;
  if (o.discover !== undefined) return `--discover: mDNS is multicast on the local network and its nodes are reached directly, not through ${via}`;
  if (o.bittorrent) return `--bittorrent: the peer wire connects to peers directly, not through ${via}`;
  if (o.dhtBootstrap !== undefined && o.dhtBootstrap.length > 0) return `--dht-bootstrap: the DHT is UDP, which ${via} cannot carry (it would go around the proxy)`;
  return undefined;
}

/** Why these flags would touch the network under --offline (one line naming the option), or undefined. */
export function offlineRefusal(o: NetworkFlags): string | undefined {
  if (!o.offline) return undefined;
  const remoteList = o.mirrorList?.find((l) => l.startsWith('dht:') || /^https?:\/\//i.test(l));
  if (remoteList !== undefined) return `--mirror-list ${remoteList}: --offline touches no network; give the mirror list as a file`;
  if (o.discover !== undefined) return '--discover: --offline touches no network, and mDNS discovery is network traffic';
  if (o.bittorrent) return '--bittorrent: --offline touches no network, and the swarm is on it';
  if (o.dhtBootstrap !== undefined && o.dhtBootstrap.length > 0) return '--dht-bootstrap: --offline touches no network, and the DHT is on it';
  return undefined;
}
