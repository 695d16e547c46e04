// Signed time end to end on loopback: three witnesses answer Roughtime over real UDP, one of them an hour
// ahead; `sourcemesh time` (the CLI in a child process) keeps the interval the two honest ones agree on,
// names the liar, and writes the chained proof, which checkProof verifies and which holds the liar's
// causal-order breaks. `witness serve --roughtime` itself answers. Hostile datagrams never stop a server
// or crash a client.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { isSourcemeshError } from '../../src/errors.ts';
import { measure } from '../../src/time/client.ts';
import { judge } from '../../src/time/measure.ts';
import { checkProof } from '../../src/time/proof.ts';
import { buildRequest, verifyResponse } from '../../src/time/protocol.ts';
import { startRoughtimeServer } from '../../src/time/server.ts';
import { encodeMessage, encodePacket, TAG } from '../../src/time/wire.ts';
import { limitsWith } from '../../src/limits.ts';
import { runCli, tempDir } from '../helpers/run.ts';
import { ServerProcess, writeKey, type KeyFiles } from '../trust/log/servers.ts';

const HOUR = 3600_000;

async function policyFile(dir: string, witnesses: KeyFiles[], addresses: string[], quorum = 2): Promise<string> {
  const log = await writeKey(dir, 'log.time.test');
  const release = await writeKey(dir, 'release.time.test');
  const file = path.join(dir, 'policy.json');
  await writeFile(file, JSON.stringify({
    format: 'sourcemesh.policy/v1',
    log: { vkey: log.vkey },
    witnesses: { quorum, vkeys: witnesses.map((w) => w.vkey) },
    release: { threshold: 1, vkeys: [release.vkey] },
    maxCheckpointAgeSeconds: 3600,
    time: { roughtime: witnesses.map((w, i) => ({ witness: w.key.name, address: addresses[i] })), quorum },
  }, null, 2));
  return file;
}

test('a witness an hour ahead among two honest ones is named, with the chained proof written', async (t) => {
  const dir = await tempDir(t);
  const keys = await Promise.all([1, 2, 3].map((i) => writeKey(dir, `w${i}.time.test`, 'cosignature')));
  const offsets = [0, 0, HOUR];
  const servers = await Promise.all(keys.map((k, i) => startRoughtimeServer({ key: k.key, host: '127.0.0.1', port: 0, clock: () => Date.now() + offsets[i]! })));
  t.after(() => Promise.all(servers.map((s) => s.close())));
  const policy = await policyFile(dir, keys, servers.map((s) => s.address));
  const proof = path.join(dir, 'proof.json');
  const r = await runCli(['time', '--trust-policy', policy, '--state', path.join(dir, 'state'), '--proof', proof, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.deepEqual(out.agreed, ['w1.time.test', 'w2.time.test']);
  assert.deepEqual(out.liars.map((l: { witness: string }) => l.witness), ['w3.time.test']);
  assert.ok(out.liars[0].proof.length > 0, 'the liar broke causal order in the chain');
  assert.equal(out.withinBound, true);
  const now = Date.now();
  assert.ok(Date.parse(out.earliest) <= now && now <= Date.parse(out.latest) + 1000, `${out.earliest} .. ${out.latest} holds the true time`);
  assert.ok(Date.parse(out.latest) - Date.parse(out.earliest) <= 6000 + 2000, 'the interval is about 2 RADI wide');

  // The proof: 6 chained responses (two rounds of three), every one valid, the liar's breaks in it.
  const checked = checkProof(await readFile(proof, 'utf8'), proof);
  assert.equal(checked.responses.length, 6);
  const liarKey = Buffer.from(keys[2]!.key.publicKey).toString('base64');
  assert.ok(checked.breaks.length > 0 && checked.breaks.every((b) => b.earlierServer === liarKey || b.laterServer === liarKey));

  // Without --proof, a liar's proof goes to STATE/roughtime/.
  const human = await runCli(['time', '--trust-policy', policy, '--state', path.join(dir, 'state')]);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /^signed time .* \(2 of 3 witnesses agree, quorum 2: w1\.time\.test, w2\.time\.test\)\n/);
  assert.match(human.stdout, /liar: w3\.time\.test contradicts the others/);
  const kept = /proof: (.*)\n/.exec(human.stdout)![1]!;
  assert.ok(kept.startsWith(path.join(dir, 'state', 'roughtime')));
  checkProof(await readFile(kept, 'utf8'), kept);

  // Two liars out of three: no quorum, exit 3, the reason named.
  await servers[1]!.close();
  const lone = await startRoughtimeServer({ key: keys[1]!.key, host: '127.0.0.1', port: Number(servers[1]!.address.split(':')[1]), clock: () => Date.now() - HOUR });
  t.after(() => lone.close());
  const split = await runCli(['time', '--trust-policy', policy, '--state', path.join(dir, 'state')]);
  assert.equal(split.code, 3, split.stdout);
  assert.match(split.stderr, /no signed time: at most 1 of 3 witnesses agree; the quorum is 2 \[E_POLICY\]/);
});

test('witness serve --roughtime answers under a delegation from the witness key', async (t) => {
  const dir = await tempDir(t);
  const key = await writeKey(dir, 'w.serve.time.test', 'cosignature');
  const log = await writeKey(dir, 'log.serve.time.test');
  const w = await ServerProcess.start(['witness', 'serve', '--state', path.join(dir, 'w'), '--key', key.file, '--listen', '127.0.0.1:0', '--log', log.pub, '--roughtime', '127.0.0.1:0']);
  t.after(() => w.stop());
  const address = String((await w.waitFor((l) => l.msg === 'roughtime serving')).address);
  const m = await measure([{ name: 'w', address, publicKey: key.key.publicKey }]);
  assert.equal(m.chain.length, 2);
  assert.deepEqual(m.failed, []);
  const j = judge(m.chain.map((e) => ({ server: e.server, sent: e.sent, received: e.received, midpoint: Number(e.verified.midpoint), radius: e.verified.radius })), 1, m.at);
  assert.ok(j.earliest <= Date.now() && Date.now() <= j.latest + 1000);
  // Another witness's key is not this server's (SRV names the key): no answer.
  const other = await writeKey(dir, 'other.time.test', 'cosignature');
  const refused = await measure([{ name: 'other', address, publicKey: other.key.publicKey }], { limits: limitsWith({ roughtimeTimeoutMs: 200, roughtimeAttempts: 1 }) });
  assert.equal(refused.chain.length, 0);
  assert.match(refused.failed[0]!.reason, /no answer within 200 ms/);
});

async function udpSend(address: string, packets: Buffer[]): Promise<void> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  const s = dgram.createSocket('udp4');
  for (const p of packets) await new Promise<void>((resolve) => s.send(p, port, host, () => resolve()));
  s.close();
}

test('hostile datagrams never stop the server; a hostile server never crashes the client', async (t) => {
  const dir = await tempDir(t);
  const key = await writeKey(dir, 'w.hostile.time.test', 'cosignature');
  // The per-client limit off: every hostile datagram reaches the parser.
  const server = await startRoughtimeServer({ key: key.key, host: '127.0.0.1', port: 0, rate: { perSecond: 0, burst: 1 } });
  t.after(() => server.close());
  const valid = buildRequest(randomBytes(32), { publicKey: key.key.publicKey });
  const hugeCount = Buffer.from(valid);
  hugeCount.writeUInt32LE(0xffffffff, 12);
  const unsorted = Buffer.from(valid);
  unsorted.writeUInt32LE(TAG.ZZZZ, 12 + 4 + 16);
  const badOffset = Buffer.from(valid);
  badOffset.writeUInt32LE(0x7ffffff0, 12 + 4);
  const shortOne = encodePacket(encodeMessage([[TAG.VER, Buffer.from([1, 0, 0, 0])], [TAG.NONC, randomBytes(32)], [TAG.TYPE, Buffer.alloc(4)]]));
  const typeOne = Buffer.from(valid);
  typeOne.writeUInt32LE(1, valid.length - 4 - 0); // inside ZZZZ: harmless, still valid
  const hostile = [Buffer.alloc(0), Buffer.from('ROUGHTIM'), hugeCount, unsorted, badOffset, Buffer.alloc(4096, 0xff), randomBytes(1024), shortOne];
  for (let i = 0; i < 50; i++) await udpSend(server.address, hostile);
  // A short request gets no answer (its answer would be larger: amplification); the rest are malformed.
  const m = await measure([{ name: 'w', address: server.address, publicKey: key.key.publicKey }]);
  assert.equal(m.chain.length, 2, 'the server still answers');
  // Loopback may lose datagrams under load; every one that arrived was dropped unanswered.
  assert.equal(server.stats.answered, 2);
  assert.equal(server.stats.dropped, server.stats.received - 2);
  assert.ok(server.stats.dropped >= hostile.length, `dropped ${server.stats.dropped}`);

  // A hostile "server": answers every request with garbage, a replayed answer to another request, or a
  // huge datagram. The client refuses each, reports the server failed, and the judgement says no quorum.
  const evil = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => evil.bind(0, '127.0.0.1', () => resolve()));
  t.after(() => evil.close());
  let n = 0;
  const oldReq = buildRequest(randomBytes(32), { publicKey: key.key.publicKey });
  evil.on('message', (msg, rinfo) => {
    const answers = [randomBytes(300), Buffer.alloc(8000), hugeCount, msg];
    evil.send(answers[n++ % answers.length]!, rinfo.port, rinfo.address);
  });
  const evilAddress = `127.0.0.1:${evil.address().port}`;
  const limits = limitsWith({ roughtimeTimeoutMs: 300, roughtimeAttempts: 2 });
  const bad = await measure([{ name: 'evil', address: evilAddress, publicKey: key.key.publicKey }, { name: 'w', address: server.address, publicKey: key.key.publicKey }], { limits });
  assert.deepEqual(bad.failed.map((f) => f.server), ['evil']);
  assert.match(bad.failed[0]!.reason, /no valid answer|no answer/);
  assert.equal(bad.chain.length, 2);
  assert.throws(() => judge(bad.chain.map((e) => ({ server: e.server, sent: e.sent, received: e.received, midpoint: Number(e.verified.midpoint), radius: e.verified.radius })), 2, bad.at), (e) => isSourcemeshError(e, 'E_POLICY'));
  assert.throws(() => verifyResponse(oldReq, bad.chain[0]!.response, key.key.publicKey), (e) => isSourcemeshError(e, 'E_PROOF'));
});
