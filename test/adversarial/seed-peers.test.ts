// Hostile peers against `sourcemesh seed`: a raw TCP peer (test/torrent/raw-peer.ts) sends what no honest client does.
// Each case comes from its own loopback address (bans are per address). The seed must ban or refuse,
// keep serving honest peers, and never send a byte that is not the verified file's.
import assert from 'node:assert/strict';
import { writeFile, mkdir, open } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { bytes } from '../helpers/distfiles.ts';
import { tempDir } from '../helpers/run.ts';
import { msg, RawPeer, u32 } from '../torrent/raw-peer.ts';
import { startSeed, type Seeding } from '../torrent/seed-process.ts';

const SIZE = 200_000; // 13 blocks of 16 KiB, 13 pieces
const DATA = bytes(SIZE, 42);

/** A raw peer connecting from `from` to the seed's HOST:PORT. */
const rawPeer = (address: string, from: string): RawPeer => {
  const [host, port] = address.split(':');
  return new RawPeer(host!, Number(port), from);
};

async function setup(t: { after(fn: () => unknown): void }): Promise<{ seed: Seeding; v1: string; v2: string; file: string; root: Buffer }> {
  const dir = await tempDir(t);
  const root = path.join(dir, 'root');
  await mkdir(root);
  const file = path.join(root, 'file.tar');
  await writeFile(file, DATA);
  const seed = await startSeed(t, ['--root', root]);
  const f = seed.first.files[0] as unknown as { infoHashes: { hybrid: { v1: string; v2: string } }; merkleRoot: string };
  return { seed, v1: f.infoHashes.hybrid.v1, v2: f.infoHashes.hybrid.v2.slice(0, 40), file, root: Buffer.from(f.merkleRoot, 'hex') };
}

/** An honest exchange from `from`: handshake, interested, one block; returns it. */
async function honestBlock(seed: Seeding, infoHash: string, from: string, index: number): Promise<Buffer> {
  const p = rawPeer(seed.address, from);
  await p.connected();
  p.greet(infoHash);
  await p.message(5, 'the bitfield');
  p.send(msg(2));
  await p.message(1, 'unchoke');
  p.send(msg(6, index, 0, 16_384));
  const piece = await p.message(7, 'the piece');
  p.socket.destroy();
  return piece.subarray(9);
}

test('oversized, out-of-range, endless and malformed messages get the peer banned; honest peers are served', async (t) => {
  const { seed, v1, v2 } = await setup(t);

  // A length prefix of almost 4 GiB: banned at once, before the seed buffers any of it.
  const big = rawPeer(seed.address, '127.0.0.21');
  await big.connected();
  big.greet(v1);
  await big.message(5, 'the bitfield');
  big.send(Buffer.concat([u32(0xfffffff0), Buffer.alloc(64 * 1024, 1)]));
  await big.closedByPeer('the oversized message to end the connection');
  // Banned for the run: a new connection from the same address is closed without a handshake.
  const again = rawPeer(seed.address, '127.0.0.21');
  await again.closedByPeer('the banned address to be refused');
  assert.equal(again.handshake, undefined);

  // A request past the end of the file, and one longer than a block.
  for (const [from, request] of [['127.0.0.22', msg(6, 13, 0, 16_384)], ['127.0.0.23', msg(6, 0, 0, 1 << 20)], ['127.0.0.24', msg(6, 12, 3_000, 16_384)]] as const) {
    const p = rawPeer(seed.address, from);
    await p.connected();
    p.greet(v1);
    await p.message(5, 'the bitfield');
    p.send(msg(2));
    await p.message(1, 'unchoke');
    p.send(request);
    await p.closedByPeer(`the bad request from ${from} to end the connection`);
    assert.equal(p.messages.filter((m) => m[0] === 7).length, 0, 'no piece for a bad request');
  }

  // Endless requests that are never read: banned past twice the advertised queue, memory held one block.
  const greedy = rawPeer(seed.address, '127.0.0.25');
  await greedy.connected();
  greedy.greet(v1);
  await greedy.message(5, 'the bitfield');
  greedy.socket.pause();
  greedy.send(msg(2));
  greedy.send(Buffer.concat(Array.from({ length: 20_000 }, (_, i) => msg(6, i % 13, 0, i % 13 === 12 ? SIZE - 12 * 16_384 : 16_384))));
  greedy.socket.resume();
  await greedy.closedByPeer('the endless requester to be dropped');

  // A malformed hash request (not 48 bytes) is a ban; well-formed ones we cannot answer get a hash reject.
  const hashes = rawPeer(seed.address, '127.0.0.26');
  await hashes.connected();
  hashes.greet(v2);
  await hashes.message(5, 'the bitfield');
  const bogus = Buffer.concat([Buffer.alloc(32, 0xee), u32(0), u32(0), u32(2), u32(0)]);
  hashes.send(msg(21, bogus));
  const reject = await hashes.message(23, 'a hash reject for an unknown root');
  assert.ok(reject.subarray(1).equals(bogus), 'the reject repeats the request');
  hashes.send(msg(21, Buffer.alloc(10)));
  await hashes.closedByPeer('the malformed hash request to end the connection');

  // An info-hash we do not seed: closed, nobody banned.
  const stranger = rawPeer(seed.address, '127.0.0.27');
  await stranger.connected();
  stranger.greet('00'.repeat(20));
  await stranger.closedByPeer('an unknown info-hash to be refused');

  // Honest peers still get the right bytes, over v1 and over the truncated v2 info-hash.
  assert.ok((await honestBlock(seed, v1, '127.0.0.28', 3)).equals(DATA.subarray(3 * 16_384, 4 * 16_384)));
  assert.ok((await honestBlock(seed, v2, '127.0.0.29', 0)).equals(DATA.subarray(0, 16_384)));

  const records = await seed.stop();
  const banned = (records.find((r) => r.msg === 'stopped')!.banned ?? {}) as Record<string, string>;
  assert.deepEqual(Object.keys(banned).sort(), ['127.0.0.21', '127.0.0.22', '127.0.0.23', '127.0.0.24', '127.0.0.25', '127.0.0.26']);
  assert.match(banned['127.0.0.21']!, /a message of 4294967280 bytes/);
  assert.match(banned['127.0.0.25']!, /more than 500 requests waiting/);
});

test('a file changed on disk after it was verified is never sent: the seed stops seeding it', async (t) => {
  const { seed, v1, file } = await setup(t);
  assert.ok((await honestBlock(seed, v1, '127.0.0.31', 1)).equals(DATA.subarray(16_384, 32_768)));
  // Same size, one byte changed in place (the inode the seed holds open).
  const fh = await open(file, 'r+');
  await fh.write(Buffer.from([DATA[5 * 16_384 + 7]! ^ 1]), 0, 1, 5 * 16_384 + 7);
  await fh.close();
  const p = rawPeer(seed.address, '127.0.0.32');
  await p.connected();
  p.greet(v1);
  await p.message(5, 'the bitfield');
  p.send(msg(2));
  await p.message(1, 'unchoke');
  p.send(msg(6, 5, 0, 16_384));
  await p.closedByPeer('the connection to end instead of a changed block');
  assert.equal(p.messages.filter((m) => m[0] === 7).length, 0, 'no piece of the changed block');
  // And the file is no longer offered at all.
  const later = rawPeer(seed.address, '127.0.0.33');
  await later.connected();
  later.greet(v1);
  await later.closedByPeer('a retired file to be refused');
  assert.equal(later.handshake, undefined);
  const records = await seed.stop();
  assert.ok(records.some((r) => r.msg === 'cannot send a block; the file is no longer seeded'));
});
