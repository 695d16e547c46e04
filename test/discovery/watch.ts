// For the discovery tests: browse for SECONDS (default 60) and print one JSON line per announced node as
// its check ends, {"found": URL, "instance"} or {"refused": {instance, address, reason}}, so that a test
// waits on the outcome instead of a fixed browsing window. On SIGTERM it stops browsing and prints
// {"done": {nodes, refused, dropped, stopMs, peakKiB}}: how long it took to end after the signal (checks
// in flight get their own bound) and its peak RSS (VmHWM).
//
//   node test/discovery/watch.ts [SECONDS] ['{"checkTimeoutMs": N}']
import { readFileSync } from 'node:fs';
import { discoverNodes } from '../../src/discovery/discover.ts';
import { limitsWith } from '../../src/limits.ts';

const seconds = Number(process.argv[2] ?? '60');
const opts = JSON.parse(process.argv[3] ?? '{}') as { checkTimeoutMs?: number };
const stop = new AbortController();
let stoppedAt = 0;
process.once('SIGTERM', () => {
  stoppedAt = performance.now();
  stop.abort();
});
process.stderr.write('watching\n');
const result = await discoverNodes({
  timeoutMs: seconds * 1000,
  signal: stop.signal,
  ...(opts.checkTimeoutMs !== undefined ? { limits: limitsWith({ discoveryCheckTimeoutMs: opts.checkTimeoutMs }) } : {}),
  onNode: (n) => process.stdout.write(`${JSON.stringify({ found: n.url, instance: n.instance })}\n`),
  onRefused: (r) => process.stdout.write(`${JSON.stringify({ refused: r })}\n`),
});
const peakKiB = Number(/VmHWM:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0);
process.stdout.write(`${JSON.stringify({ done: { nodes: result.nodes.map((n) => n.key), refused: result.refused.length, dropped: result.dropped, stopMs: stoppedAt ? Math.round(performance.now() - stoppedAt) : undefined, peakKiB } })}\n`);
