// A private DHT of real bittorrent-dht nodes on loopback (no bootstrap outside it): BEP 44 put and get
// across nodes, BEP 5 announce and lookup, the state file across a restart, and hostile answers (a bad
// signature, an oversized value) from a hand-made DHT node that answers every get with what it is told.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DhtNode, mutableTarget, parseDhtAddress, parseDhtAddressList } from '../../src/discovery/dht.ts';
import { isSourcemeshError } from '../../src/errors.ts';
import { limitsWith } from '../../src/limits.ts';
import { KEY_TYPE_ED25519, signEd25519, signerKeyFromSeed } from '../../src/trust/note.ts';
import { startDhtSwarm } from '../helpers/dht.ts';

const key = signerKeyFromSeed('pointer-test', KEY_TYPE_ED25519, Buffer.alloc(32, 7));
const other = signerKeyFromSeed('someone-else', KEY_TYPE_ED25519, Buffer.alloc(32, 9));
const limits = limitsWith({ dhtQueryTimeoutMs: 15_000 });

describe('a private DHT of 20 nodes on loopback', () => {
  let nodes: DhtNode[] = [];
  before(async () => {
    nodes = await startDhtSwarm(20, limits);
  });
  after(async () => {
    await Promise.all(nodes.map((n) => n.close()));
  });

  test('a mutable item put from one node is got from another, with its seq; the salt separates items', async () => {
    const salt = Buffer.from('live-bootstrap');
    const put = await nodes[3]!.putMutable({ seed: key.seed, publicKey: key.publicKey, value: Buffer.from('{"v":1}'), seq: 1, salt });
    assert.ok(put.nodes > 0);
    assert.equal(put.target, mutableTarget(key.publicKey, salt).toString('hex'));
    const got = await nodes[17]!.getMutable(key.publicKey, salt);
    assert.deepEqual(got && { v: got.value.toString(), seq: got.seq }, { v: '{"v":1}', seq: 1 });
    // Another salt, another key: nothing there.
    assert.equal(await nodes[11]!.getMutable(key.publicKey, Buffer.from('other-list')), undefined);
    assert.equal(await nodes[12]!.getMutable(other.publicKey, salt), undefined);
  });

  test('a newer seq replaces the item; a lower seq is refused by the storing nodes and the newest stays', async () => {
    const salt = Buffer.from('seq-test');
    await nodes[2]!.putMutable({ seed: key.seed, publicKey: key.publicKey, value: Buffer.from('five'), seq: 5, salt });
    await nodes[2]!.putMutable({ seed: key.seed, publicKey: key.publicKey, value: Buffer.from('six'), seq: 6, salt });
    await nodes[4]!.putMutable({ seed: key.seed, publicKey: key.publicKey, value: Buffer.from('three'), seq: 3, salt }).catch(() => undefined);
    const got = await nodes[19]!.getMutable(key.publicKey, salt);
    assert.deepEqual(got && { v: got.value.toString(), seq: got.seq }, { v: 'six', seq: 6 });
  });

  test('a value over 1000 bytes bencoded, a salt over 64 bytes and a short key are refused before sending', async () => {
    await assert.rejects(nodes[1]!.putMutable({ seed: key.seed, publicKey: key.publicKey, value: Buffer.alloc(997), seq: 1 }), (e) => isSourcemeshError(e, 'E_INPUT'));
    await nodes[1]!.putMutable({ seed: key.seed, publicKey: key.publicKey, value: Buffer.alloc(996), seq: 1 }); // 996: then 996 bytes, 1000 in all
    await assert.rejects(nodes[1]!.putMutable({ seed: key.seed, publicKey: key.publicKey, value: Buffer.from('x'), seq: 1, salt: Buffer.alloc(65) }), (e) => isSourcemeshError(e, 'E_INPUT'));
    await assert.rejects(nodes[1]!.getMutable(key.publicKey.subarray(0, 31)), (e) => isSourcemeshError(e, 'E_INPUT'));
  });

  test('BEP 5: a peer announced from one node is found from another', async () => {
    const infoHash = Buffer.alloc(20, 0xab);
    await nodes[5]!.announce(infoHash, 6881);
    const peers = await nodes[14]!.lookup(infoHash);
    assert.ok(peers.some((p) => p.host === '127.0.0.1' && p.port === 6881), JSON.stringify(peers));
  });
});

describe('the DHT state file', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sm-dht-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('a restarted node keeps its id and finds the DHT again without a bootstrap list', async () => {
    const hub = await DhtNode.start({ bootstrap: [], host: '127.0.0.1', limits });
    const stateFile = path.join(dir, 'dht.json');
    const a = await DhtNode.start({ bootstrap: [hub.address()], host: '127.0.0.1', stateFile, limits });
    const id = a.id;
    await a.close();
    const saved = JSON.parse(await readFile(stateFile, 'utf8'));
    assert.equal(saved.id, id);
    assert.ok(saved.nodes.some((n: { port: number }) => n.port === hub.address().port));
    const b = await DhtNode.start({ bootstrap: [], host: '127.0.0.1', stateFile, limits });
    try {
      assert.equal(b.id, id);
      await b.putMutable({ seed: key.seed, publicKey: key.publicKey, value: Buffer.from('again'), seq: 1 });
    } finally {
      await b.close();
      await hub.close();
    }
  });

  test('a malformed state file is refused with E_FORMAT naming the file', async () => {
    const stateFile = path.join(dir, 'bad.json');
    await writeFile(stateFile, '{"format":"sourcemesh.dht-state/v1","id":"zz","nodes":[]}');
    await assert.rejects(DhtNode.start({ bootstrap: [], host: '127.0.0.1', stateFile, limits }), (e) => isSourcemeshError(e, 'E_FORMAT') && e.message.includes(stateFile));
  });
});

test('bootstrap addresses are parsed strictly', () => {
  assert.deepEqual(parseDhtAddress('10.0.0.1:6881'), { host: '10.0.0.1', port: 6881 });
  assert.deepEqual(parseDhtAddress('[fd00::1]:6881'), { host: 'fd00::1', port: 6881 });
  assert.deepEqual(parseDhtAddressList('a.example:1,b.example:2').map((a) => a.port), [1, 2]);
  for (const bad of ['10.0.0.1', '10.0.0.1:0', '10.0.0.1:70000', '[zz]:1', 'a b:1']) {
    assert.throws(() => parseDhtAddress(bad), (e) => isSourcemeshError(e, 'E_USAGE'), bad);
  }
});

// ---------------------------------------------------------------------------------------------------
// A hostile DHT node: it answers find_node with no nodes and every get with the value it is given.

type B = number | Buffer | B[] | { [k: string]: B };
function benc(v: B): Buffer {
  if (typeof v === 'number') return Buffer.from(`i${v}e`);
  if (Buffer.isBuffer(v)) return Buffer.concat([Buffer.from(`${v.length}:`), v]);
  if (Array.isArray(v)) return Buffer.concat([Buffer.from('l'), ...v.map(benc), Buffer.from('e')]);
  const keys = Object.keys(v).sort();
  return Buffer.concat([Buffer.from('d'), ...keys.flatMap((k) => [benc(Buffer.from(k)), benc(v[k]!)]), Buffer.from('e')]);
}
function bdec(buf: Buffer, at = 0): { v: B; end: number } {
  const c = String.fromCharCode(buf[at]!);
  if (c === 'i') {
    const e = buf.indexOf('e', at);
    return { v: Number(buf.subarray(at + 1, e).toString()), end: e + 1 };
  }
  if (c === 'l' || c === 'd') {
    const items: B[] = [];
    let p = at + 1;
    while (buf[p] !== 0x65) {
      const r = bdec(buf, p);
      items.push(r.v);
      p = r.end;
    }
    if (c === 'l') return { v: items, end: p + 1 };
    const obj: { [k: string]: B } = {};
    for (let i = 0; i < items.length; i += 2) obj[(items[i] as Buffer).toString('latin1')] = items[i + 1]!;
    return { v: obj, end: p + 1 };
  }
  const colon = buf.indexOf(':', at);
  const n = Number(buf.subarray(at, colon).toString());
  return { v: buf.subarray(colon + 1, colon + 1 + n), end: colon + 1 + n };
}

async function hostileNode(answer: () => { v: Buffer; seq: number; sig: Buffer; k: Buffer }): Promise<{ port: number; close: () => void }> {
  const socket = dgram.createSocket('udp4');
  const id = Buffer.alloc(20, 0x42);
  socket.on('message', (msg, rinfo) => {
    const q = bdec(msg).v as { [k: string]: B };
    if (!q.t || !q.q) return;
    const name = (q.q as Buffer).toString();
    const r: { [k: string]: B } = { id, nodes: Buffer.alloc(0), token: Buffer.from('tok') };
    if (name === 'get') Object.assign(r, answer());
    socket.send(benc({ t: q.t, y: Buffer.from('r'), r }), rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { port: socket.address().port, close: () => socket.close() };
}

function sigData(seq: number, v: Buffer, salt?: Buffer): Buffer {
  const d = benc({ ...(salt ? { salt } : {}), seq, v });
  return d.subarray(1, -1);
}

describe('hostile DHT answers', () => {
  test('an answer with a bad signature is refused with E_SIGNATURE; a good one from the same node is taken', async () => {
    const salt = Buffer.from('list');
    const v = Buffer.from('pointer');
    let sig = Buffer.from(signEd25519(other.seed, sigData(9, v, salt))); // signed by another key
    const evil = await hostileNode(() => ({ v, seq: 9, sig, k: Buffer.from(key.publicKey) }));
    const client = await DhtNode.start({ bootstrap: [{ host: '127.0.0.1', port: evil.port }], host: '127.0.0.1', limits });
    try {
      await assert.rejects(client.getMutable(key.publicKey, salt), (e) => isSourcemeshError(e, 'E_SIGNATURE'));
      // The same answer signed by the key: taken (so the refusal above is the signature's doing).
      sig = Buffer.from(signEd25519(key.seed, sigData(9, v, salt)));
      const got = await client.getMutable(key.publicKey, salt);
      assert.deepEqual(got && { v: got.value.toString(), seq: got.seq }, { v: 'pointer', seq: 9 });
    } finally {
      await client.close();
      evil.close();
    }
  });

  test('a signed value over 1000 bytes is refused with E_FORMAT', async () => {
    let v = Buffer.alloc(1200, 0x61);
    const evil = await hostileNode(() => ({ v, seq: 1, sig: Buffer.from(signEd25519(key.seed, sigData(1, v))), k: Buffer.from(key.publicKey) }));
    const client = await DhtNode.start({ bootstrap: [{ host: '127.0.0.1', port: evil.port }], host: '127.0.0.1', limits });
    try {
      await assert.rejects(client.getMutable(key.publicKey), (e) => isSourcemeshError(e, 'E_FORMAT'));
      v = Buffer.alloc(900, 0x61);
      assert.equal((await client.getMutable(key.publicKey))?.value.length, 900);
    } finally {
      await client.close();
      evil.close();
    }
  });
});
