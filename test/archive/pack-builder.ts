// Writing packs and v2 indexes by hand (gitformat-pack), so that tests can hand the reader what git itself
// would never write: deltas copying out of range, cycles, absurd sizes, bad types.

import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

export const TYPES = { commit: 1, tree: 2, blob: 3, tag: 4, ofsDelta: 6, refDelta: 7 } as const;

export interface RawEntry {
  /** The id the index lists for this entry. */
  oid: string;
  type: number;
  /** The size written in the entry header (defaults to payload length). */
  declaredSize?: number;
  payload: Buffer;
  /** OFS_DELTA: index of the base entry in this pack. REF_DELTA: base id. */
  ofsBase?: number;
  refBase?: string;
  /** Replace the zlib data with these bytes. */
  rawData?: Buffer;
}

export function objectId(type: string, body: Buffer): string {
  return createHash('sha1').update(`${type} ${body.length}\0`).update(body).digest('hex');
}

function varintSize(type: number, size: number): Buffer {
  const out: number[] = [];
  let b = (type << 4) | (size & 15);
  let rest = Math.floor(size / 16);
  while (rest > 0) {
    out.push(b | 0x80);
    b = rest & 0x7f;
    rest = Math.floor(rest / 128);
  }
  out.push(b);
  return Buffer.from(out);
}

function ofsDistance(d: number): Buffer {
  const bytes = [d & 0x7f];
  d = Math.floor(d / 128);
  while (d > 0) {
    d -= 1;
    bytes.unshift(0x80 | (d & 0x7f));
    d = Math.floor(d / 128);
  }
  return Buffer.from(bytes);
}

/** A delta's header: base size and result size as base-128 varints. */
export function deltaHeader(baseSize: number, resultSize: number): Buffer {
  const enc = (n: number) => {
    const out: number[] = [];
    do {
      let b = n & 0x7f;
      n = Math.floor(n / 128);
      if (n > 0) b |= 0x80;
      out.push(b);
    } while (n > 0);
    return out;
  };
  return Buffer.from([...enc(baseSize), ...enc(resultSize)]);
}

/** Write pack-<hash>.pack and .idx into `objectsDir`/pack; returns the pack path. */
export function writePack(objectsDir: string, entries: RawEntry[]): string {
  const parts: Buffer[] = [];
  const header = Buffer.alloc(12);
  header.write('PACK', 0, 'latin1');
  header.writeUInt32BE(2, 4);
  header.writeUInt32BE(entries.length, 8);
  parts.push(header);
  let offset = 12;
  const offsets: number[] = [];
  const crcs: number[] = [];
  for (const e of entries) {
    offsets.push(offset);
    const bits = [varintSize(e.type, e.declaredSize ?? e.payload.length)];
    if (e.type === TYPES.ofsDelta) bits.push(ofsDistance(offset - offsets[e.ofsBase!]!));
    if (e.type === TYPES.refDelta) bits.push(Buffer.from(e.refBase!, 'hex'));
    bits.push(e.rawData ?? zlib.deflateSync(e.payload));
    const raw = Buffer.concat(bits);
    crcs.push(zlib.crc32(raw));
    parts.push(raw);
    offset += raw.length;
  }
  const body = Buffer.concat(parts);
  const packSum = createHash('sha1').update(body).digest();
  const pack = Buffer.concat([body, packSum]);
  const order = entries.map((e, i) => i).sort((a, b) => (entries[a]!.oid < entries[b]!.oid ? -1 : 1));
  const fan = Buffer.alloc(1024);
  for (let b = 0; b < 256; b++) fan.writeUInt32BE(order.filter((i) => parseInt(entries[i]!.oid.slice(0, 2), 16) <= b).length, 4 * b);
  const idxParts = [Buffer.from([0xff, 0x74, 0x4f, 0x63, 0, 0, 0, 2]), fan];
  idxParts.push(...order.map((i) => Buffer.from(entries[i]!.oid, 'hex')));
  idxParts.push(...order.map((i) => { const b = Buffer.alloc(4); b.writeUInt32BE(crcs[i]! >>> 0); return b; }));
  idxParts.push(...order.map((i) => { const b = Buffer.alloc(4); b.writeUInt32BE(offsets[i]!); return b; }));
  idxParts.push(packSum);
  const idxBody = Buffer.concat(idxParts);
  const idx = Buffer.concat([idxBody, createHash('sha1').update(idxBody).digest()]);
  const dir = path.join(objectsDir, 'pack');
  mkdirSync(dir, { recursive: true });
  const name = `pack-${packSum.toString('hex')}`;
  writeFileSync(path.join(dir, `${name}.pack`), pack);
  writeFileSync(path.join(dir, `${name}.idx`), idx);
  return path.join(dir, `${name}.pack`);
}

/** Write a loose object file under any id (its content need not hash to it). */
export function writeLoose(objectsDir: string, oid: string, type: string, body: Buffer, declaredSize = body.length): void {
  const dir = path.join(objectsDir, oid.slice(0, 2));
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, oid.slice(2)), zlib.deflateSync(Buffer.concat([Buffer.from(`${type} ${declaredSize}\0`), body])));
}

/** A tree object's bytes from (mode, name, id) entries, in the order given. */
export function treeBytes(entries: [string, string | Buffer, string][]): Buffer {
  return Buffer.concat(entries.map(([mode, name, oid]) => Buffer.concat([Buffer.from(`${mode} `), Buffer.from(name as never), Buffer.from([0]), Buffer.from(oid, 'hex')])));
}

export function commitBytes(tree: string, date = 1_700_000_000): Buffer {
  return Buffer.from(`tree ${tree}\nauthor A <a@b> ${date} +0000\ncommitter C <c@d> ${date} +0000\n\nhostile\n`);
}
