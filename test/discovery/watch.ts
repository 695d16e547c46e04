// For the discovery tests: browse for SECONDS (default 60) and print one JSON line per announced node as
// its check ends, {"found": URL, "instance"} or {"refused": {instance, address, reason}}, so that a test
// waits on the outcome instead of a fixed browsing window.
//
//   node test/discovery/watch.ts [SECONDS]
import { discoverNodes } from '../../src/discovery/discover.ts';

const seconds = Number(process.argv[2] ?? '60');
process.stderr.write('watching\n');
await discoverNodes({
  timeoutMs: seconds * 1000,
  onNode: (n) => process.stdout.write(`${JSON.stringify({ found: n.url, instance: n.instance })}\n`),
  onRefused: (r) => process.stdout.write(`${JSON.stringify({ refused: r })}\n`),
});
