// For bench:discovery: browse the local network for SECONDS and print one JSON line per node as it is
// found and checked, with the wall clock (ms since the epoch) at that moment: the benchmark, in another
// network namespace of the same machine, compares it with when it started the node.
//
//   node bench/lib/discovery-watch.ts SECONDS
import { discoverNodes } from '../../src/discovery/discover.ts';

const seconds = Number(process.argv[2] ?? '60');
process.stderr.write('watching\n');
await discoverNodes({
  timeoutMs: seconds * 1000,
  onNode: (n) => process.stdout.write(JSON.stringify({ at: Date.now(), url: n.url, key: n.key }) + '\n'),
});
