// The headers `git archive --format=tar` writes before each entry (git 2.39's archive-tar.c behaviour,
// described in docs/GIT-ARCHIVE.md): a path over 100 bytes split into ustar prefix and name at a "/", or else
// carried by a pax `path=` record in a header named "<id>.paxheader" with the entry named "<id>.data";
// symlink targets over 100 bytes in `linkpath=`; sizes over the ustar maximum in `size=`.

import { oidHex, type Oid } from '../git/object-id.ts';
import { HeaderTemplate, paxRecord, TYPE_FILE, TYPE_PAX, TYPE_PAX_GLOBAL, USTAR_MAX } from './header.ts';
import type { TarBlocker } from './writer.ts';

/** Where a path goes in a ustar header: `name` and `prefix` fields, or a pax record when it does not fit. */
export function splitPath(path: string): { name: string; prefix: string } | null {
  if (path.length <= 100) return { name: path, prefix: '' };
  // Split at the last "/" that leaves a prefix of at most 154 bytes (never at a directory's own trailing
  // slash); if the rest is still over 100 bytes, the caller uses a pax path record instead.
  let i = path.length;
  if (i > 1 && path.charCodeAt(i - 1) === 0x2f) i--;
  if (i > 155) i = 155;
  do i--;
  while (i > 0 && path.charCodeAt(i) !== 0x2f);
  if (i > 0 && path.length - i - 1 <= 100) return { name: path.slice(i + 1), prefix: path.slice(0, i) };
  return null;
}

export class EntryWriter {
  readonly #out: TarBlocker;
  readonly #headers: HeaderTemplate;

  /** `mtime`: the committer time, already capped at USTAR_MAX. */
  constructor(out: TarBlocker, mtime: number) {
    this.#out = out;
    this.#headers = new HeaderTemplate(mtime);
  }

  /** The pax global header: `comment=<commit id>`, and `mtime=` when the committer time does not fit. */
  globalHeader(commitHex: string, date: bigint): void {
    const records = [paxRecord('comment', Buffer.from(commitHex, 'latin1'))];
    if (date > BigInt(USTAR_MAX)) records.push(paxRecord('mtime', Buffer.from(date.toString(), 'latin1')));
    this.#pax('pax_global_header', TYPE_PAX_GLOBAL, Buffer.concat(records));
  }

  /** One entry's header(s); the caller writes a file's content after it. */
  entry(path: string, oid: Oid, type: number, mode: number, size: number, linkname: Buffer | null): void {
    const records: Buffer[] = [];
    const split = splitPath(path);
    if (!split) records.push(paxRecord('path', Buffer.from(path, 'latin1')));
    let link = '';
    if (linkname && linkname.length > 100) {
      link = `see ${oidHex(oid)}.paxheader`;
      records.push(paxRecord('linkpath', linkname));
    } else if (linkname) link = linkname.toString('latin1');
    let sizeField = type === TYPE_FILE ? size : 0;
    if (type === TYPE_FILE && size > USTAR_MAX) {
      sizeField = 0;
      records.push(paxRecord('size', Buffer.from(String(size), 'latin1')));
    }
    if (records.length > 0) this.#pax(`${oidHex(oid)}.paxheader`, TYPE_PAX, Buffer.concat(records));
    const [b, at] = this.#out.headerSlot();
    this.#headers.write(b, at, split ? split.name : `${oidHex(oid)}.data`, mode, sizeField, type, link, split ? split.prefix : '');
  }

  #pax(name: string, type: number, payload: Buffer): void {
    const [b, at] = this.#out.headerSlot();
    this.#headers.write(b, at, name, 0o666, payload.length, type, '', '');
    this.#out.data(payload);
  }
}
