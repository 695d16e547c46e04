// Roughtime over TCP (RFC 10049 "Protocol Details"): the frame reader on any chunking, the same request
// answered the same way over UDP and TCP, `witness serve --roughtime-tcp` measured by `sourcemesh time`
// through a policy naming "tcp", and hostile peers on both sides: a slowloris, an oversized frame,
// garbage, a request the server ignores, too many connections from one address, a flood over one
// connection; a server that answers garbage, oversized frames or closes. All on loopback.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { isSourcemeshError } from '../../src/errors.ts';
import { limitsWith } from '../../src/limits.ts';
import { measure, parseAddress, retryIntervalMs } from '../../src/time/client.ts';
import { FrameReader } from '../../src/time/frames.ts';
import { buildRequest, verifyResponse } from '../../src/time/protocol.ts';
import { judge } from '../../src/time/measure.ts';
import { startRoughtimeServer } from '../../src/time/server.ts';
import { parsePolicy } from '../../src/trust/policy.ts';
import { decodeMessage, decodePacket, encodeMessage, encodePacket, TAG } from '../../src/time/wire.ts';
import { runCli, tempDir, waitFor } from '../helpers/run.ts';
import { ServerProcess, writeKey } from '../trust/log/servers.ts';

const HOUR = 3600_000;

test('frames: any chunking of a stream of packets gives the same packets; garbage and oversized frames are refused at once', () => {
  const limits = limitsWith({});
  const packet = fc.uint8Array({ minLength: 0, maxLength: 300 }).map((m) => encodePacket(m));
  fc.assert(fc.property(fc.array(packet, { minLength: 1, maxLength: 8 }), fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 20 }), (packets, cuts) => {
    const stream = Buffer.concat(packets);
    const reader = new FrameReader('test stream', limits);
    const out: Buffer[] = [];
    let at = 0;
    for (let i = 0; at < stream.length; i++) {
      const n = cuts[i % cuts.length]!;
      out.push(...reader.push(stream.subarray(at, at + n)));
      at += n;
    }
    assert.deepEqual(out, packets);
    assert.equal(reader.pending, 0);
  }));
  // The magic is checked byte by byte: the first wrong byte is enough.
  assert.throws(() => new FrameReader('s', limits).push(Buffer.from('G')), (e) => isSourcemeshError(e, 'E_FORMAT') && /does not carry ROUGHTIM/.test((e as Error).message));
  assert.throws(() => new FrameReader('s', limits).push(Buffer.from('ROUGHTIX')), (e) => isSourcemeshError(e, 'E_FORMAT'));
  // A header announcing more than a packet is refused from the header alone, nothing kept for it.
  const huge = Buffer.alloc(12);
  Buffer.from('ROUGHTIM').copy(huge);
  huge.writeUInt32LE(1 << 30, 8);
  assert.throws(() => new FrameReader('s', limits).push(huge), (e) => isSourcemeshError(e, 'E_FORMAT') && /at most 4096 bytes/.test((e as Error).message));
  const edge = Buffer.from(huge);
  edge.writeUInt32LE(limits.roughtimePacketBytes - 12, 8);
  assert.deepEqual(new FrameReader('s', limits).push(edge), [], 'a frame of exactly the bound is read');
});

test('the RFC backoff: 1 s, then 1.5 times longer, capped at a day', () => {
  const l = limitsWith({});
  assert.deepEqual([0, 1, 2, 3].map((n) => retryIntervalMs(n, l)), [0, 1000, 1500, 2250]);
  assert.equal(retryIntervalMs(100, l), 86_400_000);
});

/** A raw TCP client: what it received, and whether the server closed it. */
async function rawTcp(address: string, from = '127.0.0.1'): Promise<{ socket: net.Socket; received: () => Buffer; closed: Promise<void> }> {
  const { host, port } = parseAddress(address);
  const socket = net.connect({ host, port, localAddress: from });
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return { socket, received: () => Buffer.concat(chunks), closed };
}

/** Resolves with the responses once `n` complete frames arrived. */
async function frames(socket: net.Socket, n: number): Promise<Buffer[]> {
  const reader = new FrameReader('test', limitsWith({}));
  const out: Buffer[] = [];
  return new Promise((resolve, reject) => {
    const onData = (c: Buffer) => {
      out.push(...reader.push(c));
      if (out.length >= n) {
        socket.off('data', onData);
        resolve(out);
      }
    };
    socket.on('data', onData);
    socket.once('close', () => reject(new Error(`closed after ${out.length} of ${n} frames`)));
  });
}

/** The answer to `request` over UDP: sent again each second (a datagram may be lost), 5 times at most. */
async function udpAsk(address: string, request: Buffer): Promise<Buffer> {
  const { host, port } = parseAddress(address);
  const s = dgram.createSocket('udp4');
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      let sent = 0;
      const send = () => {
        if (sent++ === 5) return reject(new Error('no UDP answer after 5 tries'));
        s.send(request, port, host);
      };
      const timer = setInterval(send, 1000);
      s.on('message', (m) => {
        clearInterval(timer);
        resolve(m);
      });
      send();
    });
  } finally {
    s.close();
  }
}

test('the same request gets the same signed answer over UDP and over TCP', async (t) => {
  const dir = await tempDir(t);
  const key = await writeKey(dir, 'w.tcp.time.test', 'cosignature');
  const server = await startRoughtimeServer({ key: key.key, host: '127.0.0.1', port: 0, tcp: { host: '127.0.0.1', port: 0 }, rate: { perSecond: 0, burst: 1 } });
  t.after(() => server.close());
  assert.ok(server.tcpAddress);
  const request = buildRequest(randomBytes(32), { publicKey: key.key.publicKey });
  const overUdp = await udpAsk(server.address, request);
  const c = await rawTcp(server.tcpAddress!);
  c.socket.write(request);
  const [overTcp] = await frames(c.socket, 1);
  c.socket.end();
  await c.closed;

  const u = verifyResponse(request, overUdp, key.key.publicKey);
  const p = verifyResponse(request, overTcp!, key.key.publicKey);
  assert.equal(overTcp!.length, overUdp.length, 'the same size, never larger than the request');
  assert.ok(overTcp!.length <= request.length);
  const mu = decodeMessage(decodePacket(overUdp, 'udp'), 'udp');
  const mt = decodeMessage(decodePacket(overTcp!, 'tcp'), 'tcp');
  assert.deepEqual([...mt.keys()], [...mu.keys()], 'the same tags in the same order');
  assert.deepEqual([...mt.keys()], [TAG.SIG, TAG.NONC, TAG.TYPE, TAG.PATH, TAG.SREP, TAG.CERT, TAG.INDX]);
  for (const tag of mu.keys()) assert.equal(mt.get(tag)!.length, mu.get(tag)!.length);
  assert.deepEqual(mt.get(TAG.CERT), mu.get(TAG.CERT), 'under the same delegation');
  assert.deepEqual(mt.get(TAG.NONC), mu.get(TAG.NONC));
  assert.ok(Math.abs(Number(p.midpoint - u.midpoint)) <= 1);
  assert.equal(p.radius, u.radius);

  // Several requests pipelined on one connection are each answered and each verifies.
  const d = await rawTcp(server.tcpAddress!);
  const many = Array.from({ length: 5 }, () => buildRequest(randomBytes(32), { publicKey: key.key.publicKey }));
  d.socket.write(Buffer.concat(many));
  const answers = await frames(d.socket, 5);
  // "servers MAY send responses out of order": match each answer to its request by its nonce.
  for (const req of many) assert.ok(answers.some((a) => { try { verifyResponse(req, a, key.key.publicKey); return true; } catch { return false; } }));
  d.socket.end();
  await d.closed;
  assert.equal(server.stats.tcp.closedForError, 0);
});

test('hostile TCP clients: slowloris, oversized frame, garbage, an ignored request, too many connections, a flood: each closed, the others still answered', async (t) => {
  const dir = await tempDir(t);
  const key = await writeKey(dir, 'w.hostile-tcp.time.test', 'cosignature');
  const limits = limitsWith({ roughtimeTcpIdleMs: 600, roughtimeTcpConnectionsPerClient: 3 });
  const server = await startRoughtimeServer({ key: key.key, host: '127.0.0.1', port: 0, tcp: { host: '127.0.0.1', port: 0 }, limits, rate: { perSecond: 1, burst: 5 } });
  t.after(() => server.close());
  const tcp = server.tcpAddress!;
  // Slowloris: a valid request a byte every 50 ms never completes within the idle timeout; closed.
  const slow = await rawTcp(tcp, '127.0.0.2');
  const request = buildRequest(randomBytes(32), { publicKey: key.key.publicKey });
  let sentBytes = 0;
  const drip = setInterval(() => {
    if (sentBytes < request.length && !slow.socket.destroyed) slow.socket.write(request.subarray(sentBytes, ++sentBytes));
  }, 50);
  const t0 = performance.now();
  await slow.closed;
  clearInterval(drip);
  const held = performance.now() - t0;
  assert.ok(held >= 500 && held < 5000, `closed after ${held} ms, the idle limit is 600`);
  assert.ok(sentBytes < request.length, 'closed before the trickled request completed');
  assert.equal(slow.received().length, 0);

  // An oversized frame: closed on its header, before the bytes it announces.
  const big = await rawTcp(tcp, '127.0.0.3');
  const header = Buffer.alloc(12);
  Buffer.from('ROUGHTIM').copy(header);
  header.writeUInt32LE(64 << 20, 8);
  big.socket.write(header);
  await big.closed;
  assert.equal(big.received().length, 0);

  // Garbage (an HTTP request): closed.
  const garbage = await rawTcp(tcp, '127.0.0.3');
  garbage.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  await garbage.closed;
  assert.equal(garbage.received().length, 0);

  // A well-framed request the server must ignore (another server's SRV): no answer, and the connection
  // is closed rather than left waiting.
  const other = await writeKey(dir, 'other.hostile-tcp.time.test', 'cosignature');
  const ignored = await rawTcp(tcp, '127.0.0.3');
  ignored.socket.write(buildRequest(randomBytes(32), { publicKey: other.key.publicKey }));
  await ignored.closed;
  assert.equal(ignored.received().length, 0);

  // Connections per client address: the 4th from 127.0.0.4 is closed at once; 127.0.0.5 is still served.
  const held3 = await Promise.all([1, 2, 3].map(() => rawTcp(tcp, '127.0.0.4')));
  const refusedBefore = server.stats.tcp.refused;
  const fourth = await rawTcp(tcp, '127.0.0.4');
  await fourth.closed;
  assert.equal(server.stats.tcp.refused, refusedBefore + 1);
  const fifth = await rawTcp(tcp, '127.0.0.5');
  fifth.socket.write(request);
  const [answer] = await frames(fifth.socket, 1);
  verifyResponse(request, answer!, key.key.publicKey);
  fifth.socket.destroy();
  for (const h of held3) h.socket.destroy();

  // A flood over one connection, past the per-client bucket (burst 5): the connection is closed.
  const flood = await rawTcp(tcp, '127.0.0.6');
  const limitedBefore = server.stats.limited;
  flood.socket.write(Buffer.concat(Array.from({ length: 20 }, () => buildRequest(randomBytes(32), { publicKey: key.key.publicKey }))));
  await flood.closed;
  assert.ok(server.stats.limited > limitedBefore, 'the rate limit held it');

  // Through all of it the server still answers a measurement over TCP, and the idle clients were closed.
  const m = await measure([{ name: 'w', address: tcp, publicKey: key.key.publicKey, protocol: 'tcp' }]);
  assert.equal(m.chain.length, 2, JSON.stringify(m.failed));
  assert.ok(server.stats.tcp.closedForError >= 5, `closed for an error: ${server.stats.tcp.closedForError}`);
});

test('the bound on connections in all, and on requests one connection leaves waiting for their answers', async (t) => {
  const dir = await tempDir(t);
  const key = await writeKey(dir, 'w.bounds-tcp.time.test', 'cosignature');
  const limits = limitsWith({ roughtimeTcpConnections: 2, roughtimeTcpPendingRequests: 4 });
  const server = await startRoughtimeServer({ key: key.key, host: '127.0.0.1', port: 0, tcp: { host: '127.0.0.1', port: 0 }, limits, rate: { perSecond: 0, burst: 1 } });
  t.after(() => server.close());
  const tcp = server.tcpAddress!;
  // Two connections from two addresses fill the server; a third, from a third address, is closed at once.
  const a = await rawTcp(tcp, '127.0.0.7');
  const b = await rawTcp(tcp, '127.0.0.8');
  const c = await rawTcp(tcp, '127.0.0.9');
  await c.closed;
  assert.equal(server.stats.tcp.refused, 1);
  assert.equal(server.stats.tcp.open, 2);
  // Once one closes, a new one is taken and answered.
  a.socket.destroy();
  await a.closed;
  await waitFor('the server saw the close', () => server.stats.tcp.open === 1);
  const d = await rawTcp(tcp, '127.0.0.9');
  const req = buildRequest(randomBytes(32), { publicKey: key.key.publicKey });
  d.socket.write(req);
  verifyResponse(req, (await frames(d.socket, 1))[0]!, key.key.publicKey);
  // 4 requests pipelined at once are all answered; 5 in one write leave a fifth while 4 wait: closed.
  const four = Array.from({ length: 4 }, () => buildRequest(randomBytes(32), { publicKey: key.key.publicKey }));
  d.socket.write(Buffer.concat(four));
  assert.equal((await frames(d.socket, 4)).length, 4);
  const closedBefore = server.stats.tcp.closedForError;
  b.socket.write(Buffer.concat([...four, buildRequest(randomBytes(32), { publicKey: key.key.publicKey })]));
  await b.closed;
  assert.equal(b.received().length, 0, 'closed before its batch was answered');
  assert.equal(server.stats.tcp.closedForError, closedBefore + 1);
  d.socket.end();
  await d.closed;
  // A client that writes its request and half-closes at once still gets its answer, then the close.
  const e = await rawTcp(tcp, '127.0.0.10');
  const last = buildRequest(randomBytes(32), { publicKey: key.key.publicKey });
  e.socket.end(last);
  await e.closed;
  verifyResponse(last, e.received(), key.key.publicKey);
});

test('UDP unanswered, TCP after it: a witness listed over both is asked over TCP, and stays there for the next round', async (t) => {
  const dir = await tempDir(t);
  const keys = await Promise.all([1, 2].map((i) => writeKey(dir, `w${i}.fallback.time.test`, 'cosignature')));
  const server = await startRoughtimeServer({ key: keys[0]!.key, host: '127.0.0.1', port: 0, tcp: { host: '127.0.0.1', port: 0 } });
  const other = await startRoughtimeServer({ key: keys[1]!.key, host: '127.0.0.1', port: 0 });
  t.after(() => Promise.all([server.close(), other.close()]));
  // Where the policy says w1 answers UDP, a socket that reads and never answers (UDP dropped on the path).
  const blackhole = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => blackhole.bind(0, '127.0.0.1', () => resolve()));
  t.after(() => blackhole.close());
  let swallowed = 0;
  blackhole.on('message', () => swallowed++);
  const log = await writeKey(dir, 'log.fallback.time.test');
  const release = await writeKey(dir, 'release.fallback.time.test');
  const policyOf = (roughtime: unknown[]) => parsePolicy(JSON.stringify({
    format: 'sourcemesh.policy/v1', log: { vkey: log.vkey }, witnesses: { quorum: 2, vkeys: keys.map((k) => k.vkey) },
    release: { threshold: 1, vkeys: [release.vkey] }, maxCheckpointAgeSeconds: 3600, time: { roughtime, quorum: 2 },
  }), 'policy.json');
  const w1 = keys[0]!.key.name;
  const w2 = keys[1]!.key.name;
  // Listed TCP first, UDP second: the same server, UDP first.
  const policy = policyOf([
    { witness: w1, address: server.tcpAddress!, protocol: 'tcp' },
    { witness: w2, address: other.address },
    { witness: w1, address: `127.0.0.1:${blackhole.address().port}`, protocol: 'udp' },
  ]);
  assert.deepEqual(policy.time!.roughtime.map((r) => [r.name, r.protocol, r.tcpFallback]), [[w1, 'udp', server.tcpAddress], [w2, 'udp', undefined]]);
  const limits = limitsWith({ roughtimeTimeoutMs: 200, roughtimeAttempts: 2 });
  const m = await measure(policy.time!.roughtime, { limits });
  assert.deepEqual(m.failed, []);
  assert.deepEqual(m.chain.map((e) => e.server), [w1, w2, w1, w2]);
  assert.equal(swallowed, 2, 'UDP tried twice in the first round only');
  assert.equal(server.stats.tcp.accepted, 1);
  assert.equal(server.stats.answered, 2);
  const j = judge(m.chain.map((e) => ({ server: e.server, sent: e.sent, received: e.received, midpoint: Number(e.verified.midpoint), radius: e.verified.radius })), 2, m.at);
  assert.deepEqual(j.agreed, [w1, w2].sort());

  // Without the TCP entry, the same witness fails, both UDP attempts named.
  const udpOnly = await measure(policyOf([{ witness: w1, address: `127.0.0.1:${blackhole.address().port}` }, { witness: w2, address: other.address }]).time!.roughtime, { limits });
  assert.deepEqual(udpOnly.failed.map((f) => f.server), [w1]);
  // Both routes failing: each is named.
  await server.close();
  const none = await measure(policy.time!.roughtime, { limits, rounds: 1 });
  assert.match(none.failed[0]!.reason, /^udp no answer within 200 ms \(2 attempts\); tcp cannot connect over TCP/);
  // Listed twice over one transport: refused, naming the entry.
  assert.throws(() => policyOf([{ witness: w1, address: other.address }, { witness: w1, address: other.address, protocol: 'udp' }]), (e) => isSourcemeshError(e, 'E_FORMAT') && /time\.roughtime\.1: the witness .* is listed twice over udp/.test((e as Error).message));
});

test('a hostile TCP server: garbage, an oversized frame, an unsigned answer, a close: the client fails it with the reason, never hangs', async (t) => {
  const dir = await tempDir(t);
  const key = await writeKey(dir, 'w.evil-tcp.time.test', 'cosignature');
  const behaviours: ((s: net.Socket) => void)[] = [
    (s) => s.write(randomBytes(300)),
    (s) => {
      const h = Buffer.alloc(12);
      Buffer.from('ROUGHTIM').copy(h);
      h.writeUInt32LE(1 << 30, 8);
      s.write(h);
    },
    (s) => s.write(encodePacket(encodeMessage([[TAG.TYPE, Buffer.from([1, 0, 0, 0])]]))),
    (s) => s.end(),
    () => { /* silence */ },
  ];
  const reasons: string[] = [];
  for (const behave of behaviours) {
    const open = new Set<net.Socket>();
    const evil = net.createServer((s) => {
      open.add(s);
      s.on('error', () => {});
      s.once('data', () => behave(s));
    });
    await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve));
    const address = `127.0.0.1:${(evil.address() as net.AddressInfo).port}`;
    const t0 = performance.now();
    const m = await measure([{ name: 'evil', address, publicKey: key.key.publicKey, protocol: 'tcp' }], { rounds: 1, limits: limitsWith({ roughtimeTimeoutMs: 300, roughtimeAttempts: 1 }) });
    assert.ok(performance.now() - t0 < 3000);
    assert.equal(m.chain.length, 0);
    reasons.push(m.failed[0]!.reason);
    await new Promise<void>((resolve) => {
      evil.close(() => resolve());
      for (const s of open) s.destroy();
    });
  }
  assert.match(reasons[0]!, /does not carry ROUGHTIM/);
  assert.match(reasons[1]!, /announces a 1073741824-byte message/);
  assert.match(reasons[2]!, /the answer was refused/);
  assert.match(reasons[3]!, /closed the connection/);
  assert.match(reasons[4]!, /no answer over TCP within 300 ms/);
  // Nothing listening: the connection is refused, retried after the RFC's backoff (1 s), then failed.
  const closedPort = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
  const t0 = performance.now();
  const refused = await measure([{ name: 'gone', address: `127.0.0.1:${closedPort}`, publicKey: key.key.publicKey, protocol: 'tcp' }], { rounds: 1, limits: limitsWith({ roughtimeAttempts: 2 }) });
  const took = performance.now() - t0;
  assert.match(refused.failed[0]!.reason, /cannot connect over TCP: .*ECONNREFUSED.* \(2 attempts\)/);
  assert.ok(took >= 990, `the second attempt waited for the backoff (${took} ms)`);
});

test('witness serve --roughtime-tcp, and sourcemesh time over a policy naming tcp: the liar over TCP is named', async (t) => {
  const dir = await tempDir(t);
  const keys = await Promise.all([1, 2, 3].map((i) => writeKey(dir, `w${i}.tcp-policy.time.test`, 'cosignature')));
  const log = await writeKey(dir, 'log.tcp-policy.time.test');
  const w1 = await ServerProcess.start(['witness', 'serve', '--state', path.join(dir, 'w1'), '--key', keys[0]!.file, '--listen', '127.0.0.1:0', '--log', log.pub, '--roughtime', '127.0.0.1:0', '--roughtime-tcp', '127.0.0.1:0']);
  t.after(() => w1.stop());
  const serving = await w1.waitFor((l) => l.msg === 'roughtime serving');
  const w1Tcp = String(serving.tcp);
  assert.match(w1Tcp, /^127\.0\.0\.1:\d+$/);
  // The other two in process: one honest over UDP, one an hour ahead over TCP.
  const w2 = await startRoughtimeServer({ key: keys[1]!.key, host: '127.0.0.1', port: 0 });
  const w3 = await startRoughtimeServer({ key: keys[2]!.key, host: '127.0.0.1', port: 0, tcp: { host: '127.0.0.1', port: 0 }, clock: () => Date.now() + HOUR });
  t.after(() => Promise.all([w2.close(), w3.close()]));
  const release = await writeKey(dir, 'release.tcp-policy.time.test');
  const policy = path.join(dir, 'policy.json');
  await writeFile(policy, JSON.stringify({
    format: 'sourcemesh.policy/v1',
    log: { vkey: log.vkey },
    witnesses: { quorum: 2, vkeys: keys.map((k) => k.vkey) },
    release: { threshold: 1, vkeys: [release.vkey] },
    maxCheckpointAgeSeconds: 3600,
    time: {
      roughtime: [
        { witness: keys[0]!.key.name, address: w1Tcp, protocol: 'tcp' },
        { witness: keys[1]!.key.name, address: w2.address, protocol: 'udp' },
        { witness: keys[2]!.key.name, address: w3.tcpAddress!, protocol: 'tcp' },
      ],
      quorum: 2,
    },
  }));
  const r = await runCli(['time', '--trust-policy', policy, '--state', path.join(dir, 'state'), '--json']);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.deepEqual(out.agreed, [keys[0]!.key.name, keys[1]!.key.name]);
  assert.deepEqual(out.liars.map((l: { witness: string }) => l.witness), [keys[2]!.key.name]);
  assert.equal(w3.stats.tcp.accepted, 1, 'one connection for both rounds');
  assert.equal(w3.stats.answered, 2);

  // The UDP port does not answer TCP: a policy naming tcp at a UDP-only address fails that witness.
  const wrong = JSON.parse(JSON.stringify({ roughtime: [{ witness: keys[1]!.key.name, address: w2.address, protocol: 'tcp' }] }));
  const badPolicy = path.join(dir, 'bad.json');
  await writeFile(badPolicy, JSON.stringify({ format: 'sourcemesh.policy/v1', log: { vkey: log.vkey }, witnesses: { quorum: 1, vkeys: keys.map((k) => k.vkey) }, release: { threshold: 1, vkeys: [release.vkey] }, maxCheckpointAgeSeconds: 3600, time: { ...wrong, quorum: 1 } }));
  const bad = await runCli(['time', '--trust-policy', badPolicy, '--state', path.join(dir, 'state')]);
  assert.equal(bad.code, 3, bad.stdout);
  assert.match(bad.stderr, /cannot connect over TCP/);

  // A protocol that is neither: the policy is refused, naming the field.
  const odd = path.join(dir, 'odd.json');
  await writeFile(odd, JSON.stringify({ format: 'sourcemesh.policy/v1', log: { vkey: log.vkey }, witnesses: { quorum: 1, vkeys: keys.map((k) => k.vkey) }, release: { threshold: 1, vkeys: [release.vkey] }, maxCheckpointAgeSeconds: 3600, time: { roughtime: [{ witness: keys[1]!.key.name, address: w2.address, protocol: 'sctp' }] } }));
  const oddRun = await runCli(['time', '--trust-policy', odd]);
  assert.equal(oddRun.code, 2);
  assert.match(oddRun.stderr, /protocol/);

  // --roughtime-tcp without --roughtime is a usage error.
  const lone = await runCli(['witness', 'serve', '--state', path.join(dir, 'w9'), '--key', keys[0]!.file, '--listen', '127.0.0.1:0', '--log', log.pub, '--roughtime-tcp', '127.0.0.1:0']);
  assert.equal(lone.code, 2);
  assert.match(lone.stderr, /--roughtime-tcp needs --roughtime/);
});
