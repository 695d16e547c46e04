// `seed --republish`: a mirror-list pointer outlives the DHT nodes that first stored it. A private DHT of
// 20 nodes on loopback (this process) takes `mirrors publish --dht`; a real `seed --republish` joins it;
// then "the DHT forgets": every one of those nodes goes, and 20 new ones join through the seed's DHT node.
// After the seed's next round has put the item to them, the seed goes too, and `mirrors get` through the
// new nodes still finds the pointer: nobody but the seed's re-put can have given it to them. The control
// runs the same with a schedule too long to come round (only the first put, to the old nodes): the
// pointer is gone (E_NO_SOURCE). The pure choice of what to put again is property-tested.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { newerItem, type HeldItem } from '../../src/discovery/republish.ts';
import { limitsWith } from '../../src/limits.ts';
import { formatSignerKey, KEY_TYPE_ED25519, signerKeyFromSeed } from '../../src/trust/note.ts';
import { startDhtSwarm } from '../helpers/dht.ts';
import { startOrigin } from '../helpers/origin.ts';
import { CLI, ROOT, runCli, tempDir, waitFor } from '../helpers/run.ts';

const limits = limitsWith({ dhtQueryTimeoutMs: 15_000 });
const publisher = signerKeyFromSeed('lists.example', KEY_TYPE_ED25519, Buffer.alloc(32, 41));
const ADDRESS = `dht:${Buffer.from(publisher.publicKey).toString('hex')}?salt=live-bootstrap`;

const list = JSON.stringify({ format: 'sourcemesh.mirrors/v1', mirrors: [{ url: 'https://mirror-one.example/distfiles' }] }, null, 2) + '\n';

/** The scenario above; resolves with `mirrors get`'s result through the new nodes. */
async function scenario(t: { after(fn: () => Promise<void> | void): void; diagnostic(s: string): void }, every: string, waitForRePut: boolean) {
  const dir = await tempDir(t);
  const origin = await startOrigin({});
  t.after(() => origin.close());
  origin.routes.set('/live-bootstrap.json', { body: Buffer.from(list) });
  await writeFile(path.join(dir, 'live-bootstrap.json'), list);
  await writeFile(path.join(dir, 'publisher.key'), formatSignerKey(publisher) + '\n', { mode: 0o600 });
  let old = await startDhtSwarm(20, limits);
  t.after(() => Promise.all(old.map((n) => n.close())).then(() => undefined));
  const pub = await runCli(['mirrors', 'publish', path.join(dir, 'live-bootstrap.json'), '--key', path.join(dir, 'publisher.key'), '--dht', '--url', `${origin.url}/live-bootstrap.json`, '--dht-bootstrap', `127.0.0.1:${old[3]!.address().port}`, '--store', path.join(dir, 'pub'), '--json']);
  assert.equal(pub.code, 0, pub.stderr);
  const seq = JSON.parse(pub.stdout).seq as number;

  const root = path.join(dir, 'root');
  await mkdir(root);
  await writeFile(path.join(root, 'hello-1.0.tar.gz'), 'hello\n');
  const seed = spawn(process.execPath, [CLI, 'seed', '--root', root, '--listen', '127.0.0.1:0', '--republish', ADDRESS, '--republish-every', every, '--dht-bootstrap', `127.0.0.1:${old[9]!.address().port}`], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  seed.stdout.on('data', (d) => (out += d));
  seed.stderr.on('data', (d) => (err += d));
  const ended = new Promise((resolve) => seed.once('close', resolve));
  t.after(async () => {
    seed.kill('SIGKILL');
    await ended;
  });
  await waitFor('the seed\'s first put', () => /republishing dht:|not republishing/.test(err) || seed.exitCode !== null, { timeoutMs: 60_000 });
  const m = /republishing \S+ \(seq (\d+), held already by the DHT nodes closest to it\) every .* \(DHT node on udp port (\d+)\)/.exec(err);
  assert.ok(m, err);
  assert.equal(Number(m[1]), seq);

  // The DHT forgets: its nodes go; new ones join through the seed's DHT node.
  await Promise.all(old.map((n) => n.close()));
  old = [];
  const fresh = await startDhtSwarm(20, limits, [{ host: '127.0.0.1', port: Number(m[2]) }]);
  t.after(() => Promise.all(fresh.map((n) => n.close())).then(() => undefined));
  if (waitForRePut) {
    // A round that started after the new nodes were up, and reached them.
    const mark = out.length;
    await waitFor('a re-put to the new nodes', () => out.slice(mark).split('\n').some((l) => l.includes('mirror-list pointer put again') && JSON.parse(l).nodes >= 10), { timeoutMs: 60_000 });
  }
  seed.kill('SIGTERM');
  await ended;
  const get = await runCli(['mirrors', 'get', ADDRESS, '--dht-bootstrap', `127.0.0.1:${fresh[11]!.address().port}`, '--store', path.join(dir, 'client'), '--json']);
  return { get, seq };
}

describe('seed --republish keeps a mirror-list pointer in the DHT', () => {
  test('after every node that stored it is gone, the new nodes have it from the seed\'s re-put', async (t) => {
    const { get, seq } = await scenario(t, '1s', true);
    assert.equal(get.code, 0, get.stderr);
    const r = JSON.parse(get.stdout);
    assert.equal(r.seq, seq);
    assert.deepEqual(r.mirrors.map((x: { url: string }) => x.url), ['https://mirror-one.example/distfiles']);
  });

  test('control: with no re-put after the DHT forgot, the pointer is gone (E_NO_SOURCE)', async (t) => {
    const { get } = await scenario(t, '2h', false);
    assert.notEqual(get.code, 0, get.stdout);
    assert.match(get.stderr, /no DHT node has this pointer.*\[E_NO_SOURCE\]/);
  });

  test('--republish with a malformed address or schedule is refused before anything starts', async (t) => {
    const dir = await tempDir(t);
    for (const [flags, re] of [
      [['--republish', 'dht:abc'], /--republish dht:abc: expected dht:HEXKEY.*\[E_USAGE\]/],
      [['--republish', ADDRESS, '--republish-every', '3h'], /--republish-every 3h: must be from 1s to 2h.*\[E_USAGE\]/],
    ] as const) {
      const r = await runCli(['seed', '--root', dir, '--listen', '127.0.0.1:0', ...flags]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, re);
    }
  });
});

test('what is put again: the newest seq seen, never an older one the DHT replays', () => {
  const item = fc.record({ seq: fc.nat(), value: fc.uint8Array({ maxLength: 8 }).map((u) => Buffer.from(u)), sig: fc.constant(Buffer.alloc(64)) });
  fc.assert(fc.property(fc.array(fc.option(item, { nil: undefined }), { maxLength: 30 }), (answers) => {
    let held: HeldItem | undefined;
    let best = -1;
    for (const found of answers) {
      held = newerItem(held, found);
      if (found) best = Math.max(best, found.seq);
      assert.equal(held?.seq ?? -1, best); // a lower seq, or nothing found, never replaces what is held
    }
  }));
});
