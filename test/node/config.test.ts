// The node config: every field fuzzed and refused with the field named, defaults all off, docs/CONFIG.md
// made from the schema, init's files and modes, and a kill -9 during saves never leaving a node that
// cannot start.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { isSourcemeshError } from '../../src/errors.ts';
import { configText, defaultConfig, fieldDocs, loadConfig, parseConfig, SERVICE_NAMES, type NodeConfig } from '../../src/node/config.ts';
import { initNode, readTokenDigest, tokenMatches } from '../../src/node/init.ts';
import { planChanges } from '../../src/node/services.ts';
import { CONFIG_DOC, configDoc } from '../../scripts/config-doc.ts';
import { ROOT, runCli, tempDir } from '../helpers/run.ts';

const SEED = 20261203;

function setAt(obj: Record<string, unknown>, dotted: string, value: unknown): void {
  const parts = dotted.split('.');
  let o = obj;
  for (const p of parts.slice(0, -1)) o = o[p] as Record<string, unknown>;
  o[parts.at(-1)!] = value;
}

/** Values the field must refuse, from its kind. */
function badValues(kind: string): fc.Arbitrary<unknown> {
  const notJson = fc.oneof(fc.constant(null), fc.constant({}), fc.array(fc.integer(), { maxLength: 2 }));
  const range = /^whole number from (\d+) to (\d+)$/.exec(kind);
  if (range) {
    const min = Number(range[1]);
    const max = Number(range[2]);
    return fc.oneof(
      fc.integer({ min: -1e9, max: min - 1 }),
      ...(max < Number.MAX_SAFE_INTEGER ? [fc.integer({ min: max + 1, max: max + 1e9 })] : [fc.constant(Number.MAX_SAFE_INTEGER + 2)]),
      fc.double({ min: min + 0.01, max: Math.min(max, 1e9) - 0.01, noNaN: true }).filter((d) => !Number.isInteger(d)),
      fc.string().map((s) => `${s}1`), fc.boolean(), notJson,
    );
  }
  switch (kind) {
    case 'true or false': return fc.oneof(fc.integer(), fc.string(), fc.constant('true'), notJson);
    case 'IPv4 or IPv6 address': return fc.oneof(fc.string({ maxLength: 20 }).filter((s) => !/^[\d.:a-f]*$/i.test(s) || s === ''), fc.constant('localhost'), fc.constant('256.1.1.1'), fc.integer(), notJson);
    case 'path (relative to the node directory)': return fc.oneof(fc.constant(''), fc.string().map((s) => `a\n${s}`), fc.constant('x\u0000y'), fc.string({ minLength: 4097, maxLength: 4200 }), fc.integer(), notJson);
    case 'path or URL': return fc.oneof(fc.string().map((s) => `m\u0007${s}`), fc.integer(), notJson);
    case 'path or empty': return fc.oneof(fc.integer(), fc.boolean(), notJson);
    case 'any-signed or unsigned': return fc.oneof(fc.string().filter((s) => s !== 'any-signed' && s !== 'unsigned'), fc.integer(), notJson);
    case 'list of vkeys': return fc.oneof(fc.string(), fc.array(fc.string({ maxLength: 30 }), { minLength: 1, maxLength: 3 }), fc.array(fc.constant('a+0000000a+AAAA'), { minLength: 65, maxLength: 70 }), fc.integer());
    case 'list of interface names': return fc.oneof(fc.string(), fc.constant(['']), fc.constant(['eth0 ']), fc.constant(['a/b']), fc.constant(['x'.repeat(16)]), fc.array(fc.constant('eth0'), { minLength: 65, maxLength: 70 }), fc.integer());
    case 'name': return fc.oneof(fc.constant(''), fc.string({ minLength: 65, maxLength: 80 }).map((s) => `a${s}`), fc.string().map((s) => ` ${s}`), fc.constant('a/b'), fc.constant('a+b'), fc.integer(), notJson);
    case 'socks5h URL or empty': return fc.oneof(fc.constant('socks5://127.0.0.1:9050'), fc.constant('http://127.0.0.1:9050'), fc.constant('socks5h://127.0.0.1'), fc.constant('socks5h://127.0.0.1:9050/x'), fc.constant('socks5h://:9050'), fc.string().filter((s) => s !== '' && !s.startsWith('socks5h://')), fc.integer(), notJson);
    case 'sourcemesh.node/v1': return fc.oneof(fc.string().filter((s) => s !== 'sourcemesh.node/v1'), fc.integer(), fc.constant(undefined));
    default: throw new Error(`no bad values for the kind ${kind}: add them`);
  }
}

test('defaults: every service off, every field documented with a kind and help, docs/CONFIG.md is what the schema makes', () => {
  const c = defaultConfig('n');
  for (const name of SERVICE_NAMES) assert.equal(c.services[name].enabled, false, name);
  assert.equal(c.panel.host, '127.0.0.1');
  const docs = fieldDocs();
  assert.ok(docs.length >= 25);
  for (const d of docs) assert.ok(d.help.length > 10 && d.kind.length > 0, d.path);
  assert.equal(readFileSync(CONFIG_DOC, 'utf8'), configDoc(), 'docs/CONFIG.md is stale: run npx node scripts/config-doc.ts');
  // A change to one help text is seen: the check can fail.
  assert.notEqual(configDoc().replace('Parallel downloads.', 'Parallel downloads!'), readFileSync(CONFIG_DOC, 'utf8'));
});

test('every field fuzzed: a bad value is refused as E_CONFIG naming that field', () => {
  const base = defaultConfig('n');
  for (const f of fieldDocs()) {
    fc.assert(fc.property(badValues(f.kind), (bad) => {
      const c = structuredClone(base) as unknown as Record<string, unknown>;
      setAt(c, f.path, bad);
      if (bad === undefined && f.default !== undefined) return; // absent: the default, fine
      try {
        parseConfig(JSON.parse(JSON.stringify(c)), 'node.json');
      } catch (err) {
        assert.ok(isSourcemeshError(err, 'E_CONFIG'), String(err));
        // A list's item is named with its index: services.witnessServe.logs.0.
        const named = String(err.details.field);
        assert.ok(named === f.path || named.startsWith(`${f.path}.`), `${f.path} <- ${JSON.stringify(bad)?.slice(0, 80)}: ${err.message}`);
        assert.ok(err.message.includes(f.path), err.message);
        return;
      }
      assert.fail(`${f.path} accepted ${JSON.stringify(bad)?.slice(0, 80)}`);
    }), { seed: SEED, numRuns: 60 });
  }
});

test('an unknown field at any level is refused by name; cross-field checks name the field', () => {
  const base = defaultConfig('n');
  for (const at of ['', 'services', 'services.serve', 'services.mirrorSync', 'services.logServe', 'services.witnessServe', 'panel']) {
    const c = structuredClone(base) as unknown as Record<string, unknown>;
    setAt(c, at ? `${at}.extra` : 'extra', 1);
    assert.throws(() => parseConfig(c, 'x'), (e: unknown) => isSourcemeshError(e, 'E_CONFIG') && e.details.field === (at ? `${at}.extra` : 'extra') && /unknown field/.test(e.message));
  }
  const cases: [string, (c: NodeConfig) => void][] = [
    ['services.mirrorSync.manifest', (c) => (c.services.mirrorSync.enabled = true)],
    ['services.witnessServe.logs', (c) => (c.services.witnessServe.enabled = true)],
    ['panel.host', (c) => (c.panel.host = '0.0.0.0')],
    ['panel.tlsKey', (c) => (c.panel.tlsCert = 'cert.pem')],
    ['services.logServe.port', (c) => { c.services.serve.enabled = true; c.services.logServe.enabled = true; c.services.logServe.port = c.services.serve.port; }],
  ];
  for (const [field, edit] of cases) {
    const c = structuredClone(base);
    edit(c);
    assert.throws(() => parseConfig(c, 'x'), (e: unknown) => isSourcemeshError(e, 'E_CONFIG') && e.details.field === field, field);
  }
  // And the same edits made valid are taken.
  const ok = structuredClone(base);
  ok.services.mirrorSync.enabled = true;
  ok.services.mirrorSync.manifest = 'm.json';
  ok.panel.host = '::1';
  assert.equal(parseConfig(ok, 'x').services.mirrorSync.manifest, 'm.json');
});

test('planChanges: applying the plan to what runs gives what is wanted, and a service whose arguments did not change is untouched', () => {
  const svc = fc.constantFrom(...SERVICE_NAMES);
  const args = fc.array(fc.constantFrom('a', 'b', 'c'), { maxLength: 2 });
  const services = fc.dictionary(svc, args).map((d) => new Map(Object.entries(d)) as Map<(typeof SERVICE_NAMES)[number], string[]>);
  fc.assert(fc.property(services, services, (running, wanted) => {
    const plan = planChanges(running, wanted);
    const after = new Map(running);
    for (const n of [...plan.stop, ...plan.restart]) after.delete(n);
    for (const n of [...plan.restart, ...plan.start]) after.set(n, wanted.get(n)!);
    assert.deepEqual(new Map([...after].sort()), new Map([...wanted].sort()));
    for (const n of [...plan.stop, ...plan.restart, ...plan.start]) assert.ok(JSON.stringify(running.get(n)) !== JSON.stringify(wanted.get(n)), n);
  }), { seed: SEED, numRuns: 500 });
});

test('node init: config with every service off, keys and token digest 0600, a token that matches only itself; init twice refused', async (t) => {
  const dir = await tempDir(t);
  const r = await runCli(['node', 'init', path.join(dir, 'a'), '--name', 'alpha', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  const c = await loadConfig(path.join(dir, 'a'));
  for (const name of SERVICE_NAMES) assert.equal(c.services[name].enabled, false);
  for (const f of ['node.json', 'panel.token', 'keys/node.key', 'keys/log.key', 'keys/witness.key']) {
    assert.equal(statSync(path.join(dir, 'a', f)).mode & 0o777, 0o600, f);
  }
  const digest = await readTokenDigest(path.join(dir, 'a'));
  assert.ok(tokenMatches(out.token, digest));
  assert.ok(!tokenMatches(out.token.slice(0, -1), digest));
  assert.ok(!tokenMatches('', digest));
  assert.ok(!(await readFile(path.join(dir, 'a', 'panel.token'), 'utf8')).includes(out.token), 'the token itself is not stored');
  const b = await initNode(path.join(dir, 'b'), { name: 'alpha' });
  assert.notEqual(b.nodeVkey, out.nodeKey, 'a second node has its own identity');
  const again = await runCli(['node', 'init', path.join(dir, 'a')]);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /is a node already.*\[E_INPUT\]/);
  // The panel off loopback without TLS: refused before anything starts.
  const open = await runCli(['node', 'run', path.join(dir, 'a'), '--panel-listen', '0.0.0.0:0']);
  assert.equal(open.code, 2);
  assert.match(open.stderr, /not loopback.*TLS.*\[E_USAGE\]/);
  assert.equal(open.stdout, '', 'nothing started');
  // A bad config is refused by `node run` before anything starts, with the field named.
  await writeFile(path.join(dir, 'a', 'node.json'), configText(c).replace('"port": 8080', '"port": "8080"'));
  const run = await runCli(['node', 'run', path.join(dir, 'a')]);
  assert.equal(run.code, 2);
  assert.match(run.stderr, /services\.serve\.port: .*\[E_CONFIG\]/);
});

test('kill -9 during config saves (the panel\'s way of saving) never leaves a node that cannot start', async (t) => {
  const dir = await tempDir(t);
  await initNode(dir, { name: 'k9' });
  const saver = path.join(ROOT, 'test/node/config-saver.ts');
  for (let round = 0; round < 25; round++) {
    const child = spawn(process.execPath, [saver, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    // Wait until it has saved a number of times (it says so), then kill it in the middle of its loop.
    let saved = 0;
    const want = 5 + (round % 7) * 9;
    await new Promise<void>((resolve, reject) => {
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (d: string) => {
        saved += d.split('\n').filter((l) => l === 'saved').length;
        if (saved >= want && child.exitCode === null) {
          child.kill('SIGKILL');
          resolve();
        }
      });
      child.once('exit', (code) => (saved >= want ? resolve() : reject(new Error(`saver exited with ${code} after ${saved} saves`))));
    });
    await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(undefined) : child.once('exit', r)));
    const c = await loadConfig(dir);
    assert.ok([8080, 18080].includes(c.services.serve.port), `round ${round}: a whole config (port ${c.services.serve.port})`);
  }
});
