// Deletion-only cleansing of a tarball: drop the entries that match some globs, keep every other entry
// byte for byte (its header blocks, the pax or GNU long-name headers that belong to it, its data and
// padding), end the archive as git does, and gzip the result with our `gzip -n -6`. The output depends on
// the input and the globs alone, so a recipe `{from, delete, result}` can be replayed by anyone.
//
// Tar layout (POSIX.1-2001 "pax Interchange Format", "ustar Interchange Format"; GNU tar's 'L'/'K'
// long names): 512-byte header blocks, data padded to 512 bytes, an end of two zero blocks. Every byte
// read here is attacker-controlled: sizes, names and extended headers are bounded and checked before use.
import { createHash } from 'node:crypto';
import { SourcemeshError } from '../errors.ts';
import { limitsWith, type Limits } from '../limits.ts';
import { decompressedChunks } from '../compression/decompress.ts';
import { wildmatch } from './attributes/wildmatch.ts';
import { gzipChunks } from './compress.ts';

const BLOCK = 512;
const RECORD = 10_240;

export const CLEANSE_RECIPE_FORMAT = 'sourcemesh.cleanse/v1';

export interface CleanseRecipe {
  format: typeof CLEANSE_RECIPE_FORMAT;
  /** sha256 of the input file as given (compressed). */
  from: string;
  delete: string[];
  /** sha256 of the cleansed tar.gz. */
  result: string;
}

export interface CleanseReport {
  /** Entries kept and deleted (paths as in the tar, "./" kept). */
  kept: number;
  deleted: string[];
  /** Patterns that matched nothing: probably a mistake in the recipe. */
  unused: string[];
}

/**
 * Check the globs before reading anything. Syntax is gitignore's wildmatch with paths: `*`, `?` and
 * `[...]` never match `/`; `**` as a whole component matches any number of directories.
 */
export function checkPatterns(patterns: string[]): void {
  if (patterns.length === 0) throw new SourcemeshError('E_USAGE', 'cleanse: give at least one --delete GLOB');
  for (const p of patterns) {
    if (p.length === 0) throw new SourcemeshError('E_USAGE', 'cleanse: an empty --delete pattern');
    if (p.includes('\0')) throw new SourcemeshError('E_USAGE', `cleanse: --delete ${JSON.stringify(p)} contains a NUL byte`);
    if (p.startsWith('!')) throw new SourcemeshError('E_UNSUPPORTED', `cleanse: --delete ${p}: negation is not supported (cleansing only deletes)`);
  }
}

/** Matching: the entry's path without a leading "./" or trailing "/", or any of its parent directories. */
export function deletedBy(patterns: string[], path: string): string | undefined {
  let p = path;
  while (p.startsWith('./')) p = p.slice(2);
  while (p.endsWith('/')) p = p.slice(0, -1);
  if (!p) return undefined;
  for (const pattern of patterns) {
    const pat = Buffer.from(pattern.replace(/^(\.\/)+/, '').replace(/\/+$/, ''), 'utf8').toString('latin1');
    // The path itself, then each parent directory: deleting a directory deletes what is under it.
    let candidate = p;
    for (;;) {
      if (wildmatch(pat, candidate, true)) return pattern;
      const slash = candidate.lastIndexOf('/');
      if (slash <= 0) break;
      candidate = candidate.slice(0, slash);
    }
  }
  return undefined;
}

/** Reads exact byte counts from an async chunk source. */
class ByteReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private done = false;
  private readonly it: AsyncIterator<Uint8Array>;
  offset = 0;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.it = source[Symbol.asyncIterator]();
  }

  private async fill(n: number): Promise<void> {
    while (this.buffered < n && !this.done) {
      const r = await this.it.next();
      if (r.done) this.done = true;
      else if (r.value.length) {
        this.chunks.push(Buffer.from(r.value.buffer, r.value.byteOffset, r.value.length));
        this.buffered += r.value.length;
      }
    }
  }

  /** Exactly n bytes, or fewer only at the end of input. */
  async read(n: number): Promise<Buffer> {
    await this.fill(n);
    const take = Math.min(n, this.buffered);
    const out = Buffer.allocUnsafe(take);
    let at = 0;
    while (at < take) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, take - at);
      c.copy(out, at, 0, k);
      at += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.buffered -= take;
    this.offset += take;
    return out;
  }

  /** n bytes as they come (data of an entry), without gathering them. */
  async *stream(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.buffered === 0) await this.fill(1);
      if (this.buffered === 0) return;
      const c = this.chunks[0]!;
      const k = Math.min(c.length, left);
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
      this.buffered -= k;
      this.offset += k;
      left -= k;
      yield c.subarray(0, k);
    }
  }

  async close(): Promise<void> {
    await this.it.return?.();
  }
}

function parseNumber(h: Buffer, at: number, len: number): number {
  // GNU base-256: the first byte's high bit set; the value is the remaining bits, big-endian.
  if (h[at]! & 0x80) {
    if (h[at]! & 0x40) return -1; // negative
    let v = h[at]! & 0x3f;
    for (let i = 1; i < len; i++) {
      v = v * 256 + h[at + i]!;
      if (v > Number.MAX_SAFE_INTEGER) return -1;
    }
    return v;
  }
  const s = h.toString('latin1', at, at + len).replace(/[\0 ]+$/, '').replace(/^ +/, '');
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) return -1;
  return parseInt(s, 8);
}

function checksumOk(h: Buffer): boolean {
  const stored = parseNumber(h, 148, 8);
  let unsigned = 8 * 0x20;
  let signed = 8 * 0x20;
  for (let i = 0; i < BLOCK; i++) {
    if (i >= 148 && i < 156) continue;
    unsigned += h[i]!;
    signed += (h[i]! << 24) >> 24;
  }
  return stored === unsigned || stored === signed;
}

function cstring(h: Buffer, at: number, len: number): string {
  const end = h.indexOf(0, at);
  return h.toString('latin1', at, end === -1 || end > at + len ? at + len : end);
}

/** Records of a pax extended header: "<len> <key>=<value>\n" each, the length counting itself. */
function parsePax(payload: Buffer, what: string): Map<string, string> {
  const out = new Map<string, string>();
  let at = 0;
  while (at < payload.length) {
    if (payload[at] === 0) break; // padding
    const space = payload.indexOf(0x20, at);
    const len = space > at ? Number(payload.toString('latin1', at, space)) : NaN;
    if (!Number.isSafeInteger(len) || !/^[0-9]+$/.test(payload.toString('latin1', at, space)) || len < space - at + 3 || at + len > payload.length || payload[at + len - 1] !== 0x0a) {
      throw new SourcemeshError('E_ARCHIVE', `${what}: malformed pax extended header record at byte ${at}`);
    }
    const record = payload.toString('latin1', space + 1, at + len - 1);
    const eq = record.indexOf('=');
    if (eq <= 0) throw new SourcemeshError('E_ARCHIVE', `${what}: malformed pax extended header record at byte ${at}`);
    out.set(record.slice(0, eq), record.slice(eq + 1));
    at += len;
  }
  return out;
}

function checkPath(p: string, what: string, kind: string): void {
  if (p.includes('\0')) throw new SourcemeshError('E_ARCHIVE', `${what}: ${kind} ${JSON.stringify(p)} contains a NUL byte`);
  if (p.startsWith('/')) throw new SourcemeshError('E_ARCHIVE', `${what}: ${kind} ${JSON.stringify(p)} is an absolute path`);
  if (p.split('/').includes('..')) throw new SourcemeshError('E_ARCHIVE', `${what}: ${kind} ${JSON.stringify(p)} has a ".." component`);
}

/** An archive path's components as an extractor walks them ("" and "." dropped). */
function components(p: string): string[] {
  return p.split('/').filter((c) => c !== '' && c !== '.');
}

/**
 * A symbolic link's target is resolved from the link's directory: it may climb with leading ".."
 * components, never above the archive's root, and never absolute (docs/FORMATS.md, "Cleanse recipe").
 * A ".." after other components is refused: the components before it may be links themselves, so where
 * it climbs from is not where it seems (`a/l -> ../..` makes `a/l/../..` leave the tree).
 */
function checkSymlinkTarget(target: string, linkPath: string, what: string, kind: string): void {
  if (target.length === 0) throw new SourcemeshError('E_ARCHIVE', `${what}: ${kind} is empty`);
  if (target.includes('\0')) throw new SourcemeshError('E_ARCHIVE', `${what}: ${kind} ${JSON.stringify(target)} contains a NUL byte`);
  if (target.startsWith('/')) throw new SourcemeshError('E_ARCHIVE', `${what}: ${kind} ${JSON.stringify(target)} is an absolute path`);
  const parts = components(target);
  let ups = 0;
  while (parts[ups] === '..') ups++;
  if (parts.indexOf('..', ups) !== -1) throw new SourcemeshError('E_ARCHIVE', `${what}: ${kind} ${JSON.stringify(target)} has ".." after other components`);
  const depth = components(linkPath).length - 1;
  if (ups > depth) throw new SourcemeshError('E_ARCHIVE', `${what}: ${kind} ${JSON.stringify(target)} points out of the archive (up ${ups} from ${depth} directories deep)`);
}

interface LinkNode { children: Map<string, LinkNode>; link?: { path: string; target: string } }

/**
 * The symbolic links met so far, as a tree of path components, so that a later path going through one
 * is found in one walk of its components: an extractor would follow the link and write (or hard-link)
 * where the link leads, not where the path says. What is remembered is bounded by `tarLinkPathBytes`.
 */
class SymlinkPaths {
  private readonly root: LinkNode = { children: new Map() };
  private bytes = 0;
  private readonly limit: number;
  private readonly what: string;

  constructor(limit: number, what: string) {
    this.limit = limit;
    this.what = what;
  }

  add(path: string, target: string): void {
    this.bytes += path.length + target.length;
    if (this.bytes > this.limit) throw new SourcemeshError('E_ARCHIVE', `${this.what}: more symbolic links than cleanse remembers (their paths pass ${this.limit} bytes)`);
    let node = this.root;
    for (const c of components(path)) {
      let next = node.children.get(c);
      if (!next) node.children.set(c, (next = { children: new Map() }));
      node = next;
    }
    node.link = { path, target };
  }

  /** The link that `path` itself is, if any. */
  at(path: string): { path: string; target: string } | undefined {
    let node: LinkNode | undefined = this.root;
    for (const c of components(path)) if (!(node = node.children.get(c))) return undefined;
    return node.link;
  }

  /** The link (as written in the archive) that `path` goes through: one of its parent directories. */
  through(path: string): string | undefined {
    if (this.root.children.size === 0) return undefined;
    const parts = components(path);
    let node: LinkNode | undefined = this.root;
    for (let i = 0; i < parts.length - 1; i++) {
      if (!(node = node.children.get(parts[i]!))) return undefined;
      if (node.link) return node.link.path;
    }
    return undefined;
  }
}

// Entry types without data (POSIX: link, symlink, character and block device, directory, FIFO).
const NO_DATA = new Set([0x31, 0x32, 0x33, 0x34, 0x35, 0x36]);

/**
 * The cleansed tar stream of a tar stream (already decompressed). `report` is filled as it goes.
 * Output: kept bytes, then zero blocks up to the next 10,240-byte record, with at least two of them
 * (git archive's end of archive).
 */
export async function* cleanseTarChunks(tar: AsyncIterable<Uint8Array>, patterns: string[], what: string, report: CleanseReport, limits: Limits = limitsWith()): AsyncGenerator<Buffer> {
  checkPatterns(patterns);
  const used = new Set<string>();
  const r = new ByteReader(tar);
  const symlinks = new SymlinkPaths(limits.tarLinkPathBytes, what);
  let written = 0;
  let pending: Buffer[] = []; // extended headers waiting for the entry they belong to
  let pax = new Map<string, string>();
  let longName: string | undefined;
  let longLink: string | undefined;
  const truncated = (offset: number) => new SourcemeshError('E_ARCHIVE', `${what}: truncated tar (ends inside the entry at byte ${offset})`, { offset });
  try {
    for (;;) {
      const at = r.offset;
      const h = await r.read(BLOCK);
      if (h.length === 0) throw new SourcemeshError('E_ARCHIVE', `${what}: truncated tar (no end-of-archive blocks after byte ${at})`, { offset: at });
      if (h.length < BLOCK) throw truncated(at);
      if (h.every((b) => b === 0)) {
        if (pending.length) throw new SourcemeshError('E_ARCHIVE', `${what}: an extended header at the end of the archive belongs to no entry`);
        // End of archive. What follows (zero blocks, record padding) is read to the end but not kept,
        // so that the input is hashed whole and a damaged compressed stream is still caught.
        for await (const _ of r.stream(Number.MAX_SAFE_INTEGER)) { /* padding */ }
        break;
      }
      if (!checksumOk(h)) throw new SourcemeshError('E_ARCHIVE', `${what}: bad tar header checksum at byte ${at} (not a tar, or corrupt)`, { offset: at });
      const type = h[156]!;
      const headerSize = parseNumber(h, 124, 12);
      if (headerSize < 0) throw new SourcemeshError('E_ARCHIVE', `${what}: bad size field in the tar header at byte ${at}`, { offset: at });

      // Extended headers: held (bounded) and emitted, or dropped, with the entry that follows.
      if (type === 0x78 /* x */ || type === 0x67 /* g */ || type === 0x4c /* L */ || type === 0x4b /* K */) {
        const bound = type === 0x78 || type === 0x67 ? limits.tarPaxHeaderBytes : limits.tarPathBytes;
        if (headerSize > bound) throw new SourcemeshError('E_ARCHIVE', `${what}: extended header of ${headerSize} bytes at byte ${at} (limit ${bound})`, { offset: at });
        const padded = Math.ceil(headerSize / BLOCK) * BLOCK;
        const body = await r.read(padded);
        if (body.length < padded) throw truncated(at);
        const payload = body.subarray(0, headerSize);
        if (type === 0x67) {
          // A global header belongs to no entry: always kept, in place.
          if (pending.length) throw new SourcemeshError('E_ARCHIVE', `${what}: a global pax header at byte ${at} splits an entry from its extended header`);
          parsePax(payload, what);
          written += h.length + body.length;
          yield h;
          yield body;
          continue;
        }
        if (type === 0x78) for (const [k, v] of parsePax(payload, what)) pax.set(k, v);
        else {
          const s = payload.toString('latin1').replace(/\0+$/, '');
          if (type === 0x4c) longName = s;
          else longLink = s;
        }
        pending.push(h, body);
        continue;
      }

      let name = pax.get('path') ?? longName;
      if (name === undefined) {
        const base = cstring(h, 0, 100);
        const magic = h.toString('latin1', 257, 263);
        const prefix = magic === 'ustar\0' ? cstring(h, 345, 155) : '';
        name = prefix ? `${prefix}/${base}` : base;
      }
      if (name.length === 0) throw new SourcemeshError('E_ARCHIVE', `${what}: an entry with an empty name at byte ${at}`);
      if (name.length > limits.tarPathBytes) throw new SourcemeshError('E_ARCHIVE', `${what}: a path of ${name.length} bytes at byte ${at}`);
      checkPath(name, what, 'path');
      // Links are checked on every entry, deleted or not: an input that has such an entry is hostile.
      const via = symlinks.through(name);
      if (via !== undefined) throw new SourcemeshError('E_ARCHIVE', `${what}: path ${JSON.stringify(name)} goes through the symbolic link ${JSON.stringify(via)}`);
      if (type === 0x31 /* hard link */) {
        const target = pax.get('linkpath') ?? longLink ?? cstring(h, 157, 100);
        checkPath(target, what, `hard link target of ${name}`);
        const targetVia = symlinks.through(target);
        if (targetVia !== undefined) throw new SourcemeshError('E_ARCHIVE', `${what}: hard link target of ${name} ${JSON.stringify(target)} goes through the symbolic link ${JSON.stringify(targetVia)}`);
        // A hard link to a symbolic link is that link again, read from another directory.
        const linked = symlinks.at(target);
        if (linked) {
          checkSymlinkTarget(linked.target, name, what, `symbolic link target of ${name} (a hard link to ${linked.path})`);
          symlinks.add(name, linked.target);
        }
      } else if (type === 0x32 /* symbolic link */) {
        const target = pax.get('linkpath') ?? longLink ?? cstring(h, 157, 100);
        checkSymlinkTarget(target, name, what, `symbolic link target of ${name}`);
        symlinks.add(name, target);
      }
      let size = headerSize;
      if (pax.has('size')) {
        const s = pax.get('size')!;
        if (!/^[0-9]{1,16}$/.test(s) || !Number.isSafeInteger(Number(s))) throw new SourcemeshError('E_ARCHIVE', `${what}: bad pax size ${JSON.stringify(s.slice(0, 40))} for ${name}`);
        size = Number(s);
      }
      const dataBytes = NO_DATA.has(type) ? 0 : Math.ceil(size / BLOCK) * BLOCK;
      if (dataBytes > limits.decompressedTarBytes) throw new SourcemeshError('E_ARCHIVE', `${what}: entry ${name} claims ${size} bytes (limit ${limits.decompressedTarBytes})`);

      const display = Buffer.from(name, 'latin1').toString('utf8');
      const match = deletedBy(patterns, name);
      if (match !== undefined) {
        used.add(match);
        report.deleted.push(display);
        let skipped = 0;
        for await (const c of r.stream(dataBytes)) skipped += c.length;
        if (skipped < dataBytes) throw truncated(at);
      } else {
        report.kept++;
        for (const b of pending) { written += b.length; yield b; }
        written += BLOCK;
        yield h;
        let copied = 0;
        for await (const c of r.stream(dataBytes)) { copied += c.length; written += c.length; yield c; }
        if (copied < dataBytes) throw truncated(at);
      }
      pending = [];
      pax = new Map();
      longName = undefined;
      longLink = undefined;
    }
  } finally {
    await r.close();
  }
  report.unused = patterns.filter((p) => !used.has(p));
  let pad = RECORD - (written % RECORD);
  if (pad < 2 * BLOCK) pad += RECORD;
  yield Buffer.alloc(pad);
}

/**
 * Cleanse a tarball (gzip, xz, bzip2 or plain) into a gzip-n level 6 tar.gz, hashing the input as it is
 * read. Returns the output stream; `done()` gives the input's sha256 once the stream is consumed.
 */
export function cleanseTarball(input: AsyncIterable<Uint8Array>, patterns: string[], what: string, limits?: Limits): { chunks: AsyncGenerator<Uint8Array>; report: CleanseReport; fromSha256: () => string } {
  checkPatterns(patterns);
  const hash = createHash('sha256');
  let digest: string | undefined;
  async function* hashed(): AsyncGenerator<Uint8Array> {
    for await (const c of input) {
      hash.update(c);
      yield c;
    }
    digest = hash.digest('hex');
  }
  const report: CleanseReport = { kept: 0, deleted: [], unused: [] };
  const tar = cleanseTarChunks(decompressedChunks(hashed(), what, limits), patterns, what, report, limits);
  return {
    chunks: gzipChunks(tar, 'gzip-n', 6),
    report,
    fromSha256: () => {
      if (digest === undefined) throw new SourcemeshError('E_INTERNAL', 'cleanse: the input was not read to its end');
      return digest;
    },
  };
}
