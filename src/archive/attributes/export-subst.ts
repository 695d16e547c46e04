// `export-subst` (gitattributes(5)): each "$Format:<fmt>$" in the file becomes git log's pretty format <fmt>
// (git-log(1), "PRETTY FORMATS") applied to the archived commit; text after an unclosed "$Format:" stays.
// Only placeholders whose output we reproduce exactly are accepted:
//   %H %h %T %t %P %p  ids, full and abbreviated
//   %an %ae %ad %aD %ai %at, and the same with c for the committer
//   %s  subject    %n  newline    %%  a percent sign
// Anything else git would expand (%d and %D need refs, %(describe) tags, %ar the clock, %aN the mailmap, ...)
// is E_UNSUPPORTED: a clear refusal instead of different bytes. A "%" at the very end stays a "%", as in git.
//
// As in git's archive, no re-encoding happens (the format context asks for none), dates use the "default"
// format in the ident's own time zone, and abbreviated ids use git's automatic length.

import { SourcemeshError } from '../../errors.ts';
import type { Commit } from '../git/objects.ts';
import { oidHex, type Oid } from '../git/object-id.ts';

export interface SubstContext {
  commitOid: Oid;
  commit: Commit;
  /** Parents as git sees them (none for a shallow commit). */
  parents: Oid[];
  /** git's `%h` for an object id. */
  abbrev(oid: Oid): string;
  /** The file being expanded, for error messages. */
  path: string;
}

const WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

interface Ident {
  name: string;
  email: string;
  /** The timestamp digits as written. */
  date: string;
  tz: number;
}

interface ParsedMessage {
  author: string | null;
  committer: string | null;
  /** Offset where the message starts (after the header's blank line), or -1 when git's behaviour is undefined. */
  messageOffset: number;
  text: string;
}

function isGitSpace(c: string | undefined): boolean {
  return c === ' ' || c === '\t' || c === '\n' || c === '\r';
}

function parseMessage(raw: Buffer): ParsedMessage {
  // git formats from the commit as a C string: nothing after a NUL exists for it.
  let text = raw.toString('latin1');
  const nul = text.indexOf('\0');
  if (nul >= 0) text = text.slice(0, nul);
  let author: string | null = null;
  let committer: string | null = null;
  let i = 0;
  while (i < text.length) {
    let eol = text.indexOf('\n', i);
    if (eol < 0) eol = text.length;
    if (eol === i) break;
    const line = text.slice(i, eol);
    // The last author and committer header lines win, as in git's pretty.c.
    if (line.startsWith('author ')) author = line.slice(7);
    else if (line.startsWith('committer ')) committer = line.slice(10);
    if (eol === text.length) return { author, committer, messageOffset: -1, text };
    i = eol + 1;
  }
  return { author, committer, messageOffset: i, text };
}

function parseIdent(line: string | null): Ident | null {
  if (line === null) return null;
  // Strictly "Name <email> digits +hhmm"; git copes with broken idents in ways we do not reproduce.
  const m = /^([^<>\n]*[^<>\s]|) ?<([^<>\n]*)> (\d{1,20}) ([+-]\d{4})$/.exec(line);
  if (!m || (m[1] === '' && line[0] !== '<')) return null;
  return { name: m[1]!, email: m[2]!, date: m[3]!, tz: Number(m[4]) };
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

function formatDate(ident: Ident, style: 'd' | 'D' | 'i', ctx: SubstContext): string {
  const seconds = BigInt(ident.date);
  const abs = Math.abs(ident.tz);
  const minutes = Math.floor(abs / 100) * 60 + (abs % 100);
  const local = Number(seconds) + (ident.tz < 0 ? -minutes : minutes) * 60;
  // JavaScript dates reach 8.64e15 ms; git's would go on. Refuse rather than differ.
  if (seconds > 8_000_000_000_000n) throw new SourcemeshError('E_UNSUPPORTED', `${ctx.path}: export-subst date ${ident.date} is out of range`);
  const d = new Date(local * 1000);
  const tz = `${ident.tz < 0 ? '-' : '+'}${pad(abs, 4)}`;
  const [Y, M, D, h, m, s, wd] = [d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds(), d.getUTCDay()];
  const time = `${pad(h, 2)}:${pad(m, 2)}:${pad(s, 2)}`;
  if (style === 'i') return `${pad(Y, 4)}-${pad(M + 1, 2)}-${pad(D, 2)} ${time} ${tz}`;
  if (style === 'D') return `${WEEKDAYS[wd]}, ${D} ${MONTHS[M]} ${Y} ${time} ${tz}`;
  return `${WEEKDAYS[wd]} ${MONTHS[M]} ${D} ${time} ${Y} ${tz}`;
}

function subject(p: ParsedMessage, ctx: SubstContext): string {
  if (p.messageOffset < 0) throw new SourcemeshError('E_UNSUPPORTED', `${ctx.path}: %s of a commit without a message separator`);
  const text = p.text;
  let i = p.messageOffset;
  const line = (from: number): [number, number] => {
    // [end of content without trailing whitespace, start of next line]
    let eol = text.indexOf('\n', from);
    const next = eol < 0 ? text.length : eol + 1;
    if (eol < 0) eol = text.length;
    let end = eol;
    while (end > from && isGitSpace(text[end - 1])) end--;
    return [end, next];
  };
  // Skip blank lines, then join the first paragraph's lines with spaces.
  while (i < text.length) {
    const [end, next] = line(i);
    if (end > i) break;
    i = next;
  }
  const parts: string[] = [];
  while (i < text.length) {
    const [end, next] = line(i);
    if (end === i) break;
    parts.push(text.slice(i, end));
    i = next;
  }
  return parts.join(' ');
}

/** Expand one format string (latin1 bytes) against the commit. */
function formatCommit(fmt: string, p: ParsedMessage, ctx: SubstContext): string {
  let out = '';
  let i = 0;
  const unsupported = (ph: string) =>
    new SourcemeshError('E_UNSUPPORTED', `${ctx.path}: export-subst placeholder %${ph} is not supported (only %H %h %T %t %P %p %an %ae %ad %aD %ai %at %cn %ce %cd %cD %ci %ct %s %n %%)`, { path: ctx.path, placeholder: `%${ph}` });
  while (i < fmt.length) {
    const pct = fmt.indexOf('%', i);
    if (pct < 0) {
      out += fmt.slice(i);
      break;
    }
    out += fmt.slice(i, pct);
    const c = fmt[pct + 1];
    i = pct + 2;
    switch (c) {
      case undefined: out += '%'; break;
      case '%': out += '%'; break;
      case 'n': out += '\n'; break;
      case 'H': out += oidHex(ctx.commitOid); break;
      case 'h': out += ctx.abbrev(ctx.commitOid); break;
      case 'T': out += oidHex(ctx.commit.tree); break;
      case 't': out += ctx.abbrev(ctx.commit.tree); break;
      case 'P': out += ctx.parents.map(oidHex).join(' '); break;
      case 'p': out += ctx.parents.map((o) => ctx.abbrev(o)).join(' '); break;
      case 's': out += subject(p, ctx); break;
      case 'a':
      case 'c': {
        const part = fmt[pct + 2];
        if (part === undefined || !'neDdit'.includes(part)) throw unsupported(c + (part ?? ''));
        i = pct + 3;
        const ident = parseIdent(c === 'a' ? p.author : p.committer);
        if (!ident) throw new SourcemeshError('E_UNSUPPORTED', `${ctx.path}: export-subst %${c}${part} of a malformed ${c === 'a' ? 'author' : 'committer'} line`);
        if (part === 'n') out += ident.name;
        else if (part === 'e') out += ident.email;
        else if (part === 't') out += ident.date;
        else out += formatDate(ident, part as 'd' | 'D' | 'i', ctx);
        break;
      }
      default:
        throw unsupported(c);
    }
  }
  return out;
}

/** Expand every "$Format:...$" in `src`; returns `src` itself when there is none. */
export function expandExportSubst(src: Buffer, ctx: SubstContext): Buffer {
  const marker = Buffer.from('$Format:');
  let at = src.indexOf(marker);
  if (at < 0) return src;
  const parsed = parseMessage(ctx.commit.raw);
  const parts: Buffer[] = [];
  let copied = 0;
  while (at >= 0) {
    const close = src.indexOf(0x24, at + marker.length);
    if (close < 0) break;
    let fmt = src.toString('latin1', at + marker.length, close);
    // The format is a C string too.
    const nul = fmt.indexOf('\0');
    if (nul >= 0) fmt = fmt.slice(0, nul);
    parts.push(src.subarray(copied, at), Buffer.from(formatCommit(fmt, parsed, ctx), 'latin1'));
    copied = close + 1;
    at = src.indexOf(marker, copied);
  }
  parts.push(src.subarray(copied));
  return Buffer.concat(parts);
}
