// `sourcemesh doctor` through the CLI: a healthy node passes (exit 0), and each check fails when its fault
// is injected (exit 3): a corrupted store object, a key file 0644, a full disk (a small tmpfs, mounted as
// root), a stopped service, unreachable witnesses. An unreadable policy means doctor could not run (exit 1).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { buildInventory, writeInventory } from '../../src/mirror/inventory.ts';
import { startRoughtimeServer } from '../../src/time/server.ts';
import { runCli, tempDir } from '../helpers/run.ts';
import { writeKey } from '../trust/log/servers.ts';

interface Check { check: string; status: string; detail: string; hint?: string }

async function doctor(args: string[]): Promise<{ code: number | null; checks: Check[]; stderr: string }> {
  const r = await runCli(['doctor', '--json', ...args]);
  return { code: r.code, checks: r.stdout ? (JSON.parse(r.stdout) as { checks: Check[] }).checks : [], stderr: r.stderr };
}
const status = (checks: Check[], name: string) => checks.find((c) => c.check === name)?.status;

async function storeWith(dir: string, n: number): Promise<string[]> {
  const files: string[] = [];
  for (let i = 0; i < n; i++) {
    const body = randomBytes(1000 + i);
    const hex = createHash('sha256').update(body).digest('hex');
    const d = path.join(dir, 'objects', 'sha256', hex.slice(0, 2));
    await mkdir(d, { recursive: true });
    await writeFile(path.join(d, hex), body);
    files.push(path.join(d, hex));
  }
  return files;
}

test('doctor: a healthy node passes; each injected fault fails its check', async (t) => {
  const dir = await tempDir(t);
  const store = path.join(dir, 'store');
  const objects = await storeWith(store, 5);
  const node = path.join(dir, 'node');
  await mkdir(path.join(node, 'keys'), { recursive: true });
  const nodeKey = await writeKey(path.join(node, 'keys'), 'node');
  assert.equal(nodeKey.file, path.join(node, 'keys', 'node.key'));
  const service = net.createServer((s) => s.end());
  await new Promise<void>((resolve) => service.listen(0, '127.0.0.1', () => resolve()));
  t.after(() => service.close());
  const port = (service.address() as net.AddressInfo).port;
  await writeFile(path.join(node, 'node.json'), JSON.stringify({ format: 'sourcemesh.node/v1', name: 'doctor-test', services: { serve: { enabled: true, host: '127.0.0.1', port, root: 'mirror' } } }));
  // A synced mirror root: two files and the inventory signed by its node key (as mirror sync leaves it).
  const root = path.join(node, 'mirror');
  await mkdir(path.join(root, '.sourcemesh'), { recursive: true });
  const rootKey = await writeKey(path.join(root, '.sourcemesh'), 'node');
  await writeFile(path.join(root, '.sourcemesh', 'node.pub'), `${rootKey.vkey}\n`); // where mirror sync keeps the vkey
  const rootFiles = [{ name: 'a.tar.gz', body: randomBytes(3000) }, { name: 'b.tar.gz', body: randomBytes(5000) }];
  for (const f of rootFiles) await writeFile(path.join(root, f.name), f.body);
  await writeInventory(root, buildInventory(rootFiles.map((f) => ({ name: f.name, size: f.body.length, sha256: createHash('sha256').update(f.body).digest('hex') })), rootKey.key, new Date()));

  // Witnesses for the clock: three Roughtime servers and a policy naming them, quorum 2.
  const wkeys = await Promise.all([1, 2, 3].map((i) => writeKey(dir, `w${i}.doctor.test`, 'cosignature')));
  const servers = await Promise.all(wkeys.map((k) => startRoughtimeServer({ key: k.key, host: '127.0.0.1', port: 0 })));
  t.after(() => Promise.all(servers.map((s) => s.close())));
  const log = await writeKey(dir, 'log.doctor.test');
  const policy = path.join(dir, 'policy.json');
  const writePolicy = (addresses: string[]) => writeFile(policy, JSON.stringify({
    format: 'sourcemesh.policy/v1', log: { vkey: log.vkey }, witnesses: { quorum: 2, vkeys: wkeys.map((k) => k.vkey) },
    release: { threshold: 1, vkeys: [log.vkey] }, maxCheckpointAgeSeconds: 3600,
    time: { roughtime: wkeys.map((k, i) => ({ witness: k.key.name, address: addresses[i] })) },
  }));
  await writePolicy(servers.map((s) => s.address));
  const args = ['--node', node, '--store', store, '--trust-policy', policy, '--state', path.join(dir, 'state'), '--min-free', '1'];

  let r = await doctor(args);
  assert.equal(r.code, 0, JSON.stringify(r.checks, null, 2) + r.stderr);
  for (const name of ['node', 'clock', 'disk store', 'store sample', 'config', 'disk mirror root', 'mirror root sample', 'service serve', `key ${nodeKey.file}`, `key ${rootKey.file}`]) assert.equal(status(r.checks, name), 'pass', name);
  const human = await runCli(['doctor', ...args]);
  assert.equal(human.code, 0);
  assert.match(human.stdout, /^pass  node: Node\.js /);

  // A corrupted store object (one byte changed; --sample covers all five).
  const victim = objects[2]!;
  const orig = execFileSync('cat', [victim]);
  const bad = Buffer.from(orig);
  bad[10] ^= 1;
  await writeFile(victim, bad);
  r = await doctor([...args, '--sample', '100']);
  assert.equal(r.code, 3);
  assert.equal(status(r.checks, 'store sample'), 'fail');
  assert.match(r.checks.find((c) => c.check === 'store sample')!.detail, new RegExp(`1 of 5 sampled objects are corrupt: ${path.basename(victim)}|${victim}`));
  await writeFile(victim, orig);

  // A mirror root file changed behind the inventory's back (same size).
  const changed = Buffer.from(rootFiles[1]!.body);
  changed[100] ^= 1;
  await writeFile(path.join(root, 'b.tar.gz'), changed);
  r = await doctor(args);
  assert.equal(r.code, 3);
  assert.equal(status(r.checks, 'mirror root sample'), 'fail');
  assert.match(r.checks.find((c) => c.check === 'mirror root sample')!.detail, /1 of 2 sampled files differ from the signed inventory: b\.tar\.gz \(its bytes hash/);
  await writeFile(path.join(root, 'b.tar.gz'), rootFiles[1]!.body);

  // A key readable by others.
  await chmod(nodeKey.file, 0o644);
  r = await doctor(args);
  assert.equal(r.code, 3);
  const key = r.checks.find((c) => c.check === `key ${nodeKey.file}`)!;
  assert.equal(key.status, 'fail');
  assert.match(key.detail, /mode 0644/);
  assert.match(key.hint!, /chmod 600/);
  await chmod(nodeKey.file, 0o600);

  // A stopped service.
  await new Promise<void>((resolve) => service.close(() => resolve()));
  r = await doctor(args);
  assert.equal(r.code, 3);
  assert.equal(status(r.checks, 'service serve'), 'fail');
  assert.match(r.checks.find((c) => c.check === 'service serve')!.detail, /ECONNREFUSED/);
  await new Promise<void>((resolve) => service.listen(port, '127.0.0.1', () => resolve()));

  // One witness unreachable: a warning (the quorum holds); two: the clock check fails.
  const dead = async () => {
    const s = net.createServer();
    await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', () => resolve()));
    const p = (s.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => s.close(() => resolve()));
    return `127.0.0.1:${p}`; // a UDP port nothing listens on (likely; the answer is then ICMP or silence)
  };
  await writePolicy([servers[0]!.address, servers[1]!.address, await dead()]);
  r = await doctor(args);
  assert.equal(r.code, 0, JSON.stringify(r.checks));
  assert.equal(status(r.checks, 'witness w3.doctor.test'), 'warn');
  await writePolicy([servers[0]!.address, await dead(), await dead()]);
  r = await doctor(args);
  assert.equal(r.code, 3);
  assert.equal(status(r.checks, 'clock'), 'fail');
  assert.match(r.checks.find((c) => c.check === 'clock')!.detail, /no signed time/);
  await writePolicy(servers.map((s) => s.address));

  // An unreadable policy: doctor itself could not run.
  const broken = await runCli(['doctor', '--trust-policy', path.join(dir, 'missing.json')]);
  assert.equal(broken.code, 1);
  assert.match(broken.stderr, /missing\.json/);
});

test('doctor: a full disk on a small tmpfs fails the disk check', { skip: process.getuid?.() !== 0 ? 'mounting a tmpfs needs root' : false }, async (t) => {
  const mnt = await mkdtemp(path.join(os.tmpdir(), 'sourcemesh-doctor-tmpfs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt]);
  t.after(async () => {
    execFileSync('umount', [mnt]);
    await rm(mnt, { recursive: true });
  });
  await storeWith(mnt, 1);
  let r = await doctor(['--store', mnt, '--min-free', '1']);
  assert.equal(status(r.checks, 'disk store'), 'pass', JSON.stringify(r.checks));
  try {
    execFileSync('dd', ['if=/dev/zero', `of=${path.join(mnt, 'fill')}`, 'bs=64k'], { stdio: 'ignore' });
  } catch {
    // dd stops with ENOSPC: the file system is full
  }
  r = await doctor(['--store', mnt, '--min-free', '1']);
  assert.equal(r.code, 3);
  const disk = r.checks.find((c) => c.check === 'disk store')!;
  assert.equal(disk.status, 'fail');
  assert.match(disk.detail, /0\.0 MiB free of 4\.0 MiB, under the 1\.0 MiB needed/);
});
