// The DHT flags every command that joins the DHT shares (fetch, seed, mirrors): in a module of their own,
// so that `fetch` can offer them without loading the DHT (src/cli/mirrors-dht.ts) until they are used.
import type { Command } from 'commander';

export interface DhtFlags {
  dhtBootstrap: string[];
  dhtState?: string;
}

export function collectList(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** The DHT flags, for every command that joins the DHT. */
export function addDhtOptions(cmd: Command): Command {
  return cmd
    .option('--dht-bootstrap <host:port,...>', 'DHT nodes to join through (repeatable; default: the nodes in the state file, else the public DHT\'s routers)', collectList, [])
    .option('--dht-state <file>', 'where the DHT routing table is kept between runs (default STORE/dht.json)');
}
