// Issue 12: who may write to `log serve`. Every abuse the issue lists, over real HTTP on loopback against
// the CLI as an operator runs it, each checked to leave the tree as it was: unsigned bytes, a valid
// signature by a key not admitted, a bad signature by an admitted one, a release below its project's
// current key set (and by keys a logged rotation retired), a rotation that does not follow the log's
// chain, a replay (answered with the index it has, not logged twice), an oversized statement, and a burst
// from one key over many addresses (held to the key's quota, which survives kill -9). A log started
// --admit-unsigned takes the same junk: the checks here see a log that accepts.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, test } from 'node:test';
import { Agent, request } from 'undici';
import {
  createSigner, createVerifier, formatSignatureLine, formatVerifierKey, KEY_TYPE_ED25519, parseNote, parseVerifierKey, signerKeyFromSeed, signNote,
} from '../../src/trust/note.ts';
import { genesisPosition, keySetFrom, makeRotationStatement, stepForward } from '../../src/trust/rotation.ts';
import { formatReleaseStatement } from '../../src/trust/release.ts';
import { tempDir } from '../helpers/run.ts';
import { dsseEntry, http, type KeyFiles, readLog, releaseEntry, ServerProcess, writeKey } from '../trust/log/servers.ts';

const running = new Set<ServerProcess>();
after(() => Promise.all([...running].map((s) => s.stop())));

async function startLog(root: string, key: KeyFiles, flags: string[]): Promise<ServerProcess> {
  const s = await ServerProcess.start(['log', 'serve', '--root', root, '--key', key.file, '--listen', '127.0.0.1:0', '--checkpoint-interval', '100ms', ...flags]);
  running.add(s);
  return s;
}

async function stop(s: ServerProcess, how: 'kill9' | 'term' = 'term'): Promise<void> {
  if (how === 'kill9') await s.kill9();
  else await s.stop();
  running.delete(s);
}

/** The log's side of a submission: status, body, Retry-After. */
async function post(url: string, body: string | Uint8Array, headers: Record<string, string> = {}) {
  const a = await http('POST', `${url}/add`, body, headers);
  return { status: a.status, text: a.text.trim(), retryAfter: a.headers['retry-after'] as string | undefined };
}

/** Submissions against one log, keeping count of what it holds: each accepted entry takes the next index. */
class Ledger {
  readonly logged: Buffer[] = [];
  url: string;

  constructor(url: string) {
    this.url = url;
  }

  async accept(body: string, what: string, headers: Record<string, string> = {}): Promise<number> {
    const a = await post(this.url, body, headers);
    assert.equal(a.status, 200, `${what}: ${a.status} ${a.text}`);
    const index = JSON.parse(a.text).index as number;
    // The next index: nothing refused before it reached the tree.
    assert.equal(index, this.logged.length, `${what}: index ${index}, but the log held ${this.logged.length} entries`);
    this.logged.push(Buffer.from(body));
    return index;
  }

  async refuse(body: string | Uint8Array, status: number, reason: RegExp, what: string, headers: Record<string, string> = {}): Promise<void> {
    const a = await post(this.url, body, headers);
    assert.equal(a.status, status, `${what}: ${a.status} ${a.text}`);
    assert.match(a.text, reason, what);
    assert.ok(!a.text.includes('\n'), `${what}: the reason is one line`);
  }

  /** The log over HTTP holds exactly the accepted entries, in order. */
  async verify(logKey: KeyFiles): Promise<void> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const cp = await http('GET', `${this.url}/checkpoint`);
      if (cp.status === 200 && Number(cp.text.split('\n')[1]) === this.logged.length) break;
      if (Date.now() > deadline) throw new Error(`no checkpoint of ${this.logged.length} entries: ${cp.status} ${cp.text.slice(0, 80)}`);
      await new Promise((r) => setTimeout(r, 25));
    }
    const client = await readLog(this.url, [createVerifier(parseVerifierKey(logKey.vkey))]);
    assert.deepEqual(client.entries, this.logged);
  }
}

const release = (keys: KeyFiles[], version: string, name = 'tcc') => releaseEntry(keys.map((k) => k.key), version, name);

test('every abuse is refused before it touches the tree, with its status and a one-line reason; a rotation in the log retires the old keys, also after a restart', async (t) => {
  const dir = await tempDir(t);
  const logKey = await writeKey(dir, 'log.adversarial/admission');
  const [p1, p2, p3, builder, stranger, n1, n2, n3] = await Promise.all(['p1', 'p2', 'p3', 'builder', 'stranger', 'n1', 'n2', 'n3'].map((n) => writeKey(dir, `${n}.admission.test`)));
  const admit = path.join(dir, 'admit.json');
  await writeFile(admit, JSON.stringify({
    format: 'sourcemesh.log-admission/v1',
    keys: [builder!.vkey],
    projects: [{ name: 'tcc', threshold: 2, keys: [p1!.vkey, p2!.vkey, p3!.vkey] }],
  }));
  const root = path.join(dir, 'log');
  let log = await startLog(root, logKey, ['--admit-file', admit]);
  const l = new Ledger(log.url);

  const first = release([p1!, p2!], '1.0');
  await l.accept(first, 'a release signed by 2 of the project\'s 3 genesis keys');
  await l.refuse('junk', 400, /not a statement this log takes/, 'unsigned bytes');
  await l.refuse(formatReleaseStatement({ kind: 'manifest', name: 'tcc', version: '1.1', sha256: '0'.repeat(64) }), 400, /no blank line before its signatures/, 'a release statement without signatures');
  await l.refuse(release([p1!], '1.1'), 403, /signed by 1 of the 3 keys of project tcc's current key set \(0\); 2 are required/, 'below the threshold');
  await l.refuse(release([builder!], '1.1'), 403, /signed by 0 of the 3 keys .*builder\.admission\.test/, 'an admitted key is no project key');
  await l.refuse(release([stranger!], '1', 'other'), 403, /not signed by a key this log admits \(its signatures name stranger\.admission\.test\)/, 'a valid signature by a key not admitted');
  const tampered = release([builder!], '1', 'other').replace('version 1', 'version 2');
  await l.refuse(tampered, 400, /signature by builder\.admission\.test .* does not verify/, 'a bad signature by an admitted key');
  await l.accept(release([builder!], '1', 'other'), 'another project, by an admitted key');
  // A replay, byte for byte: the index it has, and the tree does not grow.
  for (let i = 0; i < 3; i++) assert.deepEqual(await post(l.url, first), { status: 200, text: '{"index":0}', retryAfter: undefined });
  // Oversized: more than an entry bundle can hold, declared or not; a signed attestation that large too.
  await l.refuse(Buffer.alloc(65_536, 0x61), 413, /at most 65535 bytes/, 'an oversized body');
  await l.refuse(dsseEntry([builder!.key], 'big', 70_000), 413, /at most 65535 bytes/, 'an oversized signed statement');
  await l.accept(dsseEntry([builder!.key], 'tcc-0.9.27.tar.bz2'), 'an attestation by an admitted key');
  await l.refuse(dsseEntry([stranger!.key], 'tcc-0.9.27.tar.bz2'), 403, /not signed by a key this log admits/, 'an attestation by a key not admitted');

  // The project rotates its keys: the statement, signed by 2 of the genesis keys, goes into the log.
  const genesis = keySetFrom([p1!.vkey, p2!.vkey, p3!.vkey], 2, 'genesis');
  const rotation = makeRotationStatement(genesisPosition(genesis), keySetFrom([n1!.vkey, n2!.vkey, n3!.vkey], 2, 'next'), [createSigner(p1!.key), createSigner(p2!.key)]);
  const rotatedAt = stepForward(genesisPosition(genesis), { statement: rotation });
  await l.accept(rotation, 'rotation statement 1');
  const fork = makeRotationStatement(genesisPosition(genesis), keySetFrom([stranger!.vkey], 1, 'fork'), [createSigner(p1!.key), createSigner(p2!.key)]);
  await l.refuse(fork, 403, /rotation statement 1 .*does not follow key set 1 of project tcc/, 'a second statement 1: a fork of the chain');
  const skip = makeRotationStatement({ ...rotatedAt, sequence: 2 }, keySetFrom([stranger!.vkey], 1, 'skip'), [createSigner(n1!.key), createSigner(n2!.key)]);
  await l.refuse(skip, 403, /does not follow key set 1/, 'a rotation statement 3 with no 2');
  await l.refuse(release([p1!, p2!], '2.0'), 403, /current key set \(1\)/, 'a release by the retired keys');
  await l.accept(release([n1!, n3!], '2.0'), 'a release by the new keys');

  // A restart: the log finds the project's chain where it was, in its own entries.
  await stop(log);
  log = await startLog(root, logKey, ['--admit-file', admit]);
  l.url = log.url;
  const serving = await log.waitFor((line) => line.msg === 'log serving');
  assert.deepEqual(serving.projects, [{ name: 'tcc', keySet: 1 }]);
  await l.refuse(release([p2!, p3!], '3.0'), 403, /current key set \(1\)/, 'retired keys, after a restart');
  await l.accept(release([n2!, n3!], '3.0'), 'the new keys, after a restart');
  assert.equal((await post(l.url, first)).text, '{"index":0}', 'a replay after a restart');
  await l.refuse(fork, 403, /does not follow key set 1/, 'the fork, after a restart');
  await l.verify(logKey);
  t.diagnostic(`${l.logged.length} entries logged; every refusal left the tree as it was`);

  // The control: an unchecked log takes the same junk, so the checks above would see a log that did.
  const open = await startLog(path.join(dir, 'open'), await writeKey(dir, 'log.adversarial/open'), ['--admit-unsigned']);
  const o = new Ledger(open.url);
  await o.accept('junk', 'junk to --admit-unsigned');
  await o.accept(release([stranger!], '1', 'other'), 'a stranger\'s release to --admit-unsigned');
  await stop(open);
  await stop(log);
});

test('a burst from one key over many addresses is held to the key\'s quota, 429 with Retry-After; the counts survive kill -9', async (t) => {
  const dir = await tempDir(t);
  const logKey = await writeKey(dir, 'log.adversarial/quota');
  const [k1, k2, big] = await Promise.all(['k1', 'k2', 'big'].map((n) => writeKey(dir, `${n}.quota.test`)));
  const root = path.join(dir, 'log');
  // Each address may send one request a second (bursts of 10): only the key's quota can stop this burst.
  const flags = ['--admit', k1!.pub, '--admit', k2!.pub, '--admit', big!.pub, '--key-entries-per-hour', '5', '--key-bytes-per-day', '100K', '--add-rate', '1'];
  let log = await startLog(root, logKey, flags);
  const addresses = Array.from({ length: 12 }, (_, i) => `127.0.0.${i + 2}`);
  const agents = addresses.map((localAddress) => new Agent({ localAddress }));
  t.after(() => Promise.all(agents.map((a) => a.close())));
  const burst = async (url: string, bodies: string[]) => Promise.all(bodies.map(async (body, i) => {
    const res = await request(`${url}/add`, { method: 'POST', body, dispatcher: agents[i % agents.length]! });
    return { status: res.statusCode, text: (await res.body.text()).trim(), retryAfter: res.headers['retry-after'] as string | undefined };
  }));

  const answers = await burst(log.url, addresses.map((a) => release([k1!], `from ${a}`, 'quota')));
  const ok = answers.filter((a) => a.status === 200);
  const over = answers.filter((a) => a.status === 429);
  assert.equal(ok.length, 5, JSON.stringify(answers));
  assert.equal(over.length, 7, JSON.stringify(answers));
  for (const a of over) {
    assert.match(a.text, /the key k1\.quota\.test is over its quota of 5 entries per hour; retry after \d+ s/);
    // 5 an hour: the next one fits in 12 minutes, whichever of the 7 asks.
    assert.ok(Number(a.retryAfter) > 600 && Number(a.retryAfter) <= 720, `Retry-After ${a.retryAfter}`);
  }
  assert.deepEqual(ok.map((a) => JSON.parse(a.text).index).sort(), [0, 1, 2, 3, 4]);
  // Another key is not held back by k1's quota.
  assert.equal((await post(log.url, release([k2!], 'k2 1', 'quota'))).status, 200);
  // Bytes: 100 KiB a day, entries of about 40 KB (30 KB in base64): two fit.
  for (let i = 0; i < 2; i++) {
    const a = await post(log.url, dsseEntry([big!.key], `big ${i}`, 30_000));
    assert.equal(a.status, 200, a.text);
  }
  const third = await post(log.url, dsseEntry([big!.key], 'big 2', 30_000));
  assert.equal(third.status, 429);
  assert.match(third.text, /over its quota of 102400 bytes per day/);

  // kill -9, and the counts are still there: they were stored with the entries they paid for.
  await stop(log, 'kill9');
  log = await startLog(root, logKey, flags);
  const again = await post(log.url, release([k1!], 'after the restart', 'quota'));
  assert.equal(again.status, 429, again.text);
  assert.ok(Number(again.retryAfter) > 600, `Retry-After ${again.retryAfter}`);
  assert.equal((await post(log.url, dsseEntry([big!.key], 'big 3', 30_000))).status, 429);
  assert.equal((await post(log.url, release([k2!], 'k2 2', 'quota'))).status, 200);
  // The tree holds the 5 + 1 + 2 + 1 accepted entries and nothing of the 9 refused.
  assert.equal(JSON.parse((await post(log.url, release([k2!], 'k2 3', 'quota'))).text).index, 9);
  // One address alone is held by the per-address rate (1/s, bursts of 10), whatever the keys.
  const flood = await Promise.all(Array.from({ length: 16 }, (_, i) => post(log.url, `junk ${i}`)));
  assert.ok(flood.some((a) => a.status === 429 && /too many submissions from this address/.test(a.text)), JSON.stringify(flood.map((a) => a.status)));
  await stop(log);
});

test('SIGHUP reloads the admission file while submissions are in flight: none fails that should pass, none passes that should fail', async (t) => {
  const dir = await tempDir(t);
  const logKey = await writeKey(dir, 'log.adversarial/reload');
  const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((n) => writeKey(dir, `${n}.reload.test`)));
  const admit = path.join(dir, 'admit.json');
  const writeAdmission = async (keys: KeyFiles[]) => {
    const tmp = `${admit}.tmp`;
    await writeFile(tmp, JSON.stringify({ format: 'sourcemesh.log-admission/v1', keys: keys.map((k) => k.vkey) }));
    const { rename } = await import('node:fs/promises');
    await rename(tmp, admit);
  };
  await writeAdmission([a!, b!]);
  const log = await startLog(path.join(dir, 'log'), logKey, ['--admit-file', admit, '--add-rate', '0']);
  const l = new Ledger(log.url);

  // Each request records when it was sent and answered, in a sequence of events shared with the reloads.
  let clock = 0;
  interface Sent { key: string; body: string; sentAt: number; answeredAt: number; status: number }
  const sent: Sent[] = [];
  let phase: 'before' | 'after' | 'done' = 'before';
  let n = 0;
  const counts = () => Object.fromEntries(['a', 'b', 'c'].map((k) => [k, sent.filter((s) => s.key === k && s.status === 200).length]));
  const submitter = (name: string, key: KeyFiles) => (async () => {
    while (phase !== 'done' && n < 2000) {
      const body = release([key], `${name} ${n++}`, 'reload');
      const sentAt = ++clock;
      const r = await post(log.url, body);
      sent.push({ key: name, body, sentAt, answeredAt: ++clock, status: r.status });
    }
  })();
  const submitters = [submitter('a', a!), submitter('b', b!), submitter('c', c!), submitter('a', a!), submitter('b', b!), submitter('c', c!)];
  const until = async (pred: () => boolean, what: string) => {
    const deadline = Date.now() + 60_000;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(counts())}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  await until(() => counts().a! >= 20 && counts().b! >= 20, 'submissions before the reload');
  await writeAdmission([a!, c!]);
  const hupAt = ++clock;
  log.hup();
  await log.waitFor((line) => line.msg === 'admission reloaded');
  const reloadedAt = ++clock;
  phase = 'after';
  await until(() => sent.filter((s) => s.sentAt > reloadedAt && s.status === 200 && s.key === 'c').length >= 20 && sent.filter((s) => s.sentAt > reloadedAt && s.key === 'b').length >= 20, 'submissions after the reload');
  // A file that does not parse keeps the admission in force, and the log keeps serving.
  await writeFile(admit, '{ not json');
  log.hup();
  await log.waitFor((line) => line.msg === 'admission file not reloaded: keeping the admission in force');
  const brokenAt = ++clock;
  await until(() => sent.filter((s) => s.sentAt > brokenAt && s.key === 'c' && s.status === 200).length >= 5, 'submissions after a bad reload');
  phase = 'done';
  await Promise.all(submitters);

  for (const s of sent) {
    assert.ok(s.status === 200 || s.status === 403, `${s.key}: ${s.status}`);
    if (s.key === 'a') assert.equal(s.status, 200, 'a key admitted throughout was refused');
    const before = s.answeredAt < hupAt;
    const after = s.sentAt > reloadedAt;
    if (s.key === 'b' && before) assert.equal(s.status, 200, 'b was refused before the reload');
    if (s.key === 'b' && after) assert.equal(s.status, 403, 'b passed after it was no longer admitted');
    if (s.key === 'c' && before) assert.equal(s.status, 403, 'c passed before it was admitted');
    if (s.key === 'c' && after) assert.equal(s.status, 200, 'c was refused after it was admitted');
  }
  const between = sent.filter((s) => s.answeredAt > hupAt && s.sentAt < reloadedAt).length;
  t.diagnostic(`${sent.length} submissions (${JSON.stringify(counts())} accepted), ${between} in flight during the reload`);
  // The tree holds exactly the accepted ones.
  for (const s of [...sent].filter((x) => x.status === 200)) l.logged.push(Buffer.from(s.body));
  const client = await (async () => {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const cp = await http('GET', `${log.url}/checkpoint`);
      if (cp.status === 200 && Number(cp.text.split('\n')[1]) >= l.logged.length) return readLog(log.url, [createVerifier(parseVerifierKey(logKey.vkey))]);
      if (Date.now() > deadline) throw new Error('no checkpoint');
      await new Promise((r) => setTimeout(r, 25));
    }
  })();
  assert.deepEqual(new Set(client.entries.map((e) => e.toString())), new Set(l.logged.map((e) => e.toString())));
  assert.equal(client.entries.length, l.logged.length);
  assert.equal(log.child.exitCode, null, 'SIGHUP ended the log');
  await stop(log);
});

test('--admit-any-signed: any key the submitter names and that verifies, under quotas by public key (renaming a key does not reset them)', async (t) => {
  const dir = await tempDir(t);
  const logKey = await writeKey(dir, 'log.adversarial/any-signed');
  const log = await startLog(path.join(dir, 'log'), logKey, ['--admit-any-signed', '--key-entries-per-hour', '3']);
  const l = new Ledger(log.url);
  const seed = Buffer.alloc(32, 7);
  const anyone = signerKeyFromSeed('anyone.any.test', KEY_TYPE_ED25519, seed);
  const renamed = signerKeyFromSeed('renamed.any.test', KEY_TYPE_ED25519, seed);
  const other = signerKeyFromSeed('other.any.test', KEY_TYPE_ED25519, Buffer.alloc(32, 8));
  const header = (...keys: typeof anyone[]) => ({ 'sourcemesh-key': keys.map((k) => formatVerifierKey(k)).join(' ') });
  await l.accept(releaseEntry([anyone], '1', 'any'), 'a key named in Sourcemesh-Key', header(anyone));
  await l.refuse(releaseEntry([anyone], '2', 'any'), 403, /not signed by a key this log admits/, 'no key named');
  await l.refuse(releaseEntry([anyone], '2', 'any'), 403, /not signed by a key this log admits/, 'another key named', header(other));
  // Another key's signature under the named key's name and ID: the named key does not verify it.
  const text = parseNote(releaseEntry([anyone], '2', 'any')).text;
  const otherSig = parseNote(signNote(text, [createSigner(other)])).signatures[0]!;
  const forged = `${text}\n${formatSignatureLine({ ...otherSig, name: anyone.name, keyId: anyone.keyId })}`;
  await l.refuse(forged, 400, /signature by anyone\.any\.test .* does not verify/, 'a signature that is not the named key\'s', header(anyone));
  await l.accept(releaseEntry([anyone], '3', 'any'), 'the same key again', header(anyone));
  await l.accept(releaseEntry([renamed], '4', 'any'), 'the same public key under another name', header(renamed));
  const over = await post(l.url, releaseEntry([renamed], '5', 'any'), header(renamed));
  assert.equal(over.status, 429, 'renaming a key reset its quota');
  await l.accept(releaseEntry([other], '6', 'any'), 'another key', header(other));
  await l.refuse(releaseEntry([other], '7', 'any'), 400, /at most 16 keys/, 'too many keys named', { 'sourcemesh-key': Array(17).fill(formatVerifierKey(other)).join(' ') });
  await l.verify(logKey);
  await stop(log);
});
