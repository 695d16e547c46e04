// Interop with Go's reference code: golang.org/x/mod/sumdb/note and sumdb/tlog, as Debian ships them
// (golang-go, golang-golang-x-mod-dev). The Go program test/interop/go/tlogcheck is compiled here, in
// GOPATH mode against /usr/share/gocode with no network, and run both ways:
//   verify:  Go checks our notes, checkpoints, cosignatures, tree hashes, proofs and tiles;
//   produce: Go makes keys, notes, a checkpoint, a tree, proofs and tiles, and our code checks them;
//   http:    Go reads a running `sourcemesh log serve` over HTTP (checkpoint, tiles through
//            tlog.TileHashReader, entry bundles) and checks it all.
// Any disagreement fails. Nothing is skipped: without Go the test fails and says what to install.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { formatCheckpoint, openCheckpoint } from '../../src/trust/checkpoint.ts';
import { CompactRange, type Hash, leafHash, proveConsistency, proveInclusion, splitStoredHashIndex, storedHashCount, storedHashIndex, treeHash, verifyConsistency, verifyInclusion } from '../../src/trust/merkle.ts';
import {
  createSigner, createVerifier, formatSignerKey, formatVerifierKey, KEY_TYPE_COSIGNATURE_V1, KEY_TYPE_ED25519, openNote,
  parseSignerKey, parseVerifierKey, signerKeyFromSeed, signNote, type SignerKey,
} from '../../src/trust/note.ts';
import { readTileData, TileHashReader, tilePath, treeTiles } from '../../src/trust/tiles.ts';
import { MemoryHashStore } from '../trust/reference-tree.ts';
import { add, http, ServerProcess, writeKey } from '../trust/log/servers.ts';

const here = fileURLToPath(new URL('.', import.meta.url));
const GO_SOURCE = join(here, 'go', 'tlogcheck');
const GOPATH = '/usr/share/gocode';
const INSTALL = 'apt-get install -y golang-go golang-golang-x-mod-dev';
const vectors = JSON.parse(readFileSync(join(here, '..', 'trust', 'vectors', 'trust-formats.json'), 'utf8'));

let workDir = '';
let binary = '';

function goEnv(): NodeJS.ProcessEnv {
  return {
    ...process.env,
    // GOPATH mode: imports come from Debian's /usr/share/gocode, never from a module proxy.
    GO111MODULE: 'off',
    GOPATH,
    GOFLAGS: '',
    GOPROXY: 'off',
    GOTOOLCHAIN: 'local',
    GOCACHE: process.env.GOCACHE ?? join(tmpdir(), 'sourcemesh-go-build-cache'),
  };
}

before(() => {
  const version = spawnSync('go', ['version'], { encoding: 'utf8' });
  if (version.error || version.status !== 0) {
    assert.fail(`the Go interop test needs Go: \`${INSTALL}\` (Debian packages; go was not found on PATH)`);
  }
  for (const pkg of ['note', 'tlog']) {
    if (!existsSync(join(GOPATH, 'src/golang.org/x/mod/sumdb', pkg))) {
      assert.fail(`the Go interop test needs golang.org/x/mod/sumdb/${pkg} in ${GOPATH}: \`${INSTALL}\``);
    }
  }
  workDir = mkdtempSync(join(tmpdir(), 'sourcemesh-interop-'));
  binary = join(workDir, 'tlogcheck');
  const build = spawnSync('go', ['build', '-o', binary, '.'], { cwd: GO_SOURCE, env: goEnv(), encoding: 'utf8' });
  assert.equal(build.status, 0, `go build of ${GO_SOURCE} failed (${INSTALL}):\n${build.stderr}${build.error ?? ''}`);
});

after(() => {
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

function runGo(mode: 'verify' | 'produce', input: unknown): any {
  const run = spawnSync(binary, [mode], { input: JSON.stringify(input), encoding: 'utf8', maxBuffer: 512 * 1024 * 1024 });
  assert.equal(run.status, 0, `tlogcheck ${mode} failed:\n${run.stderr}`);
  return JSON.parse(run.stdout);
}

/** Like runGo, without blocking this process's event loop (the Go side calls back into our server). */
function runGoAsync(mode: 'http', input: unknown): Promise<any> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, [mode], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`tlogcheck ${mode} failed (${code}):\n${err}`))));
    child.stdin.end(JSON.stringify(input));
  });
}

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');
const unb64 = (text: string): Buffer => Buffer.from(text, 'base64');
const seed = (label: string): Buffer => createHash('sha256').update(`sourcemesh interop seed: ${label}`).digest();
const key = (name: string, type: number = KEY_TYPE_ED25519): SignerKey => signerKeyFromSeed(name, type, seed(`${name}/${type}`));

/** A deterministic stream of pairs for sampling proofs. */
function* sample(count: number, max: number, label: string): Generator<[number, number]> {
  for (let i = 0; i < count; i++) {
    const d = createHash('sha256').update(`${label} ${i}`).digest();
    const a = 1 + (d.readUInt32BE(0) % max);
    const b = 1 + (d.readUInt32BE(4) % max);
    yield a <= b ? [a, b] : [b, a];
  }
}

function buildStore(leaves: readonly Uint8Array[]): MemoryHashStore {
  const store = new MemoryHashStore();
  for (const leaf of leaves) store.append(leaf);
  return store;
}

/** Roots of every prefix of the tree, by replaying the appends. */
function prefixRoots(leaves: readonly Uint8Array[], sizes: readonly number[]): Map<number, Hash> {
  const wanted = new Set(sizes);
  const roots = new Map<number, Hash>();
  const range = new CompactRange();
  for (const leaf of leaves) {
    range.append(leafHash(leaf));
    if (wanted.has(range.size)) roots.set(range.size, range.root());
  }
  return roots;
}

test('Go x/mod verifies our signed notes, checkpoints, cosignatures, tree hashes, proofs and tiles', async () => {
  const log = key('sourcemesh.example/log');
  const releaseA = key('sourcemesh.example/release-a');
  const releaseB = key('rélease.example/ünïcode');
  const stranger = key('sourcemesh.example/release-a-other');
  // Same name as releaseA, another key: its signatures must be ignored as unknown, by Go and by us.
  const impostor = signerKeyFromSeed('sourcemesh.example/release-a', KEY_TYPE_ED25519, seed('impostor'));
  const w1 = key('witness.example/w1', KEY_TYPE_COSIGNATURE_V1);
  const w2 = key('witness.example/w2', KEY_TYPE_COSIGNATURE_V1);
  const vk = (k: SignerKey) => formatVerifierKey(k);

  // --- notes
  const texts = [
    'hello\n',
    '\n',
    'two\nlines\n',
    'a blank line\n\ninside the text\n',
    'a trailing blank line\n\n',
    'Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned è subito sera.\n',
    `sourcemesh.release/v1\nname live-bootstrap\nversion 1.0\nsha256 ${'ab'.repeat(32)}\n`,
    `${'long line '.repeat(2000)}\n`,
    '— a text line that looks like a signature\n',
  ];
  const notes: unknown[] = [];
  const badNotes: unknown[] = [];
  texts.forEach((text, i) => {
    const signers = i % 2 === 0 ? [releaseA] : [releaseA, releaseB];
    const note = signNote(text, [...signers, impostor, stranger].map((k) => createSigner(k)));
    // Our own verifier agrees first.
    const opened = openNote(note, signers.map((k) => createVerifier(k)));
    assert.equal(opened.text, text);
    notes.push({ name: `text ${i}`, vkeys: signers.map(vk), note, text, signers: signers.map((k) => k.name) });
    // Tampered text: both sides must refuse.
    const tampered = note.replace(text, text.length > 1 ? `X${text.slice(1)}` : 'X\n');
    assert.throws(() => openNote(tampered, signers.map((k) => createVerifier(k))), { code: 'E_SIGNATURE' });
    badNotes.push({ name: `tampered ${i}`, vkeys: signers.map(vk), note: tampered });
    // Signed only by keys the verifier does not know.
    const unknownOnly = signNote(text, [createSigner(impostor), createSigner(stranger)]);
    assert.throws(() => openNote(unknownOnly, [createVerifier(releaseA)]), { code: 'E_SIGNATURE' });
    badNotes.push({ name: `unknown signers ${i}`, vkeys: [vk(releaseA)], note: unknownOnly });
  });
  for (const v of [vectors.signedNote.specVkeyExample, vectors.signedNote.goPackageExample]) {
    notes.push({ name: v.provenance, vkeys: [v.vkey], note: v.note, text: v.text, signers: [parseVerifierKey(v.vkey).name] });
  }

  // --- trees: a large one, and the classic eight-leaf test tree
  const SIZE = 70_000;
  const leaves: Uint8Array[] = [];
  for (let i = 0; i < SIZE; i++) leaves.push(Buffer.from(i % 97 === 0 ? '' : `sourcemesh leaf ${i}${'.'.repeat(i % 13)}`));
  const store = buildStore(leaves);
  const rootSizes = [...Array.from({ length: 300 }, (_, i) => i + 1), 511, 512, 513, 1000, 1024, 4095, 4096, 65535, 65536, 65537, SIZE];
  const inclusionCases: Array<[number, number]> = [];
  const consistencyCases: Array<[number, number]> = [];
  for (let size = 1; size <= 64; size++) {
    for (let i = 0; i < size; i++) inclusionCases.push([i, size]);
    for (let old = 1; old <= size; old++) consistencyCases.push([old, size]);
  }
  for (const [a, b] of sample(400, SIZE, 'inclusion')) inclusionCases.push([a - 1, b]);
  for (const [a, b] of sample(400, SIZE, 'consistency')) consistencyCases.push([a, b]);
  const allSizes = [...new Set([...rootSizes, ...inclusionCases.map(([, s]) => s), ...consistencyCases.flat()])];
  const roots = prefixRoots(leaves, allSizes);
  for (const size of [1, 2, 3, 300, 65537, SIZE]) assert.deepEqual(await treeHash(size, store), roots.get(size));
  const inclusion = [];
  for (const [index, size] of inclusionCases) {
    const proof = await proveInclusion(index, size, store);
    verifyInclusion(index, size, leafHash(leaves[index]!), proof, roots.get(size)!);
    inclusion.push({ index, size, proof: proof.map(b64) });
  }
  const consistency = [];
  for (const [old, size] of consistencyCases) {
    const proof = await proveConsistency(old, size, store);
    verifyConsistency(old, size, roots.get(old)!, roots.get(size)!, proof);
    consistency.push({ old, new: size, proof: proof.map(b64) });
  }
  const trees = [{
    leaves: leaves.map(b64),
    roots: [...roots].map(([size, root]) => ({ size, root: b64(root) })),
    inclusion,
    consistency,
  }];
  const ct = vectors.merkle.ctTestTree;
  const ctLeaves: Buffer[] = ct.leavesHex.map((h: string) => Buffer.from(h, 'hex'));
  const ctStore = buildStore(ctLeaves);
  const ctInclusion = [];
  const ctConsistency = [];
  for (let size = 1; size <= 8; size++) {
    for (let i = 0; i < size; i++) ctInclusion.push({ index: i, size, proof: (await proveInclusion(i, size, ctStore)).map(b64) });
    for (let old = 1; old <= size; old++) ctConsistency.push({ old, new: size, proof: (await proveConsistency(old, size, ctStore)).map(b64) });
  }
  trees.push({
    leaves: ctLeaves.map(b64),
    roots: ct.rootsHex.map((h: string, i: number) => ({ size: i + 1, root: b64(Buffer.from(h, 'hex')) })),
    inclusion: ctInclusion,
    consistency: ctConsistency,
  });

  // --- checkpoints (signed by the log under its origin), and cosigned ones
  const checkpoints = [];
  const cosigned = [];
  for (const size of [1, 2, 7, 256, 300, 65536, SIZE]) {
    const extensions = size === 7 ? ['an extension line', 'another — with unicode'] : [];
    const text = formatCheckpoint({ origin: log.name, size, rootHash: roots.get(size)!, extensions });
    const note = signNote(text, [createSigner(log)]);
    const opened = openCheckpoint(note, [createVerifier(log)]);
    assert.equal(opened.checkpoint.size, size);
    checkpoints.push({ vkey: vk(log), note, origin: log.name, size, root: b64(roots.get(size)!), extensions });
    const t1 = 1_700_000_000 + size;
    const t2 = 1_800_000_000 + size;
    const withCosignatures = signNote(text, [createSigner(w1, { clock: () => t1 }), createSigner(w2, { clock: () => t2 })], opened.note.signatures);
    const again = openCheckpoint(withCosignatures, [createVerifier(log), createVerifier(w1), createVerifier(w2)]);
    assert.deepEqual(again.note.verified.map((s) => s.timestamp), [undefined, t1, t2]);
    cosigned.push({
      logVkey: vk(log),
      cosigners: [w1, w2].map((w) => ({ name: w.name, keyId: w.keyId, publicKey: b64(w.publicKey), vkey: vk(w) })),
      note: withCosignatures,
      timestamps: [t1, t2],
    });
  }

  // --- tiles for trees at and around tile boundaries
  const tiles = [];
  for (const size of [1, 255, 256, 257, 511, 513, 65535, 65536, 65537, SIZE]) {
    const files: Record<string, string> = {};
    for (const tile of treeTiles(size)) files[tilePath(tile)] = b64(await readTileData(tile, store));
    const reader = new TileHashReader(size, (tile) => unb64(files[tilePath(tile)] ?? assert.fail(`no tile ${tilePath(tile)}`)));
    assert.deepEqual(await treeHash(size, reader), roots.get(size) ?? (await treeHash(size, store)));
    const tileInclusion = [];
    for (const [a] of sample(40, size, `tile inclusion ${size}`)) {
      const proof = await proveInclusion(a - 1, size, reader);
      assert.deepEqual(proof, await proveInclusion(a - 1, size, store));
      tileInclusion.push({ index: a - 1, size, proof: proof.map(b64) });
    }
    const tileConsistency = [];
    const oldRoots = [];
    for (const [a] of sample(20, size, `tile consistency ${size}`)) {
      const proof = await proveConsistency(a, size, reader);
      assert.deepEqual(proof, await proveConsistency(a, size, store));
      tileConsistency.push({ old: a, new: size, proof: proof.map(b64) });
      oldRoots.push({ size: a, root: b64(await treeHash(a, store)) });
    }
    tiles.push({ size, root: b64(await treeHash(size, store)), tiles: files, inclusion: tileInclusion, consistency: tileConsistency, oldRoots });
  }

  const report = runGo('verify', { notes, badNotes, checkpoints, cosigned, trees, tiles });
  assert.deepEqual(report.failures ?? [], [], `Go disagrees with us (${report.failures?.length} failures of ${report.checks} checks)`);
  // Guard against a Go side that silently checked nothing.
  assert.ok(report.checks > 15_000, `Go ran only ${report.checks} checks`);
});

test('we accept what Go x/mod produces: keys, signed notes, a checkpoint, tree hashes, proofs and tiles', async () => {
  const SIZE = 70_000;
  const texts = ['hello from Go\n', 'two\nlines\n', 'with\n\nblank line\n', 'unicode: è — ü\n', '\n'];
  const inclusionCases: number[][] = [];
  const consistencyCases: number[][] = [];
  for (let size = 1; size <= 40; size++) {
    for (let i = 0; i < size; i++) inclusionCases.push([i, size]);
    for (let old = 1; old <= size; old++) consistencyCases.push([old, size]);
  }
  for (const [a, b] of sample(300, SIZE, 'go inclusion')) inclusionCases.push([a - 1, b]);
  for (const [a, b] of sample(300, SIZE, 'go consistency')) consistencyCases.push([a, b]);
  const rootSizes = [...new Set([...inclusionCases.map(([, s]) => s!), ...consistencyCases.flat(), SIZE])];
  const out = runGo('produce', { size: SIZE, rootSizes, inclusion: inclusionCases, consistency: consistencyCases, texts });

  // Keys: our parser reads Go's signer keys, derives Go's vkeys, and writes both back byte for byte.
  const keys = [...out.keys, out.unknown].map((k: { skey: string; vkey: string }) => {
    const signer = parseSignerKey(k.skey);
    assert.equal(formatVerifierKey(signer), k.vkey);
    assert.equal(formatSignerKey(signer), k.skey);
    const v = parseVerifierKey(k.vkey);
    assert.deepEqual(v.publicKey, signer.publicKey);
    return signer;
  });
  const unknown = keys.at(-1)!;
  const known = keys.slice(0, -1);
  const verifiers = known.map((k) => createVerifier(parseVerifierKey(formatVerifierKey(k))));

  // Notes: verified with the known keys; the extra signature (same name as a known key, another key) ignored.
  for (const n of out.notes) {
    const opened = openNote(n.note, verifiers);
    assert.equal(opened.text, n.text);
    assert.deepEqual(opened.verified.map((s) => s.name).sort(), [...n.signers].sort());
    assert.equal(opened.unknown.length, 1);
    assert.equal(opened.unknown[0]!.keyId, unknown.keyId);
    // Ed25519 is deterministic: signing the same text with the same keys gives Go's bytes exactly.
    const signers = [...n.signers.map((name: string) => known.find((k) => k.name === name)!), unknown];
    assert.equal(signNote(n.text, signers.map((k) => createSigner(k))), n.note);
    // One more character in the text, and Go's note is refused.
    assert.throws(() => openNote(`Z${n.note}`, verifiers), { code: 'E_SIGNATURE' });
  }

  // The tree: our roots, proofs and stored hash numbering match Go's.
  const leaves: Buffer[] = out.leaves.map(unb64);
  const store = buildStore(leaves);
  const roots = new Map<number, Hash>();
  for (const r of out.roots) {
    const root = unb64(r.root);
    roots.set(r.size, root);
    assert.deepEqual(Buffer.from(await treeHash(r.size, store)), root, `root of size ${r.size}`);
  }
  for (const c of out.inclusion) {
    const proof = c.proof.map(unb64);
    verifyInclusion(c.index, c.size, leafHash(leaves[c.index]!), proof, roots.get(c.size)!);
    assert.deepEqual((await proveInclusion(c.index, c.size, store)).map(b64), c.proof);
  }
  for (const c of out.consistency) {
    const proof = c.proof.map(unb64);
    verifyConsistency(c.old, c.new, roots.get(c.old)!, roots.get(c.new)!, proof);
    assert.deepEqual((await proveConsistency(c.old, c.new, store)).map(b64), c.proof);
  }
  assert.equal(storedHashCount(SIZE), out.storedCount);
  for (const [level, n, index] of out.indexes) {
    assert.equal(storedHashIndex(level, n), index, `stored hash index of level ${level} node ${n}`);
    assert.deepEqual(splitStoredHashIndex(index), { level, n });
  }

  // The checkpoint Go signed (C2SP layout written by hand in Go) opens and parses here.
  const cp = openCheckpoint(out.checkpoint.note, verifiers);
  assert.equal(cp.checkpoint.origin, 'go.example/log');
  assert.equal(cp.checkpoint.size, SIZE);
  assert.deepEqual(Buffer.from(cp.checkpoint.rootHash), roots.get(SIZE));
  assert.equal(formatCheckpoint(cp.checkpoint), out.checkpoint.text);

  // Tiles: Go's tiles are the ones we write, byte for byte, and our TileHashReader reads Go's.
  const ours = new Map<string, string>();
  for (const tile of treeTiles(SIZE)) ours.set(tilePath(tile), b64(await readTileData(tile, store)));
  assert.deepEqual([...ours.keys()].sort(), Object.keys(out.tiles).sort());
  for (const [path, data] of ours) assert.equal(out.tiles[path], data, `tile ${path}`);
  const reader = new TileHashReader(SIZE, (tile) => unb64(out.tiles[tilePath(tile)]));
  assert.deepEqual(Buffer.from(await treeHash(SIZE, reader)), roots.get(SIZE));
  for (const c of out.inclusion.filter((c: { size: number }) => c.size === SIZE).slice(0, 20)) {
    assert.deepEqual((await proveInclusion(c.index, SIZE, reader)).map(b64), c.proof);
  }
});

test('Go x/mod reads a running sourcemesh log over HTTP: checkpoint, tiles through tlog.TileHashReader, entry bundles', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sourcemesh-interop-log-'));
  const logKey = await writeKey(dir, 'interop.sourcemesh.example/log');
  // A log that takes any bytes (--admit-unsigned): what is checked here is the tiles, for entries of every size down to empty.
  const log = await ServerProcess.start(['log', 'serve', '--root', join(dir, 'log'), '--key', logKey.file, '--listen', '127.0.0.1:0', '--checkpoint-interval', '100ms', '--admit-unsigned', '--add-rate', '0']);
  try {
    // 66,000 entries: full and partial tiles at levels 0 and 1, and a level-2 tile (256^2 = 65,536).
    const SIZE = 66_000;
    const oldTrees = new Map<number, string>();
    let next = 0;
    let done = false;
    const watcher = (async () => {
      while (!done) {
        const a = await http('GET', `${log.url}/checkpoint`);
        if (a.status === 200) {
          const [, size, root] = a.text.split('\n');
          if (Number(size) > 0) oldTrees.set(Number(size), root!);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    await Promise.all(Array.from({ length: 128 }, async () => {
      while (next < SIZE) {
        const i = next++;
        // One empty entry: the log answers a repeated entry with the index it has.
        await add(log.url, i === 0 ? '' : `interop entry ${i}${'.'.repeat(i % 11)}`);
      }
    }));
    for (;;) {
      const a = await http('GET', `${log.url}/checkpoint`);
      if (a.status === 200 && Number(a.text.split('\n')[1]) === SIZE) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    done = true;
    await watcher;
    const samples = [0, 1, 255, 256, 65_535, 65_536, SIZE - 1, ...Array.from({ length: 40 }, (_, i) => (i * 1_609) % SIZE)];
    const report = await runGoAsync('http', {
      url: log.url,
      vkey: logKey.vkey,
      samples,
      oldTrees: [...oldTrees].filter(([size]) => size < SIZE).slice(0, 30).map(([size, root]) => ({ size, root })),
    });
    assert.deepEqual(report.failures ?? [], [], `Go disagrees with our log server (${report.failures?.length} failures of ${report.checks} checks)`);
    // Every entry checked against its tile, every tile against Go's own, the samples and old trees proved.
    assert.ok(report.checks > SIZE + 260 + samples.length, `Go ran only ${report.checks} checks`);
    assert.ok(oldTrees.size > 2, 'no intermediate checkpoints to prove consistency from');
  } finally {
    await log.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
