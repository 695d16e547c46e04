// A download agent's plain-HTTP connections read into reused memory (src/net/socket-buffers.ts ownedReads):
// a piece read that copies each chunk before asking for the next (Opened.lend, as readRange does) gives each
// read's memory back, so 64 pieces of 1 MiB take a few dozen read buffers, not one per read; and no
// consumer ever sees bytes of another read in its chunks: pieces lent, bodies kept whole (their chunks
// held to the end) and bodies read slowly (the parser paused, a read put back into the socket) on the same
// agent at once all come out as served.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { createAgent, openHttp, readBoundedBody } from '../../src/fetch/http.ts';
import { LIMITS } from '../../src/limits.ts';
import { bytes } from '../helpers/distfiles.ts';

const MiB = 1 << 20;
const FILE = bytes(64 * MiB, 23);

async function serve(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const server = http.createServer((req, res) => {
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (!m) return res.end(FILE.subarray(0, 8 * MiB));
    const [a, b] = [Number(m[1]), Number(m[2])];
    res.writeHead(206, { 'content-range': `bytes ${a}-${b}/${FILE.length}`, 'content-length': b - a + 1 });
    res.end(FILE.subarray(a, b + 1));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/f`;
}

test('piece reads that copy each chunk reuse their read memory: 64 MiB in 1 MiB ranges through a few dozen buffers', async (t) => {
  const url = await serve(t);
  const dispatcher = createAgent(LIMITS);
  t.after(() => dispatcher.close());
  const buffers = new Set<ArrayBufferLike>();
  let reads = 0;
  for (let i = 0; i < 64; i++) {
    const opened = await openHttp(url, { offset: i * MiB, end: (i + 1) * MiB - 1, dispatcher, limits: LIMITS });
    const piece = Buffer.allocUnsafe(MiB);
    let got = 0;
    for await (const chunk of opened.lend?.() ?? opened.body) {
      buffers.add(chunk.buffer);
      reads++;
      piece.set(chunk, got);
      got += chunk.length;
    }
    assert.ok(piece.subarray(0, got).equals(FILE.subarray(i * MiB, (i + 1) * MiB)), `piece ${i}`);
  }
  t.diagnostic(`${reads} chunks in ${buffers.size} distinct read buffers`);
  // One read per response holds its headers and is not given back; the rest come from the kept buffers.
  assert.ok(buffers.size <= 64 + 32, `${buffers.size} read buffers for ${reads} chunks`);
});

test('lent pieces, bodies kept whole and bodies read slowly share an agent: every byte as served', { timeout: 120_000 }, async (t) => {
  const url = await serve(t);
  const dispatcher = createAgent(LIMITS);
  t.after(() => dispatcher.close());
  const lent = async (from: number) => {
    for (let i = from; i < 64; i += 4) {
      const opened = await openHttp(url, { offset: i * MiB, end: (i + 1) * MiB - 1, dispatcher, limits: LIMITS });
      const piece = Buffer.allocUnsafe(MiB);
      let got = 0;
      for await (const chunk of opened.lend!()) {
        piece.set(chunk, got);
        got += chunk.length;
      }
      assert.ok(piece.equals(FILE.subarray(i * MiB, (i + 1) * MiB)), `lent piece ${i}`);
    }
  };
  const kept = async () => {
    for (let i = 0; i < 4; i++) {
      const opened = await openHttp(url, { offset: i * 3 * MiB, end: (i * 3 + 3) * MiB - 1, dispatcher, limits: LIMITS });
      const whole = await readBoundedBody(opened.body as AsyncIterable<Uint8Array> & { destroy(): void }, 3 * MiB, () => new Error('too large'));
      assert.ok(whole.equals(FILE.subarray(i * 3 * MiB, (i * 3 + 3) * MiB)), `kept body ${i}`);
    }
  };
  const slow = async () => {
    for (let i = 0; i < 3; i++) {
      const opened = await openHttp(url, { offset: i * 5 * MiB + 7, end: (i * 5 + 2) * MiB + 7, dispatcher, limits: LIMITS });
      const chunks: Buffer[] = [];
      let n = 0;
      for await (const chunk of opened.lend!()) {
        chunks.push(Buffer.from(chunk));
        if (++n % 8 === 0) await sleep(5); // the parser pauses; the rest of a read waits in the socket
      }
      assert.ok(Buffer.concat(chunks).equals(FILE.subarray(i * 5 * MiB + 7, (i * 5 + 2) * MiB + 8)), `slow body ${i}`);
    }
  };
  await Promise.all([lent(0), lent(1), lent(2), lent(3), kept(), slow()]);
});
