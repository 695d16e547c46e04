// ustar headers and pax records as `git archive --format=tar` writes them (POSIX.1-2001 pax, "ustar Interchange
// Format" and "pax Extended Header"): fields in octal with a trailing NUL ("%07o", "%011o"), magic "ustar\0"
// version "00", uid and gid 0 named "root", device numbers "0000000", and the checksum as 7 octal digits and
// a NUL, computed with the checksum field counted as eight spaces (GNU tar writes 6 digits, NUL, space).

export const BLOCK = 512;
/** git writes the archive in records of 20 blocks. */
export const RECORD = 10240;
/** The largest size and mtime an 11-digit octal field holds (git's USTAR_MAX_SIZE and USTAR_MAX_MTIME). */
export const USTAR_MAX = 0o77777777777;

export const TYPE_FILE = 0x30; // '0'
export const TYPE_SYMLINK = 0x32; // '2'
export const TYPE_DIR = 0x35; // '5'
export const TYPE_PAX = 0x78; // 'x'
export const TYPE_PAX_GLOBAL = 0x67; // 'g'

export interface HeaderFields {
  /** At most 100 bytes; exactly 100 leaves no NUL. */
  name: Buffer;
  /** At most 155 bytes. */
  prefix?: Buffer;
  /** Permission bits only (the type goes in the type flag). */
  mode: number;
  size: number;
  mtime: number;
  type: number;
  /** At most 100 bytes. */
  linkname?: Buffer;
}

function octal(buf: Buffer, at: number, digits: number, value: number): void {
  const s = value.toString(8).padStart(digits, '0');
  buf.write(s, at, digits, 'latin1');
  buf[at + digits] = 0;
}

export function ustarHeader(f: HeaderFields): Buffer {
  const h = Buffer.alloc(BLOCK);
  f.name.copy(h, 0, 0, Math.min(f.name.length, 100));
  octal(h, 100, 7, f.mode & 0o7777);
  octal(h, 108, 7, 0); // uid
  octal(h, 116, 7, 0); // gid
  octal(h, 124, 11, f.size);
  octal(h, 136, 11, f.mtime);
  h[156] = f.type;
  if (f.linkname) f.linkname.copy(h, 157, 0, Math.min(f.linkname.length, 100));
  h.write('ustar\x0000', 257, 8, 'latin1');
  h.write('root', 265, 'latin1');
  h.write('root', 297, 'latin1');
  octal(h, 329, 7, 0); // devmajor
  octal(h, 337, 7, 0); // devminor
  if (f.prefix) f.prefix.copy(h, 345, 0, Math.min(f.prefix.length, 155));
  let sum = 8 * 0x20;
  for (let i = 0; i < BLOCK; i++) if (i < 148 || i >= 156) sum += h[i]!;
  octal(h, 148, 7, sum);
  return h;
}

/** A pax record "<length> <key>=<value>\n", the length counting its own digits. */
export function paxRecord(key: string, value: Buffer): Buffer {
  const rest = 1 + key.length + 1 + value.length + 1; // " " key "=" value "\n"
  let digits = 1;
  while (String(rest + digits).length > digits) digits++;
  const len = rest + digits;
  return Buffer.concat([Buffer.from(`${len} ${key}=`, 'latin1'), value, Buffer.from('\n')]);
}

/**
 * Headers of one archive share everything but name, mode, size, type, link name and prefix (git writes every
 * entry with the commit's time), so a template with its partial checksum is copied and completed in place.
 */
export class HeaderTemplate {
  private readonly template: Buffer;
  private readonly baseSum: number;

  constructor(mtime: number) {
    this.template = ustarHeader({ name: Buffer.alloc(0), mode: 0, size: 0, mtime, type: 0 });
    let sum = 8 * 0x20;
    for (let i = 0; i < BLOCK; i++) if (i < 148 || i >= 156) sum += this.template[i]!;
    // The template's name, mode and size fields hold zeros and "0000000"/"00000000000"; take their digits out.
    for (let i = 100; i < 107; i++) sum -= this.template[i]!;
    for (let i = 124; i < 135; i++) sum -= this.template[i]!;
    this.baseSum = sum;
  }

  /** Write a header at buf[at..at+512). `name`, `prefix` and `linkname` are latin1 strings of raw bytes. */
  write(buf: Buffer, at: number, name: string, mode: number, size: number, type: number, linkname: string, prefix: string): void {
    this.template.copy(buf, at);
    let sum = this.baseSum + type;
    sum += putString(buf, at, name, 100);
    sum += putOctal(buf, at + 100, 7, mode & 0o7777);
    sum += putOctal(buf, at + 124, 11, size);
    buf[at + 156] = type;
    if (linkname) sum += putString(buf, at + 157, linkname, 100);
    if (prefix) sum += putString(buf, at + 345, prefix, 155);
    putOctal(buf, at + 148, 7, sum);
  }
}

function putString(buf: Buffer, at: number, s: string, max: number): number {
  const n = Math.min(s.length, max);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i) & 0xff;
    buf[at + i] = c;
    sum += c;
  }
  return sum;
}

/** `digits` octal digits and a NUL; returns the sum of the bytes written. */
function putOctal(buf: Buffer, at: number, digits: number, value: number): number {
  let sum = 0;
  for (let i = digits - 1; i >= 0; i--) {
    const d = 0x30 + (value % 8);
    buf[at + i] = d;
    sum += d;
    value = Math.floor(value / 8);
  }
  buf[at + digits] = 0;
  return sum;
}
