// A MirrorServer in a process of its own, with the read-place limits the test gives, for
// test/mirror/serve-read-place.test.ts to watch under strace: `node THIS ROOT SLOW_MS BACKOFF_MS MARKER`.
// Once listening it opens MARKER, a path that does not exist, so that the trace shows where serving
// begins, then prints its URL and pid.
import { open } from 'node:fs/promises';
import path from 'node:path';
import { limitsWith } from '../../src/limits.ts';
import { resolveNodeKey } from '../../src/mirror/inventory.ts';
import { MirrorServer } from '../../src/mirror/server.ts';

const [root, slow, backoff, marker] = process.argv.slice(2);
const { key, file } = await resolveNodeKey(path.join(root!, '.sourcemesh'), undefined, 'read-place.test');
const server = await MirrorServer.start({
  source: { kind: 'root', root: root! }, key, keyFile: file, host: '127.0.0.1', port: 0, rate: { perSecond: 0, burst: 1 }, maxConnections: 64,
  limits: limitsWith({ serveSyncReadSlowMs: Number(slow), serveSyncReadBackoffMs: Number(backoff) }),
});
await open(marker!).catch(() => undefined);
process.stdout.write(`${JSON.stringify({ url: server.url, pid: process.pid })}\n`);
process.once('SIGTERM', () => void server.close(0).then(() => process.exit(0)));
