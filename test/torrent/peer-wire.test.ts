// The pure parts of our peer wire: the Merkle tree's hash answers (BEP 52) against the root they must
// prove, and the message guard over every way a stream can be cut into chunks.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { blockHashes, pieceMapFromLeaves } from '../../src/fetch/piece-map.ts';
import { MerkleTree } from '../../src/torrent/merkle-tree.ts';
import { MessageGuard, PeerReader, fullBitfield, hashMessagePayload, parseHashRequest } from '../../src/torrent/peer-wire.ts';
import { bytes } from '../helpers/distfiles.ts';

const h2 = (a: Buffer, b: Buffer) => createHash('sha256').update(a).update(b).digest();

/** Rebuild the root from a `hashes` answer as a receiver does: hash the range up, then fold in the uncles. */
function rootFrom(tree: MerkleTree, base: number, index: number, length: number, answer: Buffer[]): Buffer {
  let row = answer.slice(0, length);
  while (row.length > 1) {
    const next: Buffer[] = [];
    for (let i = 0; i < row.length; i += 2) next.push(h2(row[i]!, row[i + 1]!));
    row = next;
  }
  let node = row[0]!;
  let at = index / length;
  for (const uncle of answer.slice(length)) {
    node = at % 2 === 0 ? h2(node, uncle) : h2(uncle, node);
    at = Math.floor(at / 2);
  }
  return node;
}

test('the tree\'s root is the manifest\'s merkleRoot (src/fetch/piece-map.ts), for every leaf count', () => {
  for (const size of [1, 16_384, 16_385, 100_000, 600_000]) {
    const leaves = blockHashes(bytes(size, size));
    assert.ok(new MerkleTree(leaves).root.equals(pieceMapFromLeaves(leaves, 16_384).root), `size ${size}`);
  }
});

test('property: every answerable hash request proves its range against the root with all proof layers', () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 300 }), fc.nat(), fc.nat(), fc.nat(), (leafCount, b, l, i) => {
    const leaves = Array.from({ length: leafCount }, (_, k) => createHash('sha256').update(`leaf ${k}`).digest());
    const tree = new MerkleTree(leaves);
    const base = b % tree.height;
    const width = tree.width(base);
    const length = 2 ** (l % (Math.log2(width) + 1));
    const index = (i % (width / length)) * length;
    const all = tree.height - 1 - base - Math.log2(length);
    const answer = tree.hashes(base, index, length, 64, 8192)!;
    assert.equal(answer.length, length + all, 'uncles up to, not including, the root');
    assert.ok(rootFrom(tree, base, index, length, answer).equals(tree.root));
    // Fewer proof layers give a prefix of the same answer.
    assert.deepEqual(tree.hashes(base, index, length, 1, 8192), answer.slice(0, length + Math.min(1, all)));
  }), { numRuns: 300 });
});

test('hash requests that do not fit the tree are refused (a hash reject), never answered with padding', () => {
  const tree = new MerkleTree(blockHashes(bytes(200_000, 1))); // 13 leaves, 16 wide, height 5
  assert.equal(tree.hashes(5, 0, 1, 0, 8192), undefined, 'no such layer');
  assert.equal(tree.hashes(0, 0, 3, 0, 8192), undefined, 'not a power of two');
  assert.equal(tree.hashes(0, 2, 4, 0, 8192), undefined, 'not aligned');
  assert.equal(tree.hashes(0, 16, 1, 0, 8192), undefined, 'past the width');
  assert.equal(tree.hashes(0, 0, 16, 0, 8), undefined, 'more than the bound');
  assert.equal(tree.hashes(0, 0, 0, 0, 8192), undefined, 'none');
  assert.equal(tree.hashes(0, 0x7fffffff, 1, 0, 8192), undefined);
  assert.equal(tree.hashes(0, 0, 16, 0, 8192)!.length, 16);
});

test('hash message payloads round-trip; other lengths are malformed', () => {
  const r = { root: Buffer.alloc(32, 9), base: 2, index: 64, length: 32, proofLayers: 5 };
  assert.deepEqual(parseHashRequest(hashMessagePayload(r)), r);
  assert.equal(parseHashRequest(Buffer.alloc(47)), undefined);
  assert.equal(parseHashRequest(Buffer.alloc(49)), undefined);
  assert.equal(hashMessagePayload(r, [Buffer.alloc(32, 1), Buffer.alloc(32, 2)]).length, 48 + 64);
});

test('bitfields: exactly the pieces set, spare bits zero (BEP 3)', () => {
  assert.deepEqual([...fullBitfield(1)], [0x80]);
  assert.deepEqual([...fullBitfield(8)], [0xff]);
  assert.deepEqual([...fullBitfield(11)], [0xff, 0xe0]);
});

function guard(stream: Buffer, cuts: number[], max: number): { out: Buffer; violation?: string } {
  let violation: string | undefined;
  const g = new MessageGuard(max, (why) => (violation ??= why));
  const out: Buffer[] = [];
  g.on('data', (d: Buffer) => out.push(d));
  let at = 0;
  for (const c of [...cuts.map((x) => x % (stream.length + 1)).sort((a, b) => a - b), stream.length]) {
    if (violation !== undefined) break;
    g.write(stream.subarray(at, Math.max(at, c)));
    at = Math.max(at, c);
  }
  return { out: Buffer.concat(out), violation };
}

const handshake = Buffer.concat([Buffer.from([19]), Buffer.from('BitTorrent protocol'), Buffer.alloc(48, 1)]);
const message = (len: number, fill = 0) => Buffer.concat([Buffer.from([len >>> 24, (len >>> 16) & 255, (len >>> 8) & 255, len & 255]), Buffer.alloc(len, fill)]);

test('property: the guard passes the handshake and whole messages unchanged, however the stream is cut', () => {
  fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 300 }), { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 20 }), (lens, cuts) => {
    const stream = Buffer.concat([handshake, ...lens.map((n, i) => message(n, i))]);
    const r = guard(stream, cuts, 300);
    assert.equal(r.violation, undefined);
    assert.ok(r.out.equals(stream));
  }), { numRuns: 500 });
});

test('property: a length prefix over the bound stops the stream before its body, however it is cut', () => {
  fc.assert(fc.property(fc.integer({ min: 301, max: 0xffffffff }), fc.array(fc.nat(), { maxLength: 20 }), (len, cuts) => {
    const head = Buffer.alloc(4);
    head.writeUInt32BE(len);
    const stream = Buffer.concat([handshake, message(5), head, Buffer.alloc(2000)]);
    const r = guard(stream, cuts, 300);
    assert.match(r.violation ?? '', new RegExp(`a message of ${len} bytes`));
    assert.ok(r.out.length <= handshake.length + 9, 'nothing of the oversized message was passed on');
  }), { numRuns: 300 });
  // Not a plaintext handshake at all (an encrypted one): closed without blame.
  assert.equal(guard(Buffer.from([0x8a, 1, 2, 3]), [], 300).violation, '');
});

test('the guard passes the whole messages of a chunk as a view of it, and copies only a message cut between chunks', () => {
  const own = (b: Buffer) => {
    const o = Buffer.allocUnsafeSlow(b.length); // memory of its own, as a socket read gives
    b.copy(o);
    return o;
  };
  const g = new MessageGuard(1000, (why) => assert.fail(`no violation expected: ${why}`));
  const out: Buffer[] = [];
  g.on('data', (d: Buffer) => out.push(d));
  const cut = message(200, 1);
  const first = own(Buffer.concat([handshake, message(100, 2), cut.subarray(0, 50)]));
  const second = own(Buffer.concat([cut.subarray(50), message(300, 3), message(10, 4), message(0), Buffer.from([0, 0])]));
  g.write(first);
  g.write(second);
  g.write(own(Buffer.from([0, 5, 9, 9, 9, 9, 9]))); // the last prefix, cut after two bytes
  assert.ok(Buffer.concat(out).equals(Buffer.concat([first, second, Buffer.from([0, 5, 9, 9, 9, 9, 9])])));
  const whole = out.find((d) => d.length === 204);
  assert.ok(whole?.equals(cut), 'the cut message passed whole, once');
  const views = out.filter((d) => d.buffer === second.buffer);
  assert.equal(views.length, 1, 'the whole messages of the second chunk: one view of it, no copy');
  assert.equal(views[0]!.byteOffset, second.byteOffset + 154);
  assert.equal(views[0]!.length, 304 + 14 + 4);
});

/** Feed `stream` to a PeerReader cut at `cuts`, each chunk written into the reader's own memory first, as a socket read with `onread` is. */
function readAll(stream: Buffer, cuts: number[], max: number, readBytes: number): { pieces: { index: number; begin: number; block: Buffer; view: Buffer }[]; other: Buffer; violation?: string; reader: PeerReader } {
  let violation: string | undefined;
  const pieces: { index: number; begin: number; block: Buffer; view: Buffer }[] = [];
  const other: Buffer[] = [];
  const reader = new PeerReader(max, readBytes, (why) => (violation ??= why), (index, begin, block) => pieces.push({ index, begin, block: Buffer.from(block), view: block }), (b) => other.push(b));
  const points = [...cuts.map((x) => x % (stream.length + 1)).sort((a, b) => a - b), stream.length];
  let at = 0;
  for (const c of points) {
    // A read never exceeds the reader's memory.
    while (at < c && violation === undefined) {
      const n = Math.min(readBytes, c - at);
      stream.copy(reader.buffer, 0, at, at + n);
      reader.read(n);
      at += n;
    }
  }
  return { pieces, other: Buffer.concat(other), violation, reader };
}

const piece = (index: number, begin: number, len: number, fill: number) => msg(7, index, begin, Buffer.alloc(len, fill));
const msg = (id: number, ...parts: (number | Buffer)[]) => {
  const body = Buffer.concat([Buffer.from([id]), ...parts.map((p) => (typeof p === 'number' ? Buffer.from([p >>> 24, (p >>> 16) & 255, (p >>> 8) & 255, p & 255]) : p))]);
  return Buffer.concat([Buffer.from([body.length >>> 24, (body.length >>> 16) & 255, (body.length >>> 8) & 255, body.length & 255]), body]);
};

test('property: the reader hands out every block and passes the other messages in order, however the stream is cut, its read memory reused', () => {
  fc.assert(fc.property(
    fc.array(fc.oneof(
      fc.record({ kind: fc.constant('piece' as const), index: fc.nat(1000), begin: fc.nat(1 << 20), len: fc.integer({ min: 0, max: 2000 }) }),
      fc.record({ kind: fc.constant('other' as const), len: fc.integer({ min: 0, max: 300 }) }),
    ), { maxLength: 14 }),
    fc.array(fc.nat(), { maxLength: 20 }),
    fc.integer({ min: 1, max: 700 }),
    (parts, cuts, readBytes) => {
      const msgs = parts.map((p, i) => (p.kind === 'piece' ? piece(p.index, p.begin, p.len, i) : message(p.len, i)));
      const stream = Buffer.concat([handshake, ...msgs]);
      const r = readAll(stream, cuts, 2100, readBytes);
      assert.equal(r.violation, undefined);
      // A piece is any message of id 7 and 9 bytes or more (BEP 3), whichever way it was made.
      const isPiece = (m: Buffer) => m.length >= 13 && m[4] === 7;
      const wantPieces = msgs.filter(isPiece).map((m) => ({ index: m.readUInt32BE(5), begin: m.readUInt32BE(9), block: m.subarray(13) }));
      assert.deepEqual(r.pieces.map(({ index, begin, block }) => ({ index, begin, block })), wantPieces);
      // Every other message and the handshake, unchanged and in order.
      assert.ok(r.other.equals(Buffer.concat([handshake, ...msgs.filter((m) => !isPiece(m))])));
    }), { numRuns: 500 });
});

test('the reader stops at a length prefix over the bound, before its body; a block cut between reads is put together in memory kept for the next', () => {
  const head = Buffer.from([0, 0x10, 0, 0]); // 1 MiB
  const r = readAll(Buffer.concat([handshake, piece(1, 0, 100, 1), head, Buffer.alloc(3000)]), [80, 200], 2100, 64);
  assert.match(r.violation ?? '', /a message of 1048576 bytes \(at most 2100\)/);
  assert.equal(r.pieces.length, 1);
  // Two blocks, each cut across reads of 64 bytes: put together in the same memory, which is no read's.
  const two = readAll(Buffer.concat([handshake, piece(1, 0, 1000, 1), piece(1, 1000, 1000, 2)]), [], 2100, 64);
  assert.equal(two.pieces.length, 2);
  assert.ok(two.pieces[0]!.block.equals(Buffer.alloc(1000, 1)) && two.pieces[1]!.block.equals(Buffer.alloc(1000, 2)));
  assert.equal(two.pieces[0]!.view.buffer, two.pieces[1]!.view.buffer, 'the second cut block reused the first one\'s memory');
  assert.notEqual(two.pieces[0]!.view.buffer, two.reader.buffer.buffer);
  // A block whole in one read is a view of the read memory itself (no copy before the caller's).
  const one = readAll(Buffer.concat([handshake, piece(3, 0, 100, 3)]), [68], 2100, 700);
  assert.equal(one.pieces[0]!.view.buffer, one.reader.buffer.buffer);
});
