// A private DHT of real bittorrent-dht nodes on loopback, for the discovery tests.
import { DhtNode, type DhtAddress } from '../../src/discovery/dht.ts';
import type { Limits } from '../../src/limits.ts';

/**
 * `n` nodes on 127.0.0.1. The first bootstraps from `bootstrap` (none: a closed DHT); the others join in
 * groups of five through the first and the three newest, as a real DHT grows.
 */
export async function startDhtSwarm(n: number, limits: Limits, bootstrap: DhtAddress[] = []): Promise<DhtNode[]> {
  const first = await DhtNode.start({ bootstrap, host: '127.0.0.1', limits });
  const nodes = [first];
  for (let i = 1; i < n; i += 5) {
    const boot = [first.address(), ...nodes.slice(-3).map((x) => x.address())];
    nodes.push(...await Promise.all(Array.from({ length: Math.min(5, n - i) }, () => DhtNode.start({ bootstrap: boot, host: '127.0.0.1', limits }))));
  }
  return nodes;
}
