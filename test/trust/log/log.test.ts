// `sourcemesh log serve` as real processes on loopback, with real `witness serve` processes: appends and
// proofs, witness quorum, kill -9 at seeded moments, and two log processes on one directory. Every log
// here admits one submitting key, and its entries are release statements that key signed.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, test } from 'node:test';
import { openCheckpoint } from '../../../src/trust/checkpoint.ts';
import { CompactRange, type Hash, leafHash, proveConsistency, proveInclusion, verifyConsistency, verifyInclusion } from '../../../src/trust/merkle.ts';
import { createVerifier, formatVerifierKey, KEY_TYPE_ED25519, parseVerifierKey, signerKeyFromSeed } from '../../../src/trust/note.ts';
import { entryBundlePath, tilePath } from '../../../src/trust/tiles.ts';
import { withSeed } from '../../helpers/prng.ts';
import { runCli, tempDir } from '../../helpers/run.ts';
import { add, deadUrl, http, type KeyFiles, NO_QUOTAS, readLog, releaseEntry, ServerProcess, writeKey } from './servers.ts';

const verifierOf = (k: KeyFiles) => createVerifier(parseVerifierKey(k.vkey));
const SUBMITTER = signerKeyFromSeed('submitter.log.test', KEY_TYPE_ED25519, createHash('sha256').update('log.test submitter').digest());
const ADMIT = ['--admit', formatVerifierKey(SUBMITTER), ...NO_QUOTAS];
/** An entry the logs here take; distinct labels make distinct entries. */
const entry = (label: string) => Buffer.from(releaseEntry([SUBMITTER], label));

// Every server this file starts is stopped at the end, even when a test failed half-way: a server left
// running would keep the test process alive.
const running = new Set<ServerProcess>();
after(() => Promise.all([...running].map((s) => s.stop())));

async function started(server: Promise<ServerProcess>): Promise<ServerProcess> {
  const s = await server;
  running.add(s);
  return s;
}

function startWitness(dir: string, key: KeyFiles, logs: KeyFiles[]): Promise<ServerProcess> {
  return started(ServerProcess.start(['witness', 'serve', '--state', path.join(dir, `state-${key.key.name}`), '--key', key.file, '--listen', '127.0.0.1:0', ...logs.flatMap((l) => ['--log', l.pub])]));
}

function startLog(root: string, key: KeyFiles, extra: string[] = []): Promise<ServerProcess> {
  return started(ServerProcess.start(['log', 'serve', '--root', root, '--key', key.file, '--listen', '127.0.0.1:0', ...ADMIT, ...extra]));
}

/** Roots of every prefix size of `entries` that is in `sizes`. */
function prefixRoots(entries: readonly Uint8Array[], sizes: Iterable<number>): Map<number, Hash> {
  const wanted = new Set(sizes);
  const range = new CompactRange();
  const roots = new Map<number, Hash>();
  if (wanted.has(0)) roots.set(0, range.root());
  for (const e of entries) {
    range.append(leafHash(e));
    if (wanted.has(range.size)) roots.set(range.size, range.root());
  }
  return roots;
}

async function waitForCheckpoint(url: string, minSize: number, timeoutMs = 15_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const a = await http('GET', `${url}/checkpoint`);
    if (a.status === 200 && Number(a.text.split('\n')[1]) >= minSize) return a.text;
    if (Date.now() > deadline) throw new Error(`no checkpoint of ${minSize} entries within ${timeoutMs} ms (last: ${a.status} ${a.text.slice(0, 80)})`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

test('appends get indexes once stored; proofs from the served tiles verify against the cosigned checkpoint', async (t) => {
  const dir = await tempDir(t);
  const logKey = await writeKey(dir, 'log.test/appends');
  const w1 = await writeKey(dir, 'w1.test', 'cosignature');
  const w2 = await writeKey(dir, 'w2.test', 'cosignature');
  const witnesses = await Promise.all([startWitness(dir, w1, [logKey]), startWitness(dir, w2, [logKey])]);
  t.after(() => Promise.all(witnesses.map((w) => w.stop())));
  const root = path.join(dir, 'log');
  const log = await startLog(root, logKey, ['--witness', `${w1.vkey}=${witnesses[0]!.url}`, '--witness', `${w2.pub}=${witnesses[1]!.url}`, '--quorum', '2', '--checkpoint-interval', '200ms']);
  t.after(() => log.stop());

  // 700 entries from 50 concurrent clients: crosses two full tiles.
  const N = 700;
  const entries = Array.from({ length: N }, (_, i) => entry(`${i} ${'x'.repeat(i % 90)}`.trim()));
  const byIndex = new Map<number, Buffer>();
  let next = 0;
  await Promise.all(Array.from({ length: 50 }, async () => {
    while (next < N) {
      const e = entries[next++]!;
      const index = await add(log.url, e);
      assert.ok(!byIndex.has(index), `index ${index} given twice`);
      byIndex.set(index, e);
    }
  }));
  assert.deepEqual([...byIndex.keys()].sort((a, b) => a - b), Array.from({ length: N }, (_, i) => i));

  // ?wait=checkpoint answers with a checkpoint cosigned by both witnesses and the inclusion proof.
  const verifiers = [verifierOf(logKey), verifierOf(w1), verifierOf(w2)];
  const waited = await Promise.all([0, 1, 2].map(async (i) => {
    const e = entry(`waited ${i}`);
    const a = await http('POST', `${log.url}/add?wait=checkpoint`, e);
    assert.equal(a.status, 200, a.text);
    assert.equal(a.headers['content-type'], 'application/json');
    const body = JSON.parse(a.text);
    const cp = openCheckpoint(body.checkpoint, verifiers);
    assert.deepEqual(cp.note.verified.map((s) => s.name).sort(), [logKey.key.name, 'w1.test', 'w2.test'].sort());
    assert.ok(cp.checkpoint.size > body.index);
    verifyInclusion(body.index, cp.checkpoint.size, leafHash(e), body.inclusionProof.map((b: string) => Buffer.from(b, 'base64')), cp.checkpoint.rootHash);
    byIndex.set(body.index, e);
    return cp.checkpoint;
  }));
  await waitForCheckpoint(log.url, N + 3);

  // Read the log as a client: every entry at its index, the root of the entries is the checkpoint's.
  const client = await readLog(log.url, [verifierOf(logKey)]);
  const size = client.opened.checkpoint.size;
  assert.equal(size, N + 3);
  for (const [index, e] of byIndex) assert.deepEqual(client.entries[index], e, `entry ${index}`);
  const roots = prefixRoots(client.entries, [size, ...waited.map((c) => c.size)]);
  assert.deepEqual(Buffer.from(roots.get(size)!), Buffer.from(client.opened.checkpoint.rootHash));
  for (const index of [0, 1, 255, 256, 511, 512, 699, 701, 702]) {
    const proof = await proveInclusion(index, size, client.reader);
    verifyInclusion(index, size, leafHash(client.entries[index]!), proof, client.opened.checkpoint.rootHash);
  }
  for (const c of waited) {
    assert.deepEqual(Buffer.from(roots.get(c.size)!), Buffer.from(c.rootHash), 'an earlier checkpoint is a prefix');
    verifyConsistency(c.size, size, c.rootHash, client.opened.checkpoint.rootHash, await proveConsistency(c.size, size, client.reader));
  }
  // The published checkpoint carries both cosignatures; DIR/checkpoint is the same file.
  const published = openCheckpoint(client.note, verifiers);
  assert.equal(published.note.verified.length, 3);
  assert.equal(await readFile(path.join(root, 'checkpoint'), 'utf8'), client.note);

  // Caching and content types (C2SP tlog-tiles): full tiles immutable, partial ones short, checkpoint not cached.
  const full = await http('GET', `${log.url}/${tilePath({ level: 0, index: 0, width: 256 })}`);
  assert.equal(full.status, 200);
  assert.equal(full.body.length, 8192);
  assert.match(String(full.headers['cache-control']), /immutable/);
  assert.equal(full.headers['content-type'], 'application/octet-stream');
  const partial = await http('GET', `${log.url}/${entryBundlePath({ index: 2, width: size - 512 })}`);
  assert.equal(partial.status, 200);
  assert.match(String(partial.headers['cache-control']), /max-age=10$/);
  const cpAnswer = await http('GET', `${log.url}/checkpoint`);
  assert.equal(cpAnswer.headers['content-type'], 'text/plain; charset=utf-8');
  assert.equal(cpAnswer.headers['cache-control'], 'no-cache');
  // Tiles beyond the tree, non-canonical paths, wrong methods, oversized entries.
  assert.equal((await http('GET', `${log.url}/${tilePath({ level: 0, index: 3, width: 256 })}`)).status, 404);
  assert.equal((await http('GET', `${log.url}/${tilePath({ level: 0, index: 2, width: 255 })}`)).status, 404);
  assert.equal((await http('GET', `${log.url}/tile/0/x000/000`)).status, 404);
  assert.equal((await http('GET', `${log.url}/tile/0/../../.sourcemesh-log/state.sqlite`)).status, 404);
  assert.equal((await http('GET', `${log.url}/add`)).status, 405);
  assert.equal((await http('POST', `${log.url}/add`, Buffer.alloc(65_536))).status, 413);
  // Bytes that are no statement are refused (test/adversarial/log-admission.test.ts has the rest), and
  // nothing refused reaches the tree: the next entry takes the next index.
  assert.equal((await http('POST', `${log.url}/add`, Buffer.alloc(65_535, 1))).status, 400);
  assert.equal(await add(log.url, entry('after the refusals')), N + 3);
});

test('a checkpoint is published only with K cosignatures: not with 2 of 2 when one witness is down, yes with 2 of 3', async (t) => {
  const dir = await tempDir(t);
  const logA = await writeKey(dir, 'log.test/two-of-two');
  const logB = await writeKey(dir, 'log.test/two-of-three');
  const keys = await Promise.all(['w1.test', 'w2.test', 'w3.test'].map((n) => writeKey(dir, n, 'cosignature')));
  const [w1, w2] = await Promise.all([startWitness(dir, keys[0]!, [logA, logB]), startWitness(dir, keys[1]!, [logA, logB])]);
  t.after(() => Promise.all([w1!.stop(), w2!.stop()]));
  const down = await deadUrl(); // w3 is not running
  const a = await startLog(path.join(dir, 'a'), logA, ['--witness', `${keys[0]!.vkey}=${w1!.url}`, '--witness', `${keys[2]!.vkey}=${down}`, '--quorum', '2', '--checkpoint-interval', '100ms']);
  t.after(() => a.stop());
  const b = await startLog(path.join(dir, 'b'), logB, ['--witness', `${keys[0]!.vkey}=${w1!.url}`, '--witness', `${keys[1]!.vkey}=${w2!.url}`, '--witness', `${keys[2]!.vkey}=${down}`, '--quorum', '2', '--checkpoint-interval', '100ms']);
  t.after(() => b.stop());
  for (let i = 0; i < 5; i++) {
    await add(a.url, entry(`a ${i}`));
    await add(b.url, entry(`b ${i}`));
  }
  const cpB = await waitForCheckpoint(b.url, 5);
  const opened = openCheckpoint(cpB, [verifierOf(logB), ...keys.map(verifierOf)]);
  assert.deepEqual(opened.note.verified.map((s) => s.name).sort(), [logB.key.name, 'w1.test', 'w2.test'].sort());
  // A signed checkpoints of 5 entries several times, and w1 cosigned them, but 1 of 2 is not a quorum.
  await a.waitFor((l) => l.msg === 'checkpoint signed' && l.size === 5);
  await a.waitFor((l) => l.msg === 'checkpoint not published: too few cosignatures' && l.size === 5);
  assert.equal((await http('GET', `${a.url}/checkpoint`)).status, 404);
  assert.equal(a.events('checkpoint published').length, 0);
  await assert.rejects(readFile(path.join(dir, 'a', 'checkpoint')), { code: 'ENOENT' });
  // w1 did cosign A's checkpoint: the witness saw it, the log just may not publish it alone.
  const w1Logs = w1!.events('cosigned').filter((l) => l.origin === logA.key.name && l.size === 5);
  assert.ok(w1Logs.length >= 1);
});

test('a witness that never answers does not hold back checkpoints the others can cosign', async (t) => {
  const dir = await tempDir(t);
  const logKey = await writeKey(dir, 'log.test/hanging');
  const keys = await Promise.all(['w1.test', 'w2.test'].map((n) => writeKey(dir, n, 'cosignature')));
  const w1 = await startWitness(dir, keys[0]!, [logKey]);
  t.after(() => w1.stop());
  // Accepts connections, reads requests, never answers.
  const net = await import('node:net');
  const sockets = new Set<import('node:net').Socket>();
  const hanging = net.createServer((s) => {
    sockets.add(s);
    s.on('data', () => {});
  });
  await new Promise<void>((r) => hanging.listen(0, '127.0.0.1', r));
  t.after(() => {
    for (const s of sockets) s.destroy();
    hanging.close();
  });
  const hangingUrl = `http://127.0.0.1:${(hanging.address() as { port: number }).port}`;
  const log = await startLog(path.join(dir, 'log'), logKey, ['--witness', `${keys[0]!.vkey}=${w1.url}`, '--witness', `${keys[1]!.vkey}=${hangingUrl}`, '--quorum', '1', '--checkpoint-interval', '100ms']);
  t.after(() => log.stop());
  const t0 = Date.now();
  let n = 0;
  for (const size of [3, 6, 9]) {
    while ((await add(log.url, entry(`entry ${n++}`))) < size - 1);
    const cp = openCheckpoint(await waitForCheckpoint(log.url, size, 5000), [verifierOf(logKey), verifierOf(keys[0]!)]);
    assert.equal(cp.note.verified.length, 2);
  }
  // Three checkpoints published well within the 10 s a request to the hanging witness waits.
  assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`);
});

test('a witness 409 makes the log resend from the witness\'s size; a log restored from an old copy gets no cosignature', async (t) => {
  const dir = await tempDir(t);
  const logKey = await writeKey(dir, 'log.test/resync');
  const wKey = await writeKey(dir, 'w.test', 'cosignature');
  const witness = await startWitness(dir, wKey, [logKey]);
  t.after(() => witness.stop());
  const root = path.join(dir, 'log');
  const flags = ['--witness', `${wKey.vkey}=${witness.url}`, '--checkpoint-interval', '100ms'];
  let log = await startLog(root, logKey, flags);
  for (let i = 0; i < 5; i++) await add(log.url, entry(`entry ${i}`));
  await waitForCheckpoint(log.url, 5);
  await log.stop();
  const backup = path.join(dir, 'backup');
  await cp(root, backup, { recursive: true });
  // Without DIR/checkpoint the log no longer knows what the witness has: it asks from 0, gets 409 "5", and
  // asks again with a proof from 5.
  await rm(path.join(root, 'checkpoint'));
  log = await startLog(root, logKey, flags);
  for (let i = 5; i < 9; i++) await add(log.url, entry(`entry ${i}`));
  const cp9 = openCheckpoint(await waitForCheckpoint(log.url, 9), [verifierOf(logKey), verifierOf(wKey)]);
  assert.equal(cp9.note.verified.length, 2);
  assert.ok(witness.lines.some((l) => l.msg === 'refused' && l.status === 409 && l.old === 0), 'no 409 from the witness');
  // Resent from 5 (the log may have checkpointed 6, 7 or 8 on the way to 9, each cosigned in turn).
  assert.ok(witness.lines.some((l) => l.msg === 'cosigned' && l.old === 5 && (l.size ?? 0) > 5 && (l.size ?? 0) <= 9), 'no resend from the witness\'s size');
  await log.stop();
  // The copy from before: size 5. It grows differently; the witness, at 9, refuses every checkpoint.
  log = await startLog(backup, logKey, flags);
  t.after(() => log.stop());
  for (let i = 0; i < 7; i++) await add(log.url, entry(`another entry ${i}`));
  await log.waitFor((l) => l.msg === 'checkpoint not published: too few cosignatures' && l.size === 12);
  assert.equal(openCheckpoint(await waitForCheckpoint(log.url, 5), [verifierOf(logKey)]).checkpoint.size, 5);
  assert.ok(log.lines.some((l) => l.msg === 'no cosignature from witness' && l.size === 12));
  // At 5 the log can't even ask (the witness cosigned 9 already); at 12 the witness refuses the fork: the
  // proof from 9 does not lead from the root it cosigned.
  assert.ok(log.lines.some((l) => l.msg === 'no cosignature from witness' && l.size === 5 && /more than this checkpoint/.test(JSON.stringify(l.err))));
  assert.ok(witness.lines.some((l) => l.status === 422 && l.old === 9 && l.size === 12));
});

test('kill -9 at seeded moments during appends: every acknowledged entry survives once, replays find it, the tree and checkpoints stay consistent', async (t) => {
  const dir = await tempDir(t);
  const logKey = await writeKey(dir, 'log.test/crash');
  const root = path.join(dir, 'log');
  const acked = new Map<number, Buffer>();
  /** Entries whose request the kill cut off: in the log or not, but never twice. */
  const cut: Buffer[] = [];
  const seen = new Map<number, string>(); // checkpoint size -> root, as served
  let counter = 0;
  const ROUNDS = 5;
  await withSeed(t, async (rng) => {
    for (let round = 0; round < ROUNDS; round++) {
      const log = await startLog(root, logKey, ['--checkpoint-interval', '50ms', '--batch', '64']);
      if (round > 0) {
        // After a crash, the published checkpoint is one of a size seen before or later, never behind what
        // was served before the crash, and of the same tree.
        const cp = openCheckpoint(await waitForCheckpoint(log.url, 0), [verifierOf(logKey)]).checkpoint;
        const maxSeen = Math.max(...seen.keys());
        assert.ok(cp.size >= maxSeen, `published checkpoint went back from ${maxSeen} to ${cp.size}`);
      }
      // The kill comes after a seeded number of acknowledgements in this round: a moment set by what the
      // log did, not by the clock of a loaded machine.
      const killAfter = rng.between(30, 500);
      let ackedThisRound = 0;
      let enough!: () => void;
      const reached = new Promise<void>((resolve) => (enough = resolve));
      let stop = false;
      const submitters = Array.from({ length: 24 }, async () => {
        while (!stop) {
          const e = entry(`crash round ${round} entry ${counter++}`);
          let index: number;
          try {
            index = await add(log.url, e);
          } catch {
            cut.push(e); // the server died under this request: the entry may or may not be in the log
            return;
          }
          const before = acked.get(index);
          assert.ok(before === undefined, `index ${index} acknowledged for two entries`);
          acked.set(index, e);
          if (++ackedThisRound >= killAfter) enough();
        }
      });
      const watcher = (async () => {
        while (!stop) {
          try {
            const a = await http('GET', `${log.url}/checkpoint`);
            if (a.status === 200) {
              const [, size, r] = a.text.split('\n');
              const prev = seen.get(Number(size));
              assert.ok(prev === undefined || prev === r, `two roots for size ${size}`);
              seen.set(Number(size), r!);
            }
          } catch {
            return;
          }
          await new Promise((r) => setTimeout(r, 10));
        }
      })();
      // Submitters only end early when the log fails them: then the race ends instead of waiting forever.
      await Promise.race([reached, Promise.all(submitters)]);
      if (round < ROUNDS - 1) {
        await log.kill9();
        stop = true;
        await Promise.all([...submitters, watcher]);
        continue;
      }
      stop = true;
      await Promise.all([...submitters, watcher]);
      // Replays, after four kills: an acknowledged entry gets its own index back, an entry whose request
      // was cut off gets the index it was stored at if it was, and none is logged twice.
      for (const [index, e] of acked) if (rng.below(8) === 0) assert.equal(await add(log.url, e), index, 'a replay of an acknowledged entry');
      const replayed = new Map<number, Buffer>();
      for (const e of cut) replayed.set(await add(log.url, e), e);
      const max = Math.max(...acked.keys(), ...replayed.keys());
      await waitForCheckpoint(log.url, max + 1);
      const client = await readLog(log.url, [verifierOf(logKey)]);
      for (const [index, e] of [...acked, ...replayed]) assert.deepEqual(client.entries[index], e, `acknowledged entry ${index}`);
      const distinct = new Set(client.entries.map((e) => e.toString('base64')));
      assert.equal(distinct.size, client.entries.length, 'an entry is in the log twice');
      const roots = prefixRoots(client.entries, [...seen.keys(), client.opened.checkpoint.size]);
      assert.deepEqual(Buffer.from(roots.get(client.opened.checkpoint.size)!), Buffer.from(client.opened.checkpoint.rootHash));
      for (const [size, r] of seen) assert.equal(Buffer.from(roots.get(size)!).toString('base64'), r, `checkpoint of ${size} is a prefix of the final tree`);
      assert.ok(acked.size > 200, `only ${acked.size} entries acknowledged`);
      assert.ok(seen.size > 5);
      t.diagnostic(`${ROUNDS - 1} kills; ${acked.size} entries acknowledged, ${cut.length} cut off and replayed, ${client.entries.length} in the log; ${seen.size} checkpoint sizes seen`);
      await log.stop();
    }
  });
});

test('two log processes on one directory take turns and never sign two checkpoints of one size', async (t) => {
  const dir = await tempDir(t);
  const logKey = await writeKey(dir, 'log.test/two-processes');
  const root = path.join(dir, 'log');
  await mkdir(root);
  const [p, q] = await Promise.all([
    startLog(root, logKey, ['--checkpoint-interval', '20ms', '--batch', '16']),
    startLog(root, logKey, ['--checkpoint-interval', '20ms', '--batch', '16']),
  ]);
  const acked = new Map<number, Buffer>();
  const perProcess = [0, 0];
  let counter = 0;
  const deadline = Date.now() + 2500;
  await Promise.all([p, q].flatMap((server, s) => Array.from({ length: 12 }, async () => {
    while (Date.now() < deadline) {
      const e = entry(`process ${s} entry ${counter++}`);
      const index = await add(server.url, e);
      assert.ok(!acked.has(index), `index ${index} acknowledged twice`);
      acked.set(index, e);
      perProcess[s]!++;
    }
  })));
  await Promise.all([p.stop(), q.stop()]);
  // Both stored entries, taking turns: each reload is a process finding the tree moved by the other.
  assert.ok(perProcess[0]! > 0 && perProcess[1]! > 0, `entries stored per process: ${perProcess}`);
  assert.ok(p.events('batch not stored').length === 0 && q.events('batch not stored').length === 0);
  const reloads = [p, q].map((s) => s.events('tree head moved by another process; reloading').length);
  assert.ok(reloads[0]! + reloads[1]! > 0, 'neither process saw the other move the tree');
  // Every checkpoint either signed or published, by either: one root per size.
  const roots = new Map<number, string>();
  let signed = 0;
  for (const line of [...p.lines, ...q.lines]) {
    if (line.msg !== 'checkpoint signed' && line.msg !== 'checkpoint published') continue;
    signed++;
    const prev = roots.get(line.size!);
    assert.ok(prev === undefined || prev === line.root, `a fork: two roots for size ${line.size}`);
    roots.set(line.size!, line.root!);
  }
  assert.ok(signed > 20 && roots.size > 5, `only ${signed} checkpoints`);
  t.diagnostic(`${perProcess.join(' + ')} entries, ${reloads.join(' + ')} reloads, ${signed} checkpoints signed or published over ${roots.size} sizes`);
  // The directory holds one tree with every acknowledged entry where it was acknowledged.
  const again = await startLog(root, logKey, ['--checkpoint-interval', '50ms']);
  t.after(() => again.stop());
  await waitForCheckpoint(again.url, Math.max(...acked.keys()) + 1);
  const client = await readLog(again.url, [verifierOf(logKey)]);
  for (const [index, e] of acked) assert.deepEqual(client.entries[index], e);
  const prefix = prefixRoots(client.entries, roots.keys());
  for (const [size, r] of roots) assert.equal(Buffer.from(prefix.get(size)!).toString('base64'), r);
});

test('a log directory is bound to its key and refuses state it cannot trust', async (t) => {
  const dir = await tempDir(t);
  const logKey = await writeKey(dir, 'log.test/bound');
  const other = await writeKey(dir, 'log.test/other');
  const root = path.join(dir, 'log');
  const log = await startLog(root, logKey);
  await add(log.url, entry('one'));
  await log.stop();
  const wrongKey = await runCli(['log', 'serve', '--root', root, '--key', other.file, '--listen', '127.0.0.1:0', ...ADMIT]);
  assert.equal(wrongKey.code, 2, wrongKey.stderr);
  assert.match(wrongKey.stderr, /is the log of key .*log\.test\/bound.*\[E_INPUT\]/);
  const witnessKey = await writeKey(dir, 'w.test', 'cosignature');
  const asLog = await runCli(['log', 'serve', '--root', path.join(dir, 'x'), '--key', witnessKey.file, '--listen', '127.0.0.1:0', ...ADMIT]);
  assert.equal(asLog.code, 2);
  assert.match(asLog.stderr, /Ed25519 note key/);
  // Tiles without a tree head: the state was lost; do not start a second tree over the first.
  const orphan = path.join(dir, 'orphan');
  await mkdir(path.join(orphan, 'tile'), { recursive: true });
  await writeFile(path.join(orphan, 'checkpoint'), 'x');
  const lost = await runCli(['log', 'serve', '--root', orphan, '--key', logKey.file, '--listen', '127.0.0.1:0', ...ADMIT]);
  assert.equal(lost.code, 3, lost.stderr);
  assert.match(lost.stderr, /no tree head/);
  const badFlag = await runCli(['log', 'serve', '--root', root, '--key', logKey.file, '--listen', '127.0.0.1:0', ...ADMIT, '--witness', 'nonsense']);
  assert.equal(badFlag.code, 2);
  const badQuorum = await runCli(['log', 'serve', '--root', root, '--key', logKey.file, '--listen', '127.0.0.1:0', ...ADMIT, '--quorum', '1']);
  assert.equal(badQuorum.code, 2);
  // Saying who may write is not optional.
  const noAdmission = await runCli(['log', 'serve', '--root', root, '--key', logKey.file, '--listen', '127.0.0.1:0']);
  assert.equal(noAdmission.code, 2);
  assert.match(noAdmission.stderr, /say who may write to the log.*\[E_USAGE\]/);
  const unsignedAndKeys = await runCli(['log', 'serve', '--root', root, '--key', logKey.file, '--listen', '127.0.0.1:0', '--admit-unsigned', ...ADMIT]);
  assert.equal(unsignedAndKeys.code, 2);
});

test('a log written before it kept an index of its entries is indexed when it starts: replays find their index', async (t) => {
  const dir = await tempDir(t);
  const logKey = await writeKey(dir, 'log.test/catch-up');
  const root = path.join(dir, 'log');
  let log = await startLog(root, logKey, ['--checkpoint-interval', '50ms']);
  // 600 entries: more than two full entry bundles and a partial one.
  const entries = Array.from({ length: 600 }, (_, i) => entry(`catch-up ${i}`));
  for (const [i, e] of entries.entries()) assert.equal(await add(log.url, e), i);
  await log.stop();
  // What a log of an earlier version holds: the tree head and its files, no index.
  const { DatabaseSync } = await import('node:sqlite');
  const db = new DatabaseSync(path.join(root, '.sourcemesh-log', 'state.sqlite'));
  db.exec(`DROP TABLE entry; DROP TABLE rotation; DELETE FROM meta WHERE key = 'indexed'`);
  db.close();
  log = await startLog(root, logKey, ['--checkpoint-interval', '50ms']);
  for (const i of [0, 255, 256, 511, 512, 599]) assert.equal(await add(log.url, entries[i]!), i, `a replay of entry ${i}`);
  assert.equal(await add(log.url, entry('catch-up new')), 600);
  await log.stop();
});
