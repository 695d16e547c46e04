// The object database of a repository: its packs (through their v2 indexes), its loose objects, and those of
// its alternates (objects/info/alternates). Lookups try every pack first, then loose objects, as git does.
// Packed objects stored as deltas are rebuilt by following OFS_DELTA and REF_DELTA bases to a whole object,
// with a bounded depth, cycle detection, and a small LRU of rebuilt bases.

import { closeSync, readFileSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { SourcemeshError, fromSystemError, isNotFound } from '../../errors.ts';
import { readdirIfExistsSync, statIfExistsSync } from '../../fs/files.ts';
import type { Limits } from '../../limits.ts';
import { DeltaBaseCache, type CachedObject } from './base-cache.ts';
import { applyDelta, applyDeltaInto, deltaResultSize } from './delta.ts';
import { openLoose, readLooseHeader, readLooseWhole, streamLoose } from './loose.ts';
import { OID_BYTES, OID_HEX, corrupt, objectName, oidHex, type ObjectType, type Oid } from './object-id.ts';
import { OBJ_OFS_DELTA, OBJ_TAG, Pack, TYPE_NAMES, type PackEntry } from './pack.ts';
import { PackIndex } from './pack-index.ts';

export type BlobContent =
  | { size: number; data: Buffer; stream?: undefined }
  | { size: number; data?: undefined; stream: AsyncIterable<Buffer> };

export type BlobReader =
  | { kind: 'data'; size: number; data: Buffer }
  | { kind: 'stream'; size: number; stream: AsyncIterable<Buffer> }
  | {
      /**
       * A packed blob located but not yet produced: inflated (stored whole) or its last delta applied
       * (stored as a delta) only when read, straight into the caller's buffer. Read it before the next call
       * to the database: its compressed bytes and base may sit in memory the database reuses, and are
       * fetched or rebuilt again when that happened in between.
       */
      kind: 'inflate';
      size: number;
      read(): Buffer;
      /** Produce into buf[at, at + size + 1): one spare byte past the content may be overwritten. */
      readInto(buf: Buffer, at: number): void;
    };

/** A packed object, or a loose one already open (the caller closes `fd`). */
type Location = { pack: Pack; pos: number } | { file: string; fd: number };

/** One entry of a delta chain: the delta at `entry`, whose result is cached under `key`. */
interface ChainStep {
  pack: Pack;
  entry: PackEntry;
  key: string;
}

/**
 * Deltas are inflated into one reused buffer, since each is consumed by the step that applies it; a
 * delta larger than this gets a buffer of its own instead, so that one huge delta is not kept for the
 * rest of the process.
 */
const DELTA_SCRATCH_BYTES = 1024 * 1024;
/** Every this many steps from the whole object, a chain's result is offered to the cache (rebuildBase). */
const CHAIN_CACHE_STRIDE = 8;
/** Results of at most this many bytes are always offered to the cache (trees, most source files). */
const CHAIN_SMALL_RESULT_BYTES = 16 * 1024;
/** Uncached results are built in two scratch buffers of at most this many bytes each; larger ones get their own. */
const CHAIN_SCRATCH_BYTES = 16 * 1024 * 1024;

interface ObjectDirectory {
  path: string;
  packs: Pack[];
  /** Objects counted by a multi-pack-index, and the pack names it covers. */
  midxCount: number;
  midxPacks: Set<string>;
}

export class ObjectDatabase {
  readonly limits: Limits;
  private readonly dirs: ObjectDirectory[] = [];
  private readonly packs: Pack[] = [];
  private readonly cache: DeltaBaseCache;
  private nextPackId = 0;
  private deltaScratch = Buffer.allocUnsafeSlow(0);
  /** For tests and profiles: results of delta chains built in their own buffer, and in scratch buffers. */
  readonly chainSteps = { own: 0, scratch: 0 };
  /** Intermediate results of a delta chain that are not cached (rebuildBase). */
  private readonly chainBuffers: [Buffer, Buffer] = [Buffer.allocUnsafeSlow(0), Buffer.allocUnsafeSlow(0)];
  /** Counts uses of deltaScratch, so that a deferred reader can tell its delta was overwritten. */
  private deltaScratchUses = 0;
  /** Counts uses of chainBuffers, so that a deferred reader can tell its base was overwritten. */
  private chainScratchUses = 0;

  constructor(objectsDir: string, limits: Limits) {
    this.limits = limits;
    this.cache = new DeltaBaseCache(limits.gitDeltaBaseCacheBytes);
    this.addDirectory(objectsDir, 0, new Set());
  }

  private addDirectory(dir: string, depth: number, seen: Set<string>): void {
    let real: string;
    try {
      real = realpathSync(dir);
    } catch (err) {
      if (depth === 0 || !isNotFound(err)) throw fromSystemError(err, `object directory ${dir}`);
      return; // git skips alternates that do not exist
    }
    if (seen.has(real)) return;
    seen.add(real);
    const od: ObjectDirectory = { path: real, packs: [], midxCount: 0, midxPacks: new Set() };
    this.dirs.push(od);
    const packDir = path.join(real, 'pack');
    const names = readdirIfExistsSync(packDir).sort();
    for (const name of names) {
      if (!/^pack-[0-9a-f]+\.idx$/.test(name)) continue;
      const packFile = path.join(packDir, name.slice(0, -4) + '.pack');
      if (!statIfExistsSync(packFile)) continue; // git ignores an index without its pack
      const pack = new Pack(packFile, PackIndex.read(path.join(packDir, name), this.limits), this.nextPackId++, this.limits.gitPackCacheBytes);
      od.packs.push(pack);
      this.packs.push(pack);
    }
    this.readMultiPackIndex(od, path.join(packDir, 'multi-pack-index'));
    const alternates = path.join(real, 'info', 'alternates');
    if (!statIfExistsSync(alternates)) return;
    if (depth >= this.limits.gitAlternatesDepth) throw new SourcemeshError('E_UNSUPPORTED', `${alternates}: alternates nested deeper than ${this.limits.gitAlternatesDepth} levels`);
    const text = readSmallFile(alternates, this.limits.gitRefFileBytes);
    for (const line of text.split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      if (line.startsWith('"')) throw new SourcemeshError('E_UNSUPPORTED', `${alternates}: quoted alternate paths are not supported`);
      this.addDirectory(path.resolve(real, line), depth + 1, seen);
    }
  }

  /**
   * gitformat-pack "multi-pack-index": only its object count matters here (git's approximate object count,
   * which sets the default abbreviation length, counts a multi-pack-index's objects instead of its packs').
   * Lookups keep using the per-pack indexes, which git keeps beside it.
   */
  private readMultiPackIndex(od: ObjectDirectory, file: string): void {
    if (!statIfExistsSync(file)) return;
    const buf = readSmallFile(file, this.limits.gitPackIndexBytes, true);
    const fail = (cause: string) => corrupt(file, cause);
    if (buf.length < 12 || buf.toString('latin1', 0, 4) !== 'MIDX') throw fail('not a multi-pack-index');
    if (buf[4] !== 1) throw fail(`unsupported multi-pack-index version ${buf[4]}`);
    if (buf[5] !== 1) throw new SourcemeshError('E_UNSUPPORTED', `${file}: not a SHA-1 multi-pack-index`);
    const chunks = buf[6]!;
    let pnam = -1;
    let oidf = -1;
    let pnamEnd = -1;
    for (let i = 0; i < chunks; i++) {
      const at = 12 + 12 * i;
      if (at + 24 > buf.length) throw fail('chunk table is truncated');
      const id = buf.toString('latin1', at, at + 4);
      const off = Number(buf.readBigUInt64BE(at + 4));
      const next = Number(buf.readBigUInt64BE(at + 16));
      if (off > buf.length || next > buf.length || next < off) throw fail('chunk offsets are out of range');
      if (id === 'PNAM') [pnam, pnamEnd] = [off, next];
      if (id === 'OIDF') oidf = off;
    }
    if (pnam < 0 || oidf < 0 || oidf + 1024 > buf.length) throw fail('required chunks are missing');
    od.midxCount = buf.readUInt32BE(oidf + 1020);
    for (const name of buf.toString('latin1', pnam, pnamEnd).split('\0')) {
      if (name) od.midxPacks.add(name.replace(/\.(idx|pack)$/, ''));
    }
  }

  /** Reads of pack blocks, hits, buffers allocated for blocks, and extents read exactly, over every pack (for tests and profiles). */
  packStats(): { blockReads: number; blockHits: number; blockAllocs: number; exactReads: number } {
    const t = { blockReads: 0, blockHits: 0, blockAllocs: 0, exactReads: 0 };
    for (const p of this.packs) {
      t.blockReads += p.stats.blockReads;
      t.blockHits += p.stats.blockHits;
      t.blockAllocs += p.stats.blockAllocs;
      t.exactReads += p.stats.exactReads;
    }
    return t;
  }

  /** The delta base cache: bytes held, bases admitted (wanted a second time), hits (for tests and profiles). */
  baseCacheStats(): { bytes: number; admitted: number; hits: number } {
    return { bytes: this.cache.size, ...this.cache.stats };
  }

  close(): void {
    for (const p of this.packs) p.close();
    this.cache.clear();
  }

  private locate(oid: Oid): Location | null {
    for (const pack of this.packs) {
      const pos = pack.index.find(oid);
      if (pos >= 0) return { pack, pos };
    }
    const hex = oidHex(oid);
    for (const d of this.dirs) {
      const file = path.join(d.path, hex.slice(0, 2), hex.slice(2));
      const fd = openLoose(file);
      if (fd !== null) return { file, fd };
    }
    return null;
  }

  has(oid: Oid): boolean {
    const loc = this.locate(oid);
    if (loc && 'fd' in loc) closeSync(loc.fd);
    return loc !== null;
  }

  /** Read a whole object (bounded by gitObjectBytes); with `expected`, any other type is an error. */
  read(oid: Oid, expected?: ObjectType): CachedObject {
    const what = () => objectName(oid);
    const loc = this.locate(oid);
    if (!loc) throw corrupt(what, 'object is missing from the repository', { object: oidHex(oid) });
    let obj: CachedObject;
    if ('fd' in loc) {
      try {
        const h = readLooseHeader(loc.fd, loc.file, what(), this.limits.gitObjectBytes);
        if (h.size > this.limits.gitObjectBytes) throw corrupt(what, `object of ${h.size} bytes exceeds the limit of ${this.limits.gitObjectBytes}`);
        obj = { type: h.type, data: readLooseWhole(loc.fd, loc.file, h, what()) };
      } finally {
        closeSync(loc.fd);
      }
    } else {
      obj = this.readPacked(loc.pack, loc.pack.index.offsetAt(loc.pos), what);
    }
    if (expected && obj.type !== expected) throw corrupt(what, `expected a ${expected}, found a ${obj.type}`, { object: oidHex(oid) });
    return obj;
  }

  /**
   * A blob's content: whole in memory when at most `streamAbove` bytes (or stored as a delta, which has to
   * be rebuilt in memory anyway), else as a stream of chunks so that large files never sit in memory.
   */
  blob(oid: Oid, streamAbove: number): BlobContent {
    const r = this.openBlob(oid, streamAbove);
    return r.kind === 'inflate' ? { size: r.size, data: r.read() } : r;
  }

  /**
   * Like blob(), but a packed blob stored whole is only located: its size is known, and it can be inflated
   * straight into the caller's buffer (the tar's own output buffer), saving an allocation and a copy.
   */
  openBlob(oid: Oid, streamAbove: number): BlobReader {
    const what = () => objectName(oid);
    const loc = this.locate(oid);
    if (!loc) throw corrupt(what, 'object is missing from the repository', { object: oidHex(oid) });
    if ('fd' in loc) {
      try {
        const h = readLooseHeader(loc.fd, loc.file, what(), Math.min(streamAbove, this.limits.gitObjectBytes));
        if (h.type !== 'blob') throw corrupt(what, `expected a blob, found a ${h.type}`);
        if (h.size > streamAbove || (h.size > this.limits.gitObjectBytes && !h.whole)) {
          if (h.size > this.limits.gitBlobBytes) throw corrupt(what, `blob of ${h.size} bytes exceeds the limit of ${this.limits.gitBlobBytes}`);
          // Read later, maybe never to the end: the stream opens the file for itself.
          return { kind: 'stream', size: h.size, stream: streamLoose(loc.file, h, what()) };
        }
        return { kind: 'data', size: h.size, data: readLooseWhole(loc.fd, loc.file, h, what()) };
      } finally {
        closeSync(loc.fd);
      }
    }
    const offset = loc.pack.index.offsetAt(loc.pos);
    const pack = loc.pack;
    const e = pack.entry(offset);
    if (e.type <= OBJ_TAG) {
      const type = TYPE_NAMES[e.type];
      if (type !== 'blob') throw corrupt(what, `expected a blob, found a ${type}`);
      if (e.size > streamAbove || e.size > this.limits.gitObjectBytes) {
        if (e.size > this.limits.gitBlobBytes) throw corrupt(what, `blob of ${e.size} bytes exceeds the limit of ${this.limits.gitBlobBytes}`);
        return { kind: 'stream', size: e.size, stream: pack.stream(e, what()) };
      }
      return new WholeBlobReader(pack, e, what);
    }
    // A delta: its chain is rebuilt now up to its base, and its own delta applied when it is read, into
    // the caller's buffer (most blobs of a long history are deltas; this saves a buffer and a copy each).
    let { base, last } = this.rebuildBase(pack, offset, what);
    if (base.type !== 'blob') throw corrupt(what, `expected a blob, found a ${base.type}`);
    if (!last) return { kind: 'data', size: base.data.length, data: base.data };
    const baseUses = this.chainScratchUses;
    let delta = this.inflateDelta(last, what);
    const uses = this.deltaScratchUses;
    const size = deltaResultSize(delta, what);
    const maxBytes = this.limits.gitObjectBytes;
    if (size > maxBytes) throw corrupt(what, `delta result of ${size} bytes exceeds the limit of ${maxBytes}`);
    const current = (): [Buffer, Buffer] => {
      // Built again only when a scratch buffer was used since (the reader was read late).
      if (baseUses !== this.chainScratchUses && this.inChainScratch(base.data)) base = this.rebuildBase(pack, offset, what).base;
      if (uses !== this.deltaScratchUses && delta.buffer === this.deltaScratch.buffer) delta = last.pack.inflate(last.entry, what);
      return [base.data, delta];
    };
    return {
      kind: 'inflate',
      size,
      read: () => applyDelta(...current(), maxBytes, what),
      readInto: (buf: Buffer, at: number) => void applyDeltaInto(...current(), buf, at, maxBytes, what),
    };
  }

  /** Rebuild the packed object at `offset`, following its delta chain. */
  private readPacked(pack: Pack, offset: number, what: () => string): CachedObject {
    const { base, last } = this.rebuildBase(pack, offset, what);
    if (!last) return base;
    const obj: CachedObject = { type: base.type, data: applyDelta(base.data, this.inflateDelta(last, what), this.limits.gitObjectBytes, what) };
    // A tree is read again as a base of its neighbours' deltas; a blob is wanted once per archive.
    if (obj.type === 'tree') this.cache.set(last.key, obj);
    return obj;
  }

  private inChainScratch(b: Buffer): boolean {
    return b.buffer === this.chainBuffers[0].buffer || b.buffer === this.chainBuffers[1].buffer;
  }

  /** One of the two chain scratch buffers, at least `size` bytes: the one not holding `input`. */
  private chainScratch(size: number, input: Buffer | null): Buffer {
    this.chainScratchUses++;
    const k = input !== null && this.chainBuffers[0].buffer === input.buffer ? 1 : 0;
    if (this.chainBuffers[k].length < size) this.chainBuffers[k] = Buffer.allocUnsafeSlow(Math.min(CHAIN_SCRATCH_BYTES, Math.max(size, 2 * this.chainBuffers[k].length)));
    return this.chainBuffers[k];
  }

  /** A delta's bytes: in the reused scratch buffer (valid until the next delta), or its own when large. */
  private inflateDelta(step: ChainStep, what: () => string): Buffer {
    const { pack, entry } = step;
    if (entry.size > this.limits.gitObjectBytes) throw corrupt(what, `delta of ${entry.size} bytes exceeds the limit of ${this.limits.gitObjectBytes}`);
    if (entry.size + 1 > DELTA_SCRATCH_BYTES) return pack.inflate(entry, what);
    if (this.deltaScratch.length < entry.size + 1) this.deltaScratch = Buffer.allocUnsafeSlow(Math.min(DELTA_SCRATCH_BYTES, Math.max(entry.size + 1, 2 * this.deltaScratch.length, 4096)));
    this.deltaScratchUses++;
    pack.inflateInto(entry, this.deltaScratch, 0, what);
    return this.deltaScratch.subarray(0, entry.size);
  }

  /**
   * Follow the chain of the packed object at `offset` to a whole object or a cached result, and apply every
   * delta of it but the object's own: the base that delta applies to, and the delta's step (null when the
   * object is whole or cached). Every result rebuilt on the way is offered to the cache.
   */
  private rebuildBase(pack: Pack, offset: number, what: () => string): { base: CachedObject; last: ChainStep | null } {
    const limits = this.limits;
    const chain: ChainStep[] = [];
    const seen = new Set<string>();
    let base: CachedObject | null = null;
    let curPack = pack;
    let curOffset = offset;
    for (;;) {
      const key = `${curPack.id}:${curOffset}`;
      const hit = this.cache.get(key);
      if (hit) {
        base = hit;
        break;
      }
      // REF_DELTA can name any object, so a hostile pack can loop; OFS_DELTA can only point backwards.
      if (seen.has(key)) throw corrupt(what, `delta chain loops back to ${curPack.path} offset ${curOffset}`);
      seen.add(key);
      const e = curPack.entry(curOffset);
      if (e.type <= OBJ_TAG) {
        if (e.size > limits.gitObjectBytes) throw corrupt(what, `object of ${e.size} bytes exceeds the limit of ${limits.gitObjectBytes}`);
        const type = TYPE_NAMES[e.type]!;
        if (chain.length === 0) base = { type, data: curPack.inflate(e, what) };
        else if (this.cache.admit(key, e.size) || e.size + 1 > CHAIN_SCRATCH_BYTES) {
          base = { type, data: curPack.inflate(e, what) };
          this.cache.set(key, base);
        } else {
          // A base wanted for the first time: built in scratch memory, as the chain's other results.
          const out = this.chainScratch(e.size + 1, null);
          curPack.inflateInto(e, out, 0, what);
          base = { type, data: out.subarray(0, e.size) };
        }
        break;
      }
      if (chain.length >= limits.gitDeltaDepth) throw corrupt(what, `delta chain is deeper than ${limits.gitDeltaDepth}`);
      // The compressed bytes are fetched again when the delta is applied: views held for a whole chain
      // (up to gitDeltaDepth entries) would keep as many pack blocks alive.
      e.compressed = null;
      chain.push({ pack: curPack, entry: e, key });
      if (e.type === OBJ_OFS_DELTA) {
        curOffset = e.baseOffset;
        continue;
      }
      const baseOid = e.baseOid!;
      const own = curPack.index.find(baseOid);
      if (own >= 0) {
        curOffset = curPack.index.offsetAt(own);
        continue;
      }
      const loc = this.locate(baseOid);
      if (!loc) throw corrupt(what, `delta base ${oidHex(baseOid)} is missing from the repository`);
      if ('fd' in loc) {
        const bw = objectName(baseOid);
        try {
          const h = readLooseHeader(loc.fd, loc.file, bw, limits.gitObjectBytes);
          if (h.size > limits.gitObjectBytes) throw corrupt(bw, `object of ${h.size} bytes exceeds the limit of ${limits.gitObjectBytes}`);
          base = { type: h.type, data: readLooseWhole(loc.fd, loc.file, h, bw) };
        } finally {
          closeSync(loc.fd);
        }
        break;
      }
      curPack = loc.pack;
      curOffset = loc.pack.index.offsetAt(loc.pos);
    }
    // Results are kept by their position in the chain, not only by size: the object's own base (i = 1:
    // deltas of one family share it), every CHAIN_CACHE_STRIDE-th result from the whole object (a later
    // read of the chain restarts at most that many steps back), and every small one. The others are built
    // in two alternating scratch buffers: a long file rebuilt through a deep chain (gnulib's ChangeLog,
    // megabytes through dozens of deltas) took a fresh buffer per step, each page-faulted in and collected.
    // Those kept by position are kept only when the cache admits them (wanted before: base-cache.ts), and
    // built in scratch too otherwise, as is the whole object the chain starts from.
    for (let i = chain.length - 1, fromWhole = 1; i > 0; i--, fromWhole++) {
      const step = chain[i]!;
      const delta = this.inflateDelta(step, what);
      const size = deltaResultSize(delta, what);
      const keep = (i === 1 || fromWhole % CHAIN_CACHE_STRIDE === 0 || size <= CHAIN_SMALL_RESULT_BYTES) && this.cache.admit(step.key, size);
      if (keep || size > CHAIN_SCRATCH_BYTES) {
        base = { type: base.type, data: applyDelta(base.data, delta, limits.gitObjectBytes, what) };
        if (keep) this.cache.set(step.key, base);
        this.chainSteps.own++;
      } else {
        // size <= CHAIN_SCRATCH_BYTES: the buffer is bounded before any check of the delta itself.
        const out = this.chainScratch(size, base.data);
        applyDeltaInto(base.data, delta, out, 0, limits.gitObjectBytes, what);
        base = { type: base.type, data: out.subarray(0, size) };
        this.chainSteps.scratch++;
      }
    }
    return { base, last: chain[0] ?? null };
  }

  /**
   * Objects whose hex id starts with `prefix` (lower-case, at least 2 digits), up to `max` of them: for
   * resolving abbreviated ids. Loose and packed copies of one object count once.
   */
  findByPrefix(prefix: string, max: number): string[] {
    const found = new Set<string>();
    const padded = Buffer.from((prefix + '0'.repeat(OID_HEX)).slice(0, OID_HEX), 'hex');
    for (const pack of this.packs) {
      for (let pos = pack.index.lowerBound(padded); pos < pack.index.count; pos++) {
        const hex = oidHex(pack.index.oidAt(pos));
        if (!hex.startsWith(prefix)) break;
        found.add(hex);
        if (found.size > max) return [...found];
      }
    }
    for (const d of this.dirs) {
      for (const name of readdirIfExistsSync(path.join(d.path, prefix.slice(0, 2)))) {
        const hex = prefix.slice(0, 2) + name;
        if (name.length === OID_HEX - 2 && hex.startsWith(prefix)) found.add(hex);
        if (found.size > max) return [...found];
      }
    }
    return [...found];
  }

  /**
   * git's approximate object count (object-name.c's default abbreviation): the objects in every pack index
   * and multi-pack-index, loose objects not counted; packs a multi-pack-index covers count through it.
   */
  approximateObjectCount(): number {
    let n = 0;
    for (const d of this.dirs) {
      n += d.midxCount;
      for (const p of d.packs) {
        if (!d.midxPacks.has(path.basename(p.path).replace(/\.pack$/, ''))) n += p.index.count;
      }
    }
    return n;
  }

  /**
   * The length git's `%h` gives `oid` when asked for at least `minLength` digits: one more than the longest
   * hex prefix it shares with any other object, packed or loose, if that is longer. As in git, a shared prefix
   * of 32 digits or more (SHA-1's raw size counted in hex is never reached this way) does not extend it.
   */
  uniqueAbbrevLength(oid: Oid, minLength: number): number {
    const hex = oidHex(oid);
    let len = minLength;
    const extend = (other: string) => {
      let i = 0;
      while (i < OID_HEX && hex[i] === other[i]) i++;
      if (i < 32 && i >= len) len = i + 1;
    };
    for (const pack of this.packs) {
      const idx = pack.index;
      const pos = idx.lowerBound(oid);
      const exact = pos < idx.count && idx.oidAt(pos).equals(oid);
      if (!exact && pos < idx.count) extend(oidHex(idx.oidAt(pos)));
      if (exact && pos + 1 < idx.count) extend(oidHex(idx.oidAt(pos + 1)));
      if (pos > 0) extend(oidHex(idx.oidAt(pos - 1)));
    }
    for (const d of this.dirs) {
      for (const name of readdirIfExistsSync(path.join(d.path, hex.slice(0, 2)))) {
        if (name.length !== OID_HEX - 2) continue;
        const other = hex.slice(0, 2) + name;
        if (other !== hex) extend(other);
      }
    }
    return Math.min(len, OID_HEX);
  }
}


/**
 * A packed blob stored whole, inflated when read (BlobReader's 'inflate'). One object with its methods on
 * the prototype rather than a closure each: thousands are made per archive (issue 14, allocations).
 */
class WholeBlobReader {
  readonly kind = 'inflate';
  readonly size: number;
  readonly #pack: Pack;
  readonly #entry: PackEntry;
  readonly #what: () => string;
  /** The pack's block reads when located: its compressed bytes may be a view of a pack block, whose memory
   * is reused once another block is read, so they are fetched again if the reader is read late. */
  readonly #reads: number;

  constructor(pack: Pack, entry: PackEntry, what: () => string) {
    this.size = entry.size;
    this.#pack = pack;
    this.#entry = entry;
    this.#what = what;
    this.#reads = pack.stats.blockReads;
  }

  #fresh(): PackEntry {
    if (this.#reads !== this.#pack.stats.blockReads) this.#entry.compressed = null;
    return this.#entry;
  }

  read(): Buffer {
    return this.#pack.inflate(this.#fresh(), this.#what);
  }

  readInto(buf: Buffer, at: number): void {
    this.#pack.inflateInto(this.#fresh(), buf, at, this.#what);
  }
}

/** Read a small control file (refs, alternates, config...), refusing anything larger than `max` bytes. */
export function readSmallFile(file: string, max: number, binary: true): Buffer;
export function readSmallFile(file: string, max: number, binary?: false): string;
export function readSmallFile(file: string, max: number, binary = false): Buffer | string {
  try {
    const size = statSync(file).size;
    if (size > max) throw corrupt(file, `file of ${size} bytes exceeds the limit of ${max}`);
    const buf = readFileSync(file);
    return binary ? buf : buf.toString('latin1');
  } catch (err) {
    throw fromSystemError(err, `reading ${file}`);
  }
}

export { OID_BYTES };
