// `seed --announce` and `witness serve --announce` across two network namespaces (test/helpers/netns.ts,
// as root): the real CLI announces in one and `discover` in the other finds each node with its role and
// keeps it only when it signs the challenge with the key it announces (a seed has no HTTP inventory: its
// challenge is answered on a port of its own, the SRV port, and TXT bt= names its peer wire). A hand-made
// announcement borrowing the witness's key, pointing at the seed's responder, is refused.
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import type { DiscoverResult } from '../../src/discovery/discover.ts';
import { formatSignerKey, formatVerifierKey, KEY_TYPE_COSIGNATURE_V1, KEY_TYPE_ED25519, signerKeyFromSeed } from '../../src/trust/note.ts';
import { canMakeNamespaces, makeNetwork } from '../helpers/netns.ts';
import { ROOT, tempDir } from '../helpers/run.ts';

const skip = canMakeNamespaces();
const CLI = path.join(ROOT, 'src/cli/main.ts');
const SENDER = path.join(ROOT, 'test/discovery/mdns-sender.ts');

describe('seed and witness announce themselves', { skip }, () => {
  test('seed --announce (role seed, bt=) and witness serve --announce (role witness): found from the other namespace and checked by the challenge; a borrowed key refused', async (t) => {
    const dir = await tempDir(t);
    const link = makeNetwork(t, ['a', 'b']);
    const { a, b } = link.nodes;
    const seedKey = signerKeyFromSeed('seed-node', KEY_TYPE_ED25519, Buffer.alloc(32, 31));
    const witnessKey = signerKeyFromSeed('witness-node', KEY_TYPE_COSIGNATURE_V1, Buffer.alloc(32, 32));
    const logKey = signerKeyFromSeed('log.example/roles', KEY_TYPE_ED25519, Buffer.alloc(32, 33));
    const root = path.join(dir, 'root');
    await mkdir(root, { recursive: true });
    await writeFile(path.join(root, 'hello-1.0.tar.gz'), 'hello\n');
    for (const [file, k] of [['seed.key', seedKey], ['witness.key', witnessKey]] as const) await writeFile(path.join(dir, file), formatSignerKey(k) + '\n', { mode: 0o600 });

    const seed = link.spawn(a, process.execPath, [CLI, 'seed', '--root', root, '--listen', `${a.address}:6881`, '--key', path.join(dir, 'seed.key'), '--announce']);
    const challengePort = Number((await seed.waitStderr(/announcing "seed-node [0-9a-f]{8}" on .*\(challenge on port (\d+)\)/))[1]);
    const witness = link.spawn(a, process.execPath, [CLI, 'witness', 'serve', '--state', path.join(dir, 'w'), '--key', path.join(dir, 'witness.key'), '--listen', `${a.address}:7380`, '--log', formatVerifierKey(logKey), '--announce']);
    await witness.waitStderr(/"msg":"announcing"/);

    // The witness's key announced at the seed's responder, which signs with the seed's key.
    const inst = 'borrowed._sourcemesh._tcp.local';
    const burst = [
      { name: '_sourcemesh._tcp.local', type: 'PTR', data: inst },
      { name: inst, type: 'SRV', data: { port: challengePort, target: 'borrowed.local' } },
      { name: inst, type: 'TXT', data: ['txtvers=1', `key=${formatVerifierKey(witnessKey)}`, 'roles=witness'] },
      { name: 'borrowed.local', type: 'A', data: a.address },
    ];
    const sender = link.spawn(a, process.execPath, [SENDER, JSON.stringify({ source: a.address, burst })]);
    await sender.waitStderr(/sent 1/);

    const run = await link.run(b, ['discover', '--timeout', '2', '--json'], { timeoutMs: 60_000 });
    assert.equal(run.code, 0, run.stderr);
    const r = JSON.parse(run.stdout) as DiscoverResult;
    const byRole = new Map(r.nodes.map((n) => [n.roles.join(','), n]));
    assert.deepEqual([...byRole.keys()].sort(), ['seed', 'witness'], JSON.stringify(r));
    const s = byRole.get('seed')!;
    assert.equal(s.key, formatVerifierKey(seedKey));
    assert.equal(s.url, `http://${a.address}:${challengePort}`);
    assert.equal(s.bittorrent, `${a.address}:6881`);
    assert.deepEqual(s.checked, { challenge: { address: `${a.address}:${challengePort}` } });
    const w = byRole.get('witness')!;
    assert.equal(w.key, formatVerifierKey(witnessKey));
    assert.equal(w.url, `http://${a.address}:7380`);
    assert.deepEqual(w.checked, { challenge: { address: `${a.address}:7380` } });
    assert.ok(s.ms < 2000 && w.ms < 2000, `found after ${s.ms} and ${w.ms} ms`);
    const borrowed = r.refused.find((x) => x.instance === 'borrowed');
    assert.match(borrowed?.reason ?? '', /not signed by the announced key/, JSON.stringify(r.refused));

    // The human table names the check and the peer wire.
    const human = await link.run(b, ['discover', '--timeout', '1']);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, new RegExp(`challenge, peer wire ${a.address.replaceAll('.', '\\.')}:6881`));
  });

  test('seed --announce on a loopback listen address is refused with a one-line usage error', async (t) => {
    const dir = await tempDir(t);
    const link = makeNetwork(t, ['a']);
    const root = path.join(dir, 'root');
    await mkdir(root, { recursive: true });
    const r = await link.run(link.nodes.a, ['seed', '--root', root, '--listen', '127.0.0.1:6881', '--announce']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--announce: the node listens on 127\.0\.0\.1, a loopback address nobody else can reach .*\[E_USAGE\]\n$/);
  });
});
