// Until every user has moved to test/helpers/netns.ts (makeNetwork): then removed.
import { makeNetwork, type NetNode, type Proc } from './netns.ts';

export type Node = NetNode;
export type { Proc };

export interface Hub {
  nodes: NetNode[];
  spawn(node: NetNode, cmd: string, args: string[]): Proc;
  cli(node: NetNode, args: string[]): Proc;
}

export function makeHub(t: { after(fn: () => Promise<void> | void): void }, count: number): Hub {
  const n = makeNetwork(t, Array.from({ length: count }, (_, i) => `n${i}`));
  return { nodes: Object.values(n.nodes), spawn: (node, cmd, args) => n.spawn(node, cmd, args), cli: (node, args) => n.cli(node, args) };
}
