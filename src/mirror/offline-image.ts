// `pack`: the distfiles of a manifest, taken from the store, in a form an isolated build machine can
// read without any network: a directory, a deterministic tar, or live-bootstrap's builder-hex0 source
// disk format. Every byte is re-hashed on the way out; an image file appears under its final name only
// when complete, and an image written to a disk or FIFO goes through in place (src/fs/durable-file.ts).
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { SourcemeshError, fromSystemError } from '../errors.ts';
import type { Distfile } from '../manifest/distfile.ts';
import { digestsEqual } from '../store/digest.ts';
import { exportObject } from '../store/distdir.ts';
import { openOutput, type Output } from '../fs/durable-file.ts';
import { ensureDir } from '../fs/files.ts';
import { type Store, type StoredObject } from '../store/store.ts';

export const PACK_FORMATS = ['dir', 'tar', 'hex0-disk'] as const;
export type PackFormat = (typeof PACK_FORMATS)[number];

export interface PackOptions {
  format: PackFormat;
  out: string;
  /** Split into several images of at most this many bytes each. */
  maxDiskBytes?: number;
  /** Directory inside hex0 disks (builder-hex0 paths), default /external/distfiles as live-bootstrap lays it out. */
  hex0Dir?: string;
}

export interface PackedImage {
  path: string;
  bytes: number;
  files: string[];
}

interface Item {
  d: Distfile;
  obj: StoredObject;
}

const TAR_BLOCK = 512;
const TAR_RECORD = 10_240;

export async function pack(distfiles: Distfile[], store: Store, opts: PackOptions): Promise<PackedImage[]> {
  const items: Item[] = [];
  const absent: string[] = [];
  for (const d of distfiles) {
    // Pinned by tarSha256 alone: the object fetched under its name (its tar is checked below).
    const obj = d.sha256 !== undefined ? await store.get(d.sha256) : await store.byName(d.name);
    if (obj) items.push({ d, obj });
    else absent.push(d.name);
  }
  if (absent.length) {
    throw new SourcemeshError('E_INPUT', `${absent.length} distfile(s) not in the store ${store.root} (run sourcemesh fetch first): ${absent.slice(0, 5).join(', ')}${absent.length > 5 ? ', ...' : ''}`, { absent });
  }
  const hex0Dir = (opts.hex0Dir ?? '/external/distfiles').replace(/\/+$/, '');
  const layout = layouts[opts.format](hex0Dir);
  const groups = split(items, layout, opts.maxDiskBytes);
  if (groups.length > 1) {
    // Split images are OUT.1, OUT.2, ...: beside a device that would be files in /dev, not disks.
    const st = await stat(opts.out).catch(() => undefined);
    if (st && !st.isFile() && !st.isDirectory()) {
      throw new SourcemeshError('E_USAGE', `${opts.out}: not a regular file or directory, but the distfiles need ${groups.length} images of at most ${opts.maxDiskBytes} bytes (written as ${opts.out}.1, ${opts.out}.2, ...); give a file name`, { file: opts.out });
    }
  }
  const images: PackedImage[] = [];
  for (const [i, group] of groups.entries()) {
    const target = groups.length === 1 ? opts.out : `${opts.out}.${i + 1}`;
    images.push(await layout.write(target, group));
  }
  return images;
}

interface Layout {
  /** Bytes one file takes in an image, and what an empty image costs. */
  cost(item: Item): number;
  overhead: number;
  write(target: string, items: Item[]): Promise<PackedImage>;
}

const layouts: Record<PackFormat, (hex0Dir: string) => Layout> = {
  dir: () => ({
    cost: (it) => it.obj.size,
    overhead: 0,
    async write(target, items) {
      // A link to a directory is followed; anything else already there is not a directory to fill.
      const st = await stat(target).catch(() => undefined);
      if (st && !st.isDirectory()) {
        throw new SourcemeshError('E_INPUT', `${target}: is not a directory; --format dir writes the files into a directory`, { file: target });
      }
      await ensureDir(target, 'pack output');
      for (const it of items) {
        await verifyObject(it);
        await exportObject(target, it.d.name, it.obj);
      }
      return { path: target, bytes: items.reduce((n, it) => n + it.obj.size, 0), files: items.map((it) => it.d.name) };
    },
  }),
  tar: () => ({
    cost: (it) => TAR_BLOCK + roundUp(it.obj.size, TAR_BLOCK),
    overhead: TAR_RECORD, // two zero blocks, then padding to a whole record: at most one record
    write: (target, items) => writeImage(target, items, async (out) => {
      let pos = 0;
      for (const it of items) {
        pos = await put(out, pos, ustarHeader(it.d.name, it.obj.size));
        pos = await copyVerified(out, pos, it);
        pos = await put(out, pos, Buffer.alloc(roundUp(it.obj.size, TAR_BLOCK) - it.obj.size));
      }
      const end = roundUp(pos + 2 * TAR_BLOCK, TAR_RECORD);
      return put(out, pos, Buffer.alloc(end - pos));
    }),
  }),
  'hex0-disk': (hex0Dir) => {
    const dirs = hex0Dir.split('/').filter(Boolean).map((_, i, parts) => `/${parts.slice(0, i + 1).join('/')}`);
    const dirLines = Buffer.from(dirs.map((d) => `src 0 ${d}\n`).join(''));
    const line = (it: Item) => Buffer.from(`src ${it.obj.size} ${hex0Dir}/${it.d.name}\n`);
    return {
      cost: (it) => line(it).length + it.obj.size,
      overhead: dirLines.length,
      // builder-hex0's source file system: "src SIZE PATH\n" then SIZE bytes; "src 0 DIR" makes a directory.
      write: (target, items) => writeImage(target, items, async (out) => {
        let pos = await put(out, 0, dirLines);
        for (const it of items) {
          pos = await put(out, pos, line(it));
          pos = await copyVerified(out, pos, it);
        }
        return pos;
      }),
    };
  },
};

function split(items: Item[], layout: Layout, max: number | undefined): Item[][] {
  if (max === undefined) return [items];
  const groups: Item[][] = [[]];
  let used = layout.overhead;
  for (const it of items) {
    const cost = layout.cost(it);
    if (layout.overhead + cost > max) throw new SourcemeshError('E_USAGE', `--max-disk-bytes ${max}: ${it.d.name} (${it.obj.size} bytes) does not fit on any image`);
    if (used + cost > max) {
      groups.push([]);
      used = layout.overhead;
    }
    groups.at(-1)!.push(it);
    used += cost;
  }
  return groups;
}

async function writeImage(target: string, items: Item[], body: (out: Output) => Promise<number>): Promise<PackedImage> {
  await ensureDir(path.dirname(path.resolve(target)), 'pack output');
  // A new path or regular file atomically, a disk (/dev/sdb) or FIFO written through (src/fs/durable-file.ts).
  const out = await openOutput(target, { what: 'cannot write the image' });
  let bytes: number;
  try {
    bytes = await body(out);
    await out.commit();
  } catch (err) {
    await out.abort();
    throw err instanceof SourcemeshError ? err : fromSystemError(err, `${target}: cannot write`);
  }
  return { path: target, bytes, files: items.map((it) => it.d.name) };
}

/** Append `buf` (sequentially: a FIFO or tape cannot seek); returns the position after it. */
async function put(out: Output, pos: number, buf: Uint8Array): Promise<number> {
  if (buf.length) await out.write(buf);
  return pos + buf.length;
}

/** Copy a store object into the image while hashing it: the store is trusted, but disks rot. */
async function copyVerified(out: Output, pos: number, it: Item): Promise<number> {
  const hash = createHash('sha256');
  let at = pos;
  for await (const chunk of createReadStream(it.obj.path, { highWaterMark: 1 << 20 })) {
    hash.update(chunk as Buffer);
    at = await put(out, at, chunk as Buffer);
  }
  assertDigest(it, hash.digest('hex'));
  return at;
}

async function verifyObject(it: Item): Promise<void> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(it.obj.path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  assertDigest(it, hash.digest('hex'));
}

function assertDigest(it: Item, actual: string): void {
  // Pinned by tarSha256 alone: the object must still have the sha256 it was stored under when fetch verified it.
  const expected = it.d.sha256 ?? it.obj.sha256;
  if (!digestsEqual(actual, expected)) {
    throw new SourcemeshError('E_CHECKSUM', `${it.d.name}: the store object ${it.obj.path} has sha256 ${actual}, expected ${expected} (damaged store: remove it and fetch again)`);
  }
}

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/**
 * A POSIX ustar header for a regular file with fixed metadata (mode 0644, owner 0:0, mtime 0), so the
 * tar depends on names and contents only. A distfile name has no "/", so the ustar prefix field
 * cannot help a name over 100 bytes: such names are refused rather than written as a pax extension.
 */
function ustarHeader(name: string, size: number): Buffer {
  const h = Buffer.alloc(TAR_BLOCK);
  const nameBytes = Buffer.from(name);
  if (nameBytes.length > 100) throw new SourcemeshError('E_UNSUPPORTED', `${name}: names over 100 bytes are not packed into tar images`);
  nameBytes.copy(h, 0);
  const octal = (v: number, width: number, at: number) => h.write(v.toString(8).padStart(width - 1, '0') + '\0', at, 'ascii');
  octal(0o644, 8, 100);
  octal(0, 8, 108);
  octal(0, 8, 116);
  if (size >= 8 ** 11) throw new SourcemeshError('E_UNSUPPORTED', `${name}: 8 GiB or more does not fit a ustar size field`);
  octal(size, 12, 124);
  octal(0, 12, 136);
  h.write('        ', 148, 'ascii'); // the checksum is computed over the field as spaces (POSIX ustar)
  h.write('0', 156, 'ascii');
  h.write('ustar\0' + '00', 257, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
  return h;
}
