// The node config's witness serves Roughtime: services.witnessServe.roughtime (UDP) and roughtimeTcp (TCP)
// become `witness serve --roughtime/--roughtime-tcp` (src/node/services.ts), and that witness answers signed
// time on both, measured by the client over each transport. Roughtime over TCP without UDP, or on a TCP port
// another service holds, is refused naming the field.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { isSourcemeshError } from '../../src/errors.ts';
import { defaultConfig, parseConfig } from '../../src/node/config.ts';
import { serviceArgs } from '../../src/node/services.ts';
import { measure } from '../../src/time/client.ts';
import { tempDir } from '../helpers/run.ts';
import { ServerProcess, writeKey } from '../trust/log/servers.ts';

test('node config: witnessServe.roughtime and roughtimeTcp run a witness answering Roughtime over UDP and TCP', async (t) => {
  const dir = await tempDir(t);
  const key = await writeKey(dir, 'w.node-witness.time.test', 'cosignature');
  const log = await writeKey(dir, 'log.node-witness.time.test');
  const c = defaultConfig('n');
  Object.assign(c.services.witnessServe, { enabled: true, port: 0, key: key.file, logs: [log.vkey], roughtime: true, roughtimePort: 0, roughtimeTcp: true, roughtimeTcpPort: 0 });
  const config = parseConfig(JSON.parse(JSON.stringify(c)), 'node.json');
  const args = serviceArgs(config, dir, 'witnessServe')!;
  assert.deepEqual(args.slice(-4), ['--roughtime', '127.0.0.1:0', '--roughtime-tcp', '127.0.0.1:0']);
  const w = await ServerProcess.start(args);
  t.after(() => w.stop());
  const serving = await w.waitFor((l) => l.msg === 'roughtime serving');
  const udp = String(serving.address);
  const tcp = String(serving.tcp);
  assert.match(udp, /^127\.0\.0\.1:\d+$/);
  assert.match(tcp, /^127\.0\.0\.1:\d+$/);
  for (const protocol of ['udp', 'tcp'] as const) {
    const m = await measure([{ name: key.key.name, address: protocol === 'udp' ? udp : tcp, publicKey: key.key.publicKey, protocol }], { rounds: 1 });
    assert.deepEqual(m.failed, [], protocol);
    assert.equal(m.chain.length, 1, protocol);
  }
  // Off by default: no Roughtime flags.
  const plain = defaultConfig('n');
  Object.assign(plain.services.witnessServe, { enabled: true, logs: [log.vkey] });
  assert.doesNotMatch(serviceArgs(parseConfig(JSON.parse(JSON.stringify(plain)), 'node.json'), dir, 'witnessServe')!.join(' '), /roughtime/);
});

test('node config: Roughtime over TCP without UDP, or on a port another service holds, is refused naming the field', () => {
  const c = defaultConfig('n');
  Object.assign(c.services.witnessServe, { enabled: true, logs: ['log.example+0a1b2c3d+AQIDBA=='], roughtimeTcp: true, roughtimeTcpPort: 9000 });
  assert.throws(() => parseConfig(JSON.parse(JSON.stringify(c)), 'node.json'), (e) => isSourcemeshError(e, 'E_CONFIG') && /services\.witnessServe\.roughtimeTcp: Roughtime over TCP needs roughtime/.test((e as Error).message));
  c.services.witnessServe.roughtime = true;
  c.services.serve.enabled = true;
  c.services.serve.port = 9000;
  assert.throws(() => parseConfig(JSON.parse(JSON.stringify(c)), 'node.json'), (e) => isSourcemeshError(e, 'E_CONFIG') && /services\.witnessServe\.roughtimeTcpPort: port 9000 is taken by services\.serve/.test((e as Error).message));
  c.services.serve.port = 9001;
  assert.equal(parseConfig(JSON.parse(JSON.stringify(c)), 'node.json').services.witnessServe.roughtimeTcpPort, 9000);
});
