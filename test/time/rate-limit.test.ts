// The Roughtime server's per-client limit on loopback UDP: an address flooding valid requests is answered
// at its rate and burst only, while other addresses (127.0.0.3, 127.0.0.4: each its own client) are still
// answered, each measurement verified. With the limit off the flooder is answered far beyond it, so the
// limit is what holds it.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { test } from 'node:test';
import { buildRequest, verifyResponse } from '../../src/time/protocol.ts';
import { parseAddress } from '../../src/time/client.ts';
import { startRoughtimeServer, type RoughtimeServer } from '../../src/time/server.ts';
import { tempDir } from '../helpers/run.ts';
import { writeKey } from '../trust/log/servers.ts';

const FLOOD = 400;
const BURST = 5;

async function bound(address: string): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.bind(0, address, () => resolve());
  });
  return s;
}

/** Flood from `from`; resolves with the valid answers counted once the server has seen every request. */
async function flood(server: RoughtimeServer, from: string, publicKey: Uint8Array): Promise<number> {
  const { host, port } = parseAddress(server.address);
  const s = await bound(from);
  let answers = 0;
  const requests = new Map<string, Buffer>();
  s.on('message', (msg) => {
    for (const req of requests.values()) {
      try {
        verifyResponse(req, msg, publicKey);
        answers++;
        return;
      } catch { /* another request's answer */ }
    }
  });
  const before = server.stats.received;
  for (let i = 0; i < FLOOD; i++) {
    const req = buildRequest(randomBytes(32), { publicKey });
    requests.set(String(i), req);
    await new Promise<void>((resolve) => s.send(req, port, host, () => resolve()));
  }
  // Wait for the server to have processed what arrived (loopback may drop some under load): its
  // counters stop moving, then its answers have been sent.
  let last = -1;
  while (server.stats.received !== last) {
    last = server.stats.received;
    await new Promise((r) => setTimeout(r, 100));
  }
  await new Promise((r) => setTimeout(r, 100));
  s.close();
  assert.ok(server.stats.received - before > BURST * 4, `the flood arrived (${server.stats.received - before})`);
  return answers;
}

/** One verified exchange from `from`, retried like the client does. */
async function ask(server: RoughtimeServer, from: string, publicKey: Uint8Array): Promise<boolean> {
  const { host, port } = parseAddress(server.address);
  const s = await bound(from);
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      const req = buildRequest(randomBytes(32), { publicKey });
      const ok = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), 1000);
        s.on('message', (msg) => {
          try {
            verifyResponse(req, msg, publicKey);
            clearTimeout(timer);
            resolve(true);
          } catch { /* a late answer to an earlier attempt */ }
        });
        s.send(req, port, host);
      });
      s.removeAllListeners('message');
      if (ok) return true;
    }
    return false;
  } finally {
    s.close();
  }
}

test('a flooding address is held to its rate while the other addresses are answered', async (t) => {
  const dir = await tempDir(t);
  const key = await writeKey(dir, 'w.rate.time.test', 'cosignature');
  const server = await startRoughtimeServer({ key: key.key, host: '127.0.0.1', port: 0, rate: { perSecond: 1, burst: BURST } });
  t.after(() => server.close());
  const started = performance.now();
  const [flooded, ...others] = await Promise.all([
    flood(server, '127.0.0.2', key.key.publicKey),
    ask(server, '127.0.0.3', key.key.publicKey),
    ask(server, '127.0.0.4', key.key.publicKey),
  ]);
  const seconds = (performance.now() - started) / 1000;
  assert.ok(flooded <= BURST + Math.ceil(seconds) + 1, `the flooder was answered ${flooded} times in ${seconds.toFixed(1)} s`);
  assert.ok(flooded >= 1, 'the flooder still gets its burst');
  assert.ok(server.stats.limited > 0);
  assert.deepEqual(others, [true, true], 'the other addresses are answered');
  // Their buckets are their own: after the flood, a new address gets its whole burst.
  for (let i = 0; i < BURST; i++) assert.equal(await ask(server, '127.0.0.5', key.key.publicKey), true);
});

test('with the limit off the flooder is answered far beyond that rate', async (t) => {
  const dir = await tempDir(t);
  const key = await writeKey(dir, 'w.nolimit.time.test', 'cosignature');
  const server = await startRoughtimeServer({ key: key.key, host: '127.0.0.1', port: 0, rate: { perSecond: 0, burst: BURST } });
  t.after(() => server.close());
  const flooded = await flood(server, '127.0.0.2', key.key.publicKey);
  assert.ok(flooded > BURST * 10, `answered ${flooded}`);
  assert.equal(server.stats.limited, 0);
});
