// Hostile repositories: corrupt packs and indexes, bad deltas, cycles, absurd sizes, tree entries that would
// escape an extraction, bad revisions and prefixes. Each must end in a SourcemeshError with a stable code
// (never a RangeError, a crash or a tar with different bytes), and the fuzz cases check that whatever the
// damage, nothing but a SourcemeshError comes out.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import fc from 'fast-check';
import { isSourcemeshError, SourcemeshError } from '../../src/errors.ts';
import { commitAll, git, gitArchive, gitText, initRepo, makeRepo, ourArchive, tempRoot, writeFiles } from './git-fixture.ts';
import { commitBytes, deltaHeader, objectId, treeBytes, TYPES, writeLoose, writePack, type RawEntry } from './pack-builder.ts';
import type { ArchiveTarOptions } from '../../src/archive/index.ts';
import { useReusedHandle } from '../../src/archive/git/inflate.ts';
import zlib from 'node:zlib';

const root = tempRoot();
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const repoDir = (name: string) => path.join(root, `${n++}-${name}`);

async function expectCode(opts: ArchiveTarOptions, code: string, message?: RegExp): Promise<SourcemeshError> {
  let caught: unknown;
  try {
    await ourArchive(opts);
  } catch (err) {
    caught = err;
  }
  assert.ok(isSourcemeshError(caught), `expected a SourcemeshError ${code}, got ${caught instanceof Error ? `${caught.name}: ${caught.message}` : String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  if (message) assert.match(caught.message, message);
  return caught;
}

/** A bare repository whose refs/heads/main points at a commit of `tree` (all objects written loose). */
function bareWithTree(name: string, tree: Buffer, extra: (objects: string) => void = () => {}): string {
  const dir = repoDir(name);
  initRepo(dir, true);
  const objects = path.join(dir, 'objects');
  const treeId = objectId('tree', tree);
  writeLoose(objects, treeId, 'tree', tree);
  const commit = commitBytes(treeId);
  const commitId = objectId('commit', commit);
  writeLoose(objects, commitId, 'commit', commit);
  writeFileSync(path.join(dir, 'refs', 'heads', 'main'), `${commitId}\n`);
  extra(objects);
  return dir;
}

const BLOB = Buffer.from('content\n');
const BLOB_ID = objectId('blob', BLOB);

function withBlob(objects: string): void {
  writeLoose(objects, BLOB_ID, 'blob', BLOB);
}

describe('hostile trees', () => {
  for (const [label, name] of [['..', '..'], ['.', '.'], ['.git', '.git'], ['.GIT', '.GIT'], ['".git. "', '.git. '], ['GIT~1', 'GIT~1'], ['a slash', 'a/b'], ['an absolute path', '/etc/passwd'], ['an empty name', '']] as const) {
    test(`a tree entry named ${label} is E_ARCHIVE naming the tree`, async () => {
      const tree = treeBytes([['100644', name, BLOB_ID]]);
      const dir = bareWithTree('bad-name', tree, withBlob);
      await expectCode({ repoPath: dir, ref: 'main', prefix: 'P/' }, 'E_ARCHIVE', new RegExp(objectId('tree', tree)));
    });
  }

  test('a NUL inside a name, unsorted entries, duplicates, bad modes and truncation are E_ARCHIVE', async () => {
    const cases: Buffer[] = [
      Buffer.concat([Buffer.from('100644 a\0b\0'), Buffer.from(BLOB_ID, 'hex')]),
      treeBytes([['100644', 'b', BLOB_ID], ['100644', 'a', BLOB_ID]]),
      treeBytes([['100644', 'a', BLOB_ID], ['100644', 'a', BLOB_ID]]),
      treeBytes([['100644', 'a', BLOB_ID], ['40000', 'a', objectId('tree', Buffer.alloc(0))]]),
      treeBytes([['170000', 'a', BLOB_ID]]),
      treeBytes([['10a644', 'a', BLOB_ID]]),
      treeBytes([[' 100644', 'a', BLOB_ID]]),
      treeBytes([['100644', 'a', BLOB_ID]]).subarray(0, 20),
      Buffer.from('100644 no-nul-and-no-id'),
    ];
    for (const tree of cases) {
      const dir = bareWithTree('bad-tree', tree, (o) => {
        withBlob(o);
        writeLoose(o, objectId('tree', Buffer.alloc(0)), 'tree', Buffer.alloc(0));
      });
      await expectCode({ repoPath: dir, ref: 'main' }, 'E_ARCHIVE');
    }
  });

  test('a tree that contains itself (an object not matching its id) hits the depth bound', async () => {
    const fake = '1'.repeat(40);
    const dir = bareWithTree('cycle', treeBytes([['40000', 'loop', fake]]), (o) => {
      writeLoose(o, fake, 'tree', treeBytes([['100644', 'f', BLOB_ID], ['40000', 'loop', fake]]));
      withBlob(o);
    });
    await expectCode({ repoPath: dir, ref: 'main', limits: { gitTreeDepth: 40 } }, 'E_ARCHIVE', /deeper than 40/);
  });

  test('missing objects, a blob where a tree should be, over-long symlink targets and paths, too many entries', async () => {
    await expectCode({ repoPath: bareWithTree('missing', treeBytes([['100644', 'a', BLOB_ID]])), ref: 'main' }, 'E_ARCHIVE', /missing/);
    await expectCode({ repoPath: bareWithTree('blob-as-tree', treeBytes([['40000', 'a', BLOB_ID]]), withBlob), ref: 'main' }, 'E_ARCHIVE', /expected a tree/);
    const target = Buffer.from('t'.repeat(300));
    const linkDir = bareWithTree('long-link', treeBytes([['120000', 'l', objectId('blob', target)]]), (o) => writeLoose(o, objectId('blob', target), 'blob', target));
    await expectCode({ repoPath: linkDir, ref: 'main', limits: { gitPathBytes: 200 } }, 'E_ARCHIVE', /symlink target/);
    await expectCode({ repoPath: bareWithTree('long-path', treeBytes([['100644', 'x'.repeat(250), BLOB_ID]]), withBlob), ref: 'main', limits: { gitPathBytes: 200 } }, 'E_ARCHIVE', /longer than/);
    const many = treeBytes(Array.from({ length: 20 }, (_, i) => ['100644', `f${String(i).padStart(3, '0')}`, BLOB_ID] as [string, string, string]));
    await expectCode({ repoPath: bareWithTree('many', many, withBlob), ref: 'main', limits: { gitTreeEntries: 10 } }, 'E_ARCHIVE', /more than 10 entries/);
  });
});

describe('hostile loose objects', () => {
  test('absurd or lying sizes, malformed headers and corrupt zlib data are E_ARCHIVE', async () => {
    const cases: ((o: string) => void)[] = [
      (o) => writeLoose(o, BLOB_ID, 'blob', BLOB, 2 ** 50),
      (o) => writeLoose(o, BLOB_ID, 'blob', BLOB, 3),
      (o) => writeLoose(o, BLOB_ID, 'blob', BLOB, 3_000_000_000),
      (o) => writeLoose(o, BLOB_ID, 'blob', BLOB, 100),
      (o) => writeLoose(o, BLOB_ID, 'blub', BLOB),
      (o) => writeLoose(o, BLOB_ID, 'tree', BLOB),
      (o) => { writeLoose(o, BLOB_ID, 'blob', BLOB); const f = path.join(o, BLOB_ID.slice(0, 2), BLOB_ID.slice(2)); writeFileSync(f, readFileSync(f).subarray(0, 10)); },
      (o) => { mkdirSync(path.join(o, BLOB_ID.slice(0, 2)), { recursive: true }); writeFileSync(path.join(o, BLOB_ID.slice(0, 2), BLOB_ID.slice(2)), 'not zlib at all'); },
      (o) => { mkdirSync(path.join(o, BLOB_ID.slice(0, 2)), { recursive: true }); writeFileSync(path.join(o, BLOB_ID.slice(0, 2), BLOB_ID.slice(2)), ''); },
    ];
    const raw = (bytes: Buffer) => (o: string) => { mkdirSync(path.join(o, BLOB_ID.slice(0, 2)), { recursive: true }); writeFileSync(path.join(o, BLOB_ID.slice(0, 2), BLOB_ID.slice(2)), bytes); };
    const long = Buffer.concat([Buffer.from('blob 2000\0'), Buffer.alloc(2000, 'z')]);
    cases.push(
      // No NUL within the longest header there can be.
      raw(zlib.deflateSync(Buffer.from(`blob ${'1'.repeat(40)}\0x`))),
      // Cut after the header (the content never ends), and cut inside the header.
      raw(zlib.deflateSync(long, { level: 0 }).subarray(0, 40)),
      raw(zlib.deflateSync(long, { level: 0 }).subarray(0, 8)),
      // A wrong checksum at the end of the stream.
      raw((() => { const z = zlib.deflateSync(long); z[z.length - 1] = z[z.length - 1]! ^ 1; return z; })()),
    );
    // On the reused zlib handle (issue 14) and through Node's public API; a good archive after each failure.
    for (const reused of [null, false] as const) {
      useReusedHandle(reused);
      try {
        for (const make of cases) {
          const dir = bareWithTree('loose', treeBytes([['100644', 'a', BLOB_ID]]), make);
          await expectCode({ repoPath: dir, ref: 'main' }, 'E_ARCHIVE');
          const good = bareWithTree('loose-good', treeBytes([['100644', 'a', BLOB_ID]]), withBlob);
          assert.ok(tarEquals(await ourArchive({ repoPath: good, ref: 'main' }), gitArchive(good, 'main')));
        }
      } finally {
        useReusedHandle(null);
      }
    }
  });
});

describe('hostile packs', () => {
  const base = Buffer.from('0123456789abcdef'.repeat(4));
  const baseId = objectId('blob', base);
  const resultId = 'a'.repeat(40);

  function packRepo(name: string, entries: RawEntry[], blobId = resultId): string {
    return bareWithTree(name, treeBytes([['100644', 'f', blobId]]), (o) => writePack(o, entries));
  }
  const copy = (offset: number, size: number) => Buffer.from([0x80 | 0x01 | 0x10, offset & 0xff, size & 0xff]);

  test('a good hand-made pack reads (the builder is right)', async () => {
    const delta = Buffer.concat([deltaHeader(64, 20), copy(0, 10), Buffer.from([10]), Buffer.from('ABCDEFGHIJ')]);
    const result = Buffer.concat([base.subarray(0, 10), Buffer.from('ABCDEFGHIJ')]);
    const dir = packRepo('good', [
      { oid: baseId, type: TYPES.blob, payload: base },
      { oid: objectId('blob', result), type: TYPES.ofsDelta, ofsBase: 0, payload: delta },
    ], objectId('blob', result));
    const tar = await ourArchive({ repoPath: dir, ref: 'main' });
    assert.ok(tar.includes(result));
    assert.ok(tarEquals(tar, gitArchive(dir, 'main')));
  });

  const badDeltas: [string, Buffer, RegExp][] = [
    ['copy out of range', Buffer.concat([deltaHeader(64, 20), copy(60, 20)]), /out of a 64-byte base/],
    ['base size mismatch', Buffer.concat([deltaHeader(65, 4), copy(0, 4)]), /expects a base of 65/],
    ['result larger than declared', Buffer.concat([deltaHeader(64, 4), copy(0, 8)]), /past its declared size/],
    ['result smaller than declared', Buffer.concat([deltaHeader(64, 40), copy(0, 8)]), /declares 40/],
    ['reserved opcode 0', Buffer.concat([deltaHeader(64, 4), Buffer.from([0])]), /reserved/],
    ['truncated copy', Buffer.concat([deltaHeader(64, 4), Buffer.from([0x91, 0])]), /truncated/],
    ['insert past the end', Buffer.concat([deltaHeader(64, 4), Buffer.from([4, 0x41])]), /past the end/],
    ['truncated header', Buffer.from([0x80]), /truncated/],
  ];
  for (const [label, delta, message] of badDeltas) {
    for (const kind of ['ofs', 'ref'] as const) {
      test(`bad delta (${kind}): ${label}`, async () => {
        const entries: RawEntry[] = [
          { oid: baseId, type: TYPES.blob, payload: base },
          kind === 'ofs' ? { oid: resultId, type: TYPES.ofsDelta, ofsBase: 0, payload: delta } : { oid: resultId, type: TYPES.refDelta, refBase: baseId, payload: delta },
        ];
        await expectCode({ repoPath: packRepo('bad-delta', entries), ref: 'main' }, 'E_ARCHIVE', message);
      });
    }
  }

  test('REF_DELTA cycles, missing bases, bases before the pack, invalid types, absurd sizes, corrupt zlib', async () => {
    const d = Buffer.concat([deltaHeader(64, 4), copy(0, 4)]);
    const other = 'b'.repeat(40);
    await expectCode({ repoPath: packRepo('cycle', [{ oid: resultId, type: TYPES.refDelta, refBase: other, payload: d }, { oid: other, type: TYPES.refDelta, refBase: resultId, payload: d }]), ref: 'main' }, 'E_ARCHIVE', /loops/);
    await expectCode({ repoPath: packRepo('self', [{ oid: resultId, type: TYPES.refDelta, refBase: resultId, payload: d }]), ref: 'main' }, 'E_ARCHIVE', /loops/);
    await expectCode({ repoPath: packRepo('no-base', [{ oid: resultId, type: TYPES.refDelta, refBase: other, payload: d }]), ref: 'main' }, 'E_ARCHIVE', /missing/);
    await expectCode({ repoPath: packRepo('deep', [
      { oid: baseId, type: TYPES.blob, payload: base },
      { oid: 'c'.repeat(40), type: TYPES.ofsDelta, ofsBase: 0, payload: Buffer.concat([deltaHeader(64, 64), copy(0, 64)]) },
      { oid: resultId, type: TYPES.ofsDelta, ofsBase: 1, payload: Buffer.concat([deltaHeader(64, 64), copy(0, 64)]) },
    ]), ref: 'main', limits: { gitDeltaDepth: 1 } }, 'E_ARCHIVE', /deeper than 1/);
    await expectCode({ repoPath: packRepo('type5', [{ oid: resultId, type: 5, payload: base }]), ref: 'main' }, 'E_ARCHIVE', /invalid object type/);
    await expectCode({ repoPath: packRepo('huge', [{ oid: resultId, type: TYPES.blob, payload: base, declaredSize: 2 ** 45 }]), ref: 'main' }, 'E_ARCHIVE', /exceeds the limit/);
    await expectCode({ repoPath: packRepo('lying', [{ oid: resultId, type: TYPES.blob, payload: base, declaredSize: 10 }]), ref: 'main' }, 'E_ARCHIVE', /declared/);
    await expectCode({ repoPath: packRepo('lying-big', [{ oid: resultId, type: TYPES.blob, payload: base, declaredSize: 40_000_000 }]), ref: 'main' }, 'E_ARCHIVE', /declared/);
    await expectCode({ repoPath: packRepo('zlib', [{ oid: resultId, type: TYPES.blob, payload: base, rawData: Buffer.from('definitely not zlib data') }]), ref: 'main' }, 'E_ARCHIVE', /zlib/);
    // The same through the public zlib API, and a good archive right after a failure (the handle is renewed).
    useReusedHandle(false);
    try {
      await expectCode({ repoPath: packRepo('zlib-public', [{ oid: resultId, type: TYPES.blob, payload: base, rawData: Buffer.from('definitely not zlib data') }]), ref: 'main' }, 'E_ARCHIVE', /zlib/);
      await expectCode({ repoPath: packRepo('lying-public', [{ oid: resultId, type: TYPES.blob, payload: base, declaredSize: 10 }]), ref: 'main' }, 'E_ARCHIVE', /declared/);
    } finally {
      useReusedHandle(null);
    }
    const truncated = zlib.deflateSync(base).subarray(0, 20);
    await expectCode({ repoPath: packRepo('zlib-truncated', [{ oid: resultId, type: TYPES.blob, payload: base, rawData: truncated }]), ref: 'main' }, 'E_ARCHIVE', /zlib/);
    const ok = repoDir('after-failure');
    makeRepo(ok, { 'a.txt': 'fine\n'.repeat(100) });
    git(ok, ['gc', '-q']);
    assert.ok((await ourArchive({ repoPath: ok, ref: 'HEAD' })).equals(gitArchive(ok, 'HEAD')));
    // A tree object whose declared size is absurd is refused before allocating.
    const t = 'd'.repeat(40);
    const dir = repoDir('huge-tree');
    initRepo(dir, true);
    const commit = commitBytes(t);
    writeLoose(path.join(dir, 'objects'), objectId('commit', commit), 'commit', commit);
    writePack(path.join(dir, 'objects'), [{ oid: t, type: TYPES.tree, payload: Buffer.alloc(10), declaredSize: 2 ** 40 }]);
    writeFileSync(path.join(dir, 'refs', 'heads', 'main'), objectId('commit', commit));
    await expectCode({ repoPath: dir, ref: 'main' }, 'E_ARCHIVE', /exceeds the limit/);
  });

  test('OFS_DELTA distances pointing before the pack, and 64-bit offsets past the table', async () => {
    // Write a valid pack, then patch the distance byte of the delta entry.
    const d = Buffer.concat([deltaHeader(64, 4), copy(0, 4)]);
    const dir = packRepo('ofs-before', [{ oid: baseId, type: TYPES.blob, payload: base }, { oid: resultId, type: TYPES.ofsDelta, ofsBase: 0, payload: d }]);
    const packDir = path.join(dir, 'objects', 'pack');
    const pack = path.join(packDir, readdirSync(packDir).find((f) => f.endsWith('.pack'))!);
    const bytes = readFileSync(pack);
    const idxFile = pack.replace(/\.pack$/, '.idx');
    const idx = readFileSync(idxFile);
    // Find the delta entry: the offset table lists both; the larger offset is the delta.
    const count = 2;
    const offAt = 8 + 1024 + count * 24;
    const offsets = [idx.readUInt32BE(offAt), idx.readUInt32BE(offAt + 4)];
    const deltaAt = Math.max(...offsets);
    let p = deltaAt;
    while (bytes[p]! & 0x80) p++;
    bytes[p + 1] = 0x7f; // distance 127 > offset
    writeFileSync(pack, bytes);
    await expectCode({ repoPath: dir, ref: 'main' }, 'E_ARCHIVE', /outside the pack/);
    // An offset with the high bit set but no 64-bit table.
    idx.writeUInt32BE(0x80000005, offAt);
    const body = idx.subarray(0, idx.length - 20);
    createHash('sha1').update(body).digest().copy(idx, idx.length - 20);
    writeFileSync(idxFile, idx);
    await expectCode({ repoPath: dir, ref: 'main' }, 'E_ARCHIVE');
  });

  test('a pack flipped in the middle, truncated, or disagreeing with its index; a corrupt index', async () => {
    const make = () => {
      const dir = repoDir('flip');
      makeRepo(dir, { 'a.txt': 'x'.repeat(5000), 'b.txt': 'hello world\n'.repeat(300) });
      git(dir, ['repack', '-adq']);
      const packDir = path.join(dir, '.git', 'objects', 'pack');
      const pack = path.join(packDir, readdirSync(packDir).find((f) => f.endsWith('.pack'))!);
      return { dir, pack, idx: pack.replace(/\.pack$/, '.idx') };
    };
    {
      const { dir, pack } = make();
      const b = readFileSync(pack);
      for (let i = 40; i < b.length - 40; i += 7) b[i] ^= 0x55;
      writeFileSync(pack, b);
      await expectCode({ repoPath: dir, ref: 'HEAD' }, 'E_ARCHIVE');
    }
    {
      const { dir, pack } = make();
      writeFileSync(pack, readFileSync(pack).subarray(0, 100));
      await expectCode({ repoPath: dir, ref: 'HEAD' }, 'E_ARCHIVE');
    }
    {
      const { dir, idx } = make();
      const b = readFileSync(idx);
      b[b.length - 1] ^= 1;
      writeFileSync(idx, b);
      await expectCode({ repoPath: dir, ref: 'HEAD' }, 'E_ARCHIVE', /checksum/);
    }
    {
      const { dir, idx } = make();
      writeFileSync(idx, readFileSync(idx).subarray(0, 1000));
      await expectCode({ repoPath: dir, ref: 'HEAD' }, 'E_ARCHIVE');
    }
  });
});

describe('fuzzed repositories never fail with anything but a SourcemeshError', () => {
  function fuzzTarget(): { dir: string; pack: string; idx: string; expected: Buffer } {
    const dir = repoDir('fuzz');
    initRepo(dir);
    let text = 'line\n'.repeat(200);
    for (let v = 0; v < 4; v++) {
      text += `v${v} ${'x'.repeat(v * 30)}\n`;
      writeFiles(dir, { 'doc.txt': text, [`d${v}/f`]: text.slice(v * 50), 'link': { symlink: `d${v}/f` } });
      commitAll(dir, `v${v}`);
    }
    git(dir, ['repack', '-adfq', '--depth=10']);
    const packDir = path.join(dir, '.git', 'objects', 'pack');
    const pack = path.join(packDir, readdirSync(packDir).find((f) => f.endsWith('.pack'))!);
    return { dir, pack, idx: pack.replace(/\.pack$/, '.idx'), expected: gitArchive(dir, 'HEAD', 'P/') };
  }

  async function outcome(dir: string): Promise<Buffer | SourcemeshError> {
    try {
      return await ourArchive({ repoPath: dir, ref: 'HEAD', prefix: 'P/' });
    } catch (err) {
      if (isSourcemeshError(err)) return err;
      throw err;
    }
  }

  test('pack bytes', async () => {
    const t = fuzzTarget();
    const original = readFileSync(t.pack);
    await fc.assert(fc.asyncProperty(fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }), async (flips) => {
      const b = Buffer.from(original);
      for (const [at, x] of flips) b[12 + (at % (b.length - 32))] ^= x;
      writeFileSync(t.pack, b);
      const r = await outcome(t.dir);
      // Success is fine only when the damage missed everything the archive reads: then the bytes are git's.
      if (Buffer.isBuffer(r)) assert.ok(r.equals(t.expected));
    }), { numRuns: 60, seed: 42 });
    writeFileSync(t.pack, original);
  });

  test('index bytes (with a recomputed checksum)', async () => {
    const t = fuzzTarget();
    const original = readFileSync(t.idx);
    await fc.assert(fc.asyncProperty(fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 3 }), async (flips) => {
      const b = Buffer.from(original);
      for (const [at, x] of flips) b[8 + (at % (b.length - 48))] ^= x;
      createHash('sha1').update(b.subarray(0, b.length - 20)).digest().copy(b, b.length - 20);
      writeFileSync(t.idx, b);
      await outcome(t.dir);
    }), { numRuns: 60, seed: 7 });
    writeFileSync(t.idx, original);
  });

  test('tree objects of random bytes and random entries', async () => {
    await fc.assert(fc.asyncProperty(fc.oneof(
      fc.uint8Array({ maxLength: 120 }).map((a) => Buffer.from(a)),
      fc.array(fc.tuple(fc.constantFrom('100644', '100755', '120000', '40000', '160000', '644', '0', '100644x'), fc.string({ maxLength: 6 }), fc.constantFrom(BLOB_ID, 'e'.repeat(40))), { maxLength: 5 })
        .map((es) => treeBytes(es)),
    ), async (tree) => {
      const dir = bareWithTree('fuzz-tree', tree, withBlob);
      try {
        await outcome(dir);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }), { numRuns: 80, seed: 3 });
  });
});

describe('bad revisions, prefixes and repositories', () => {
  test('revision syntax, unknown refs, ambiguous ids, trees and blobs', async () => {
    const dir = repoDir('revs');
    makeRepo(dir, { 'a': 'a' });
    // Revision expressions and names git-check-ref-format refuses never reach the file system.
    for (const rev of ['main:a', 'main@{0}', 'HEAD^{tree}', 'HEAD~1:a', 'HEAD~x', '~1', 'HEAD^-1', '../../../etc/passwd', 'refs/../../x', 'a b', '', 'refs/heads/.hidden', 'x.lock']) {
      await expectCode({ repoPath: dir, ref: rev }, /[~^:]|@\{|\.\./.test(rev) ? 'E_UNSUPPORTED' : 'E_INPUT');
    }
    // Ancestry past the root commit: no such parent.
    for (const rev of ['HEAD~1', 'HEAD^', 'HEAD^2', 'HEAD~999999999']) await expectCode({ repoPath: dir, ref: rev }, 'E_INPUT', /no parent/);
    await expectCode({ repoPath: dir, ref: 'nonexistent' }, 'E_INPUT');
    await expectCode({ repoPath: dir, ref: 'abc' }, 'E_INPUT'); // hex, but shorter than git's minimum of 4
    await expectCode({ repoPath: dir, ref: 'f'.repeat(40) }, 'E_INPUT');
    await expectCode({ repoPath: dir, ref: gitText(dir, ['rev-parse', 'HEAD^{tree}']) }, 'E_UNSUPPORTED', /tree/);
    await expectCode({ repoPath: dir, ref: gitText(dir, ['rev-parse', 'HEAD:a']) }, 'E_INPUT', /blob/);
    // Make two objects share a 4-digit prefix, then ask for it.
    const ids = new Map<string, string>();
    let shared = '';
    for (let i = 0; !shared; i++) {
      const id = gitText(dir, ['hash-object', '-w', '--stdin'], { input: `blob ${i}\n` });
      const p = id.slice(0, 4);
      if (ids.has(p)) shared = p;
      ids.set(p, id);
    }
    await expectCode({ repoPath: dir, ref: shared }, 'E_INPUT', /ambiguous/);
  });

  test('prefixes that would escape or hit .git are E_INPUT', async () => {
    const dir = repoDir('prefixes');
    makeRepo(dir, { 'a': 'a' });
    for (const prefix of ['/abs/', '../up/', 'a/../../b/', '.git/', 'x/.GIT/', 'nul\0/']) {
      await expectCode({ repoPath: dir, ref: 'HEAD', prefix }, 'E_INPUT');
    }
  });

  test('not a repository, SHA-256 repositories, replace refs', async () => {
    const plain = repoDir('plain');
    mkdirSync(plain);
    await expectCode({ repoPath: plain, ref: 'HEAD' }, 'E_INPUT');
    await expectCode({ repoPath: path.join(plain, 'missing'), ref: 'HEAD' }, 'E_INPUT');
    const sha256 = repoDir('sha256');
    mkdirSync(sha256);
    git(sha256, ['init', '-q', '--object-format=sha256']);
    writeFiles(sha256, { a: 'a' });
    commitAll(sha256);
    await expectCode({ repoPath: sha256, ref: 'HEAD' }, 'E_UNSUPPORTED', /sha256/);
    const replaced = repoDir('replace');
    makeRepo(replaced, { a: 'a' });
    writeFiles(replaced, { a: 'b' });
    const c2 = commitAll(replaced);
    git(replaced, ['replace', c2, 'HEAD~1']);
    await expectCode({ repoPath: replaced, ref: 'HEAD' }, 'E_UNSUPPORTED', /replace/);
  });
});

function tarEquals(a: Buffer, b: Buffer): boolean {
  return a.equals(b);
}
