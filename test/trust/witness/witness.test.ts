// `sourcemesh witness serve` as a real process on loopback, driven by a log simulated here (its key, an
// in-memory tree, signed checkpoints, consistency proofs): every C2SP tlog-witness answer, atomicity under
// concurrent requests, and the stored state surviving kill -9 in the middle of requests. Random choices come
// from a seeded Prng (test/helpers/prng.ts: the seed is printed, SOURCEMESH_TEST_SEED repeats a run), and
// kills are ordered by what the witness answered, not by sleeps.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { test } from 'node:test';
import { formatCheckpoint, openCheckpoint } from '../../../src/trust/checkpoint.ts';
import { EMPTY_TREE_HASH, formatProofLines, type Hash, proveConsistency, treeHash } from '../../../src/trust/merkle.ts';
import {
  createSigner, createVerifier, formatVerifierKey, KEY_TYPE_COSIGNATURE_V1, KEY_TYPE_ED25519, openNote, parseNote, parseVerifierKey, signerKeyFromSeed, signNote, type SignerKey,
} from '../../../src/trust/note.ts';
import { type LogRecord, Witness } from '../../../src/trust/witness/witness.ts';
import fc from 'fast-check';
import { formatAddCheckpoint, parseAddCheckpoint, parseTreeSize } from '../../../src/trust/witness/protocol.ts';
import { withSeed } from '../../helpers/prng.ts';
import { tempDir } from '../../helpers/run.ts';
import { http, type KeyFiles, ServerProcess, writeKey } from '../log/servers.ts';
import { MemoryHashStore } from '../reference-tree.ts';

function startWitness(state: string, key: KeyFiles, logs: string[]): Promise<ServerProcess> {
  return ServerProcess.start(['witness', 'serve', '--state', state, '--key', key.file, '--listen', '127.0.0.1:0', ...logs.flatMap((l) => ['--log', l])]);
}

/** A log simulated in the test: a tree in memory and a key to sign its checkpoints. */
class SimulatedLog {
  readonly key: SignerKey;
  readonly tree = new MemoryHashStore();
  readonly label: string;

  constructor(key: SignerKey, label: string) {
    this.key = key;
    this.label = label;
  }

  grow(to: number): void {
    while (this.tree.range.size < to) this.tree.append(Buffer.from(`${this.label} entry ${this.tree.range.size}`));
  }

  async checkpoint(size: number, signer: SignerKey = this.key): Promise<string> {
    this.grow(size);
    const text = formatCheckpoint({ origin: this.key.name, size, rootHash: await treeHash(size, this.tree), extensions: [] });
    return signNote(text, [createSigner(signer)]);
  }

  async proof(old: number, size: number): Promise<Hash[]> {
    this.grow(size);
    return proveConsistency(old, size, this.tree);
  }
}

const seed = (label: string) => createHash('sha256').update(`witness test ${label}`).digest();

async function addCheckpoint(url: string, old: number, proof: readonly Hash[], note: string) {
  return http('POST', `${url}/add-checkpoint`, formatAddCheckpoint({ old, proof, note }));
}

test('add-checkpoint answers every case with the C2SP tlog-witness status code', async (t) => {
  const dir = await tempDir(t);
  const wKey = await writeKey(dir, 'witness.test/w1', 'cosignature');
  const logKey = signerKeyFromSeed('log.test/witnessed', KEY_TYPE_ED25519, seed('log'));
  const otherLogKey = signerKeyFromSeed('log.test/other', KEY_TYPE_ED25519, seed('other'));
  const log = new SimulatedLog(logKey, 'main');
  const forked = new SimulatedLog(logKey, 'fork'); // the same log key signing a different tree
  const impostor = signerKeyFromSeed('log.test/witnessed', KEY_TYPE_ED25519, seed('impostor')); // same name, other key
  const unknown = new SimulatedLog(signerKeyFromSeed('log.test/unknown', KEY_TYPE_ED25519, seed('unknown')), 'unknown');
  const other = new SimulatedLog(otherLogKey, 'other');
  const w = await startWitness(path.join(dir, 'state'), wKey, [formatVerifierKey(logKey), formatVerifierKey(otherLogKey)]);
  t.after(() => w.stop());
  const wVerifier = createVerifier(parseVerifierKey(wKey.vkey));
  const logVerifier = createVerifier(parseVerifierKey(formatVerifierKey(logKey)));

  // 404: an origin the witness does not know.
  let a = await addCheckpoint(w.url, 0, [], await unknown.checkpoint(5));
  assert.equal(a.status, 404, a.text);
  // 403: no valid signature from a trusted key (a key of the same name but another ID is just unknown) ...
  a = await addCheckpoint(w.url, 0, [], await log.checkpoint(10, impostor));
  assert.equal(a.status, 403, a.text);
  // ... or a trusted key's signature that fails.
  const good10 = await log.checkpoint(10);
  const lines = good10.split('\n');
  const sigLine = lines.findIndex((l) => l.startsWith('\u2014 '));
  const sig = Buffer.from(lines[sigLine]!.split(' ')[2]!, 'base64');
  sig[10]! ^= 1;
  lines[sigLine] = `\u2014 ${logKey.name} ${sig.toString('base64')}`;
  a = await addCheckpoint(w.url, 0, [], lines.join('\n'));
  assert.equal(a.status, 403, a.text);

  // 200: the first checkpoint (old 0, no proof): one cosignature line, valid, with a current timestamp.
  a = await addCheckpoint(w.url, 0, [], good10);
  assert.equal(a.status, 200, a.text);
  assert.match(a.text, /^\u2014 witness\.test\/w1 [A-Za-z0-9+/=]+\n$/);
  const text10 = good10.slice(0, good10.indexOf('\n\n') + 1);
  const cosigned = openNote(`${text10}\n${a.text}`, [wVerifier]);
  assert.ok(Math.abs(cosigned.verified[0]!.timestamp! - Date.now() / 1000) < 120);
  assert.equal(openCheckpoint(`${good10}${a.text}`, [logVerifier, wVerifier]).note.verified.length, 2);

  // 409: old is not the size it cosigned; the body is that size, as text/x.tlog.size.
  a = await addCheckpoint(w.url, 0, [], await log.checkpoint(20));
  assert.equal(a.status, 409);
  assert.equal(a.headers['content-type'], 'text/x.tlog.size');
  assert.equal(parseTreeSize(a.text), 10);
  a = await addCheckpoint(w.url, 15, await log.proof(15, 20), await log.checkpoint(20));
  assert.equal(a.status, 409);
  // 400: old beyond the checkpoint's size.
  a = await addCheckpoint(w.url, 30, [], await log.checkpoint(20));
  assert.equal(a.status, 400, a.text);
  // Rollback to 5: old 10 is beyond it (400); any other old is not the stored size (409).
  a = await addCheckpoint(w.url, 10, [], await log.checkpoint(5));
  assert.equal(a.status, 400);
  a = await addCheckpoint(w.url, 5, [], await log.checkpoint(5));
  assert.equal(a.status, 409);
  assert.equal(a.text, '10\n');
  // Fork at the same size: another root for 10, correctly signed by the log key: 422.
  a = await addCheckpoint(w.url, 10, [], await forked.checkpoint(10));
  assert.equal(a.status, 422, a.text);
  assert.match(a.text, /fork/);
  // Fork at a larger size: the other tree's own (valid) proof does not lead from the root it cosigned: 422.
  a = await addCheckpoint(w.url, 10, await forked.proof(10, 20), await forked.checkpoint(20));
  assert.equal(a.status, 422, a.text);
  // Bad proofs: a flipped bit, a missing hash, no proof at all, a proof between equal sizes.
  const proof = await log.proof(10, 20);
  const flipped = proof.map((h) => Buffer.from(h));
  flipped[1]![0]! ^= 1;
  for (const bad of [flipped, proof.slice(1), []]) {
    a = await addCheckpoint(w.url, 10, bad, await log.checkpoint(20));
    assert.equal(a.status, 422, a.text);
  }
  a = await addCheckpoint(w.url, 10, [proof[0]!], good10);
  assert.equal(a.status, 422);
  // A proof from size 0 must be empty; a size-0 checkpoint must have the empty root (another log).
  a = await addCheckpoint(w.url, 0, [proof[0]!], await other.checkpoint(4));
  assert.equal(a.status, 422);
  const badEmpty = signNote(formatCheckpoint({ origin: otherLogKey.name, size: 1, rootHash: Buffer.alloc(32, 7), extensions: [] }).replace('\n1\n', '\n0\n'), [createSigner(otherLogKey)]);
  a = await addCheckpoint(w.url, 0, [], badEmpty);
  assert.equal(a.status, 422, a.text);
  const empty = signNote(formatCheckpoint({ origin: otherLogKey.name, size: 0, rootHash: EMPTY_TREE_HASH, extensions: [] }), [createSigner(otherLogKey)]);
  assert.equal((await addCheckpoint(w.url, 0, [], empty)).status, 200);
  // None of the refusals moved the state: the right proof from 10 is still accepted, and the same
  // checkpoint again (old = size, same root) is cosigned again.
  const good20 = await log.checkpoint(20);
  assert.equal((await addCheckpoint(w.url, 10, proof, good20)).status, 200);
  assert.equal((await addCheckpoint(w.url, 20, [], good20)).status, 200);
  // The refusals of signed checkpoints were logged as possible evidence.
  assert.ok(w.events('refused a validly signed checkpoint: possible log misbehaviour').length >= 5);

  // Monitor retrieval: the latest cosigned checkpoint, with the log's signature and the witness's cosignature.
  const originHash = createHash('sha256').update(logKey.name).digest('hex');
  a = await http('GET', `${w.url}/${originHash}/checkpoint`);
  assert.equal(a.status, 200);
  const latest = openCheckpoint(a.text, [logVerifier, wVerifier]);
  assert.equal(latest.checkpoint.size, 20);
  assert.equal(latest.note.verified.length, 2);
  assert.equal((await http('GET', `${w.url}/${'0'.repeat(64)}/checkpoint`)).status, 404);

  // Malformed requests: 400; too large: 413; wrong method: 405.
  for (const body of ['', 'old 1', 'old 01\n\n' + good20, 'new 0\n\n' + good20, 'old 20\nnot base64\n\n' + good20, `old 20\n${formatProofLines(Array(64).fill(proof[0]))}\n${good20}`, 'old 20\n\nnot a note\n']) {
    a = await http('POST', `${w.url}/add-checkpoint`, body);
    assert.equal(a.status, 400, `${JSON.stringify(body.slice(0, 30))}: ${a.status} ${a.text}`);
  }
  assert.equal((await http('POST', `${w.url}/add-checkpoint`, Buffer.alloc(300 * 1024, 0x61))).status, 413);
  assert.equal((await http('GET', `${w.url}/add-checkpoint`)).status, 405);

  // Concurrent requests for one log are one at a time: of 20 checkpoints all claiming old = 20, exactly
  // one is cosigned and every other learns its size.
  const sizes = Array.from({ length: 20 }, (_, i) => 21 + i);
  const answers = await Promise.all(sizes.map(async (s) => addCheckpoint(w.url, 20, await log.proof(20, s), await log.checkpoint(s))));
  const won = answers.filter((x) => x.status === 200);
  assert.equal(won.length, 1, answers.map((x) => x.status).join(' '));
  const winner = sizes[answers.indexOf(won[0]!)]!;
  for (const x of answers) if (x.status !== 200) assert.deepEqual([x.status, x.text], [409, `${winner}\n`]);
});

test('the witness state survives kill -9 in the middle of requests: never behind what it cosigned', (t) => withSeed(t, async (rng) => {
  const dir = await tempDir(t);
  const wKey = await writeKey(dir, 'witness.test/crash', 'cosignature');
  const logKey = signerKeyFromSeed('log.test/crash', KEY_TYPE_ED25519, seed('crash log'));
  const log = new SimulatedLog(logKey, 'crash');
  const state = path.join(dir, 'state');
  const wVerifier = createVerifier(parseVerifierKey(wKey.vkey));
  const logVerifier = createVerifier(parseVerifierKey(formatVerifierKey(logKey)));
  let acked = 0; // the largest size the witness answered 200 for
  const sent = new Set<number>([0]);
  let cosignedTotal = 0;
  const rounds = 4;
  for (let round = 0; round < rounds; round++) {
    const w = await startWitness(state, wKey, [formatVerifierKey(logKey)]);
    t.after(() => w.kill9()); // also when an assertion below fails
    // What it has after the crash: old 0 gets 409 with the stored size, which must be one it was sent and
    // no less than the last one it acknowledged.
    const probe = await addCheckpoint(w.url, 0, [], await log.checkpoint(acked + 1));
    const stored = probe.status === 409 ? parseTreeSize(probe.text) : 0;
    if (round > 0) {
      assert.equal(probe.status, 409, probe.text);
      assert.ok(stored >= acked, `the witness went back from ${acked} to ${stored}`);
      assert.ok(sent.has(stored), `the witness stored ${stored}, a size it was never sent`);
      const latest = await http('GET', `${w.url}/${createHash('sha256').update(logKey.name).digest('hex')}/checkpoint`);
      const cp = openCheckpoint(latest.text, [logVerifier, wVerifier]);
      assert.equal(cp.checkpoint.size, stored);
      assert.equal(cp.note.verified.length, 2);
    }
    acked = stored;
    // The kill comes on an event: right after the witness's k-th cosignature of this round, or right after
    // the k-th request of this round went out (then it lands while that request is in flight); either way
    // the other senders have requests in flight too.
    const after = rng.below(2) === 0 ? 'cosignature' : 'request';
    const k = after === 'cosignature' ? rng.between(3, 20) : rng.between(6, 40);
    let requests = 0;
    let cosigned = 0;
    let fire!: () => void;
    let fail!: (err: unknown) => void;
    const trigger = new Promise<void>((resolve, reject) => {
      fire = resolve;
      fail = reject;
    });
    // A client that sends checkpoint after checkpoint, several requests in flight (all but one get 409).
    let stop = false;
    let old = acked;
    const senders = Array.from({ length: 4 }, async (_, s) => {
      while (!stop) {
        const size = old + 1 + s;
        sent.add(size);
        let a;
        try {
          const request = addCheckpoint(w.url, old, await log.proof(old, size), await log.checkpoint(size));
          if (++requests === k && after === 'request') fire();
          a = await request;
        } catch {
          return; // killed under this request
        }
        if (a.status === 200) {
          cosignedTotal++;
          acked = Math.max(acked, size);
          old = size;
          if (++cosigned === k && after === 'cosignature') fire();
        } else if (a.status === 409) {
          old = parseTreeSize(a.text);
        } else {
          const err = new Error(`${a.status} ${a.text}`);
          fail(err);
          throw err;
        }
      }
    });
    // Senders that all stop before the event would leave the round waiting forever: that is a failure too.
    const done = Promise.all(senders).then(() => fail(new Error(`the senders stopped before ${after} ${k}`)), fail);
    try {
      await trigger;
    } finally {
      await w.kill9();
      stop = true;
      await done;
    }
    t.diagnostic(`round ${round}: killed right after ${after} ${k}`);
  }
  assert.ok(cosignedTotal >= rounds, `only ${cosignedTotal} cosignatures`);
  t.diagnostic(`${rounds} kills, ${cosignedTotal} cosignatures, last acknowledged size ${acked}`);
}));

test('add-checkpoint bodies: format and parse agree, and hostile ones are refused', async () => {
  const log = new SimulatedLog(signerKeyFromSeed('log.test/p', KEY_TYPE_ED25519, seed('p')), 'p');
  const note = await log.checkpoint(9);
  const proof = await log.proof(3, 9);
  const body = formatAddCheckpoint({ old: 3, proof, note });
  assert.deepEqual(parseAddCheckpoint(Buffer.from(body)), { old: 3, proof, note });
  assert.deepEqual(parseAddCheckpoint(Buffer.from(formatAddCheckpoint({ old: 0, proof: [], note }))), { old: 0, proof: [], note });
  for (const bad of ['old 3\n', 'old -1\n\nx', 'old 3 \n\nx', 'old 9007199254740993\n\nx', 'old 3\n\n', `old 3\n${'A'.repeat(44)}\n\nx`]) {
    assert.throws(() => parseAddCheckpoint(Buffer.from(bad)), { code: 'E_FORMAT' }, bad);
  }
  assert.throws(() => parseAddCheckpoint(Buffer.from([0x6f, 0x6c, 0x64, 0x20, 0xff, 0x0a])), { code: 'E_FORMAT' });
  assert.throws(() => parseAddCheckpoint(Buffer.alloc(300 * 1024, 0x20)), { code: 'E_FORMAT' });
  for (const bad of ['', '5', '05\n', '5\n\n', '-1\n', '99999999999999999\n']) assert.throws(() => parseTreeSize(bad), { code: 'E_FORMAT' });
  assert.equal(parseTreeSize('0\n'), 0);
});

test('fuzz: arbitrary and mutated add-checkpoint bodies are answered, never cosigned unless they say what was sent', (t) => withSeed(t, async (rng) => {
  const logKey = signerKeyFromSeed('fuzz.test/log', KEY_TYPE_ED25519, seed('fuzz log'));
  const witnessKey = signerKeyFromSeed('fuzz.test/w', KEY_TYPE_COSIGNATURE_V1, seed('fuzz w'));
  const log = new SimulatedLog(logKey, 'fuzz');
  const records = new Map<string, LogRecord>();
  const store = { atomically: <T>(fn: () => T) => fn(), get: (o: string) => records.get(o), put: (o: string, r: LogRecord) => void records.set(o, r) };
  const witness = new Witness({ key: witnessKey, logs: [logKey], store, clock: () => 1_800_000_000 });
  const first = formatAddCheckpoint({ old: 0, proof: [], note: await log.checkpoint(7) });
  assert.equal(witness.addCheckpoint(Buffer.from(first)).status, 200);
  const at7 = records.get(logKey.name)!;
  const valid = Buffer.from(formatAddCheckpoint({ old: 7, proof: await log.proof(7, 19), note: await log.checkpoint(19) }));
  const meaning = (body: Uint8Array) => {
    const r = parseAddCheckpoint(body);
    return JSON.stringify([r.old, r.proof.map((h) => Buffer.from(h).toString('hex')), parseNote(r.note).text]);
  };
  const wanted = meaning(valid);
  fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
    assert.notEqual(witness.addCheckpoint(bytes).status, 200);
  }), { numRuns: 300, seed: rng.next() | 0 });
  fc.assert(fc.property(fc.integer({ min: 0, max: valid.length - 1 }), fc.integer({ min: 1, max: 255 }), (at, xor) => {
    const mutated = Buffer.from(valid);
    mutated[at]! ^= xor;
    const answer = witness.addCheckpoint(mutated);
    assert.ok([200, 400, 403, 404, 409, 422].includes(answer.status), `status ${answer.status}`);
    if (answer.status === 200) {
      // Cosigned: then it must be the same request in another spelling (e.g. a signature line's name
      // changed into an unknown key's, which is ignored) — same old, proof and checkpoint text.
      assert.equal(meaning(mutated), wanted);
      records.set(logKey.name, at7); // back to 7 for the next run
    }
  }), { numRuns: 400, seed: rng.next() | 0 });
}));
