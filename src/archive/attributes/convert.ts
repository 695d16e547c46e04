// The content conversions `git archive` applies to a regular file (gitattributes(5), "Effects"), with git's
// default configuration (core.autocrlf false, core.eol native = LF on the systems whose output we match):
// first `ident`, then end-of-line conversion, then (archive only) `export-subst`. Converting to the working
// tree only ever turns LF into CRLF, and only when `eol=crlf` applies to a text file: `text` and `eol=lf` leave
// LF alone, `text=auto eol=crlf` converts only files that look like text and hold no CR yet.
// A `filter` driver or a `working-tree-encoding` other than UTF-8 would need programs or tables we do not
// have: refused with E_UNSUPPORTED rather than written differently.

import { SourcemeshError } from '../../errors.ts';
import type { AttrValue } from './parse.ts';

export type EolConversion = 'none' | 'crlf' | 'auto-crlf';

export interface Conversion {
  ident: boolean;
  eol: EolConversion;
  exportSubst: boolean;
}

export const NO_CONVERSION: Conversion = { ident: false, eol: 'none', exportSubst: false };

/** What to do with a `filter=<driver>` attribute: refuse (default), or ignore it as git does with no driver configured. */
export type FilterPolicy = 'error' | 'ignore';

type CrlfAction = 'undefined' | 'binary' | 'text' | 'text-input' | 'text-crlf' | 'auto' | 'auto-input' | 'auto-crlf';

function actionOf(v: AttrValue | undefined): CrlfAction {
  if (v === true) return 'text';
  if (v === false) return 'binary';
  if (v === 'input') return 'text-input';
  if (v === 'auto') return 'auto';
  return 'undefined';
}

/** Decide the conversions for a regular file from its attributes; `path` names it in errors. */
export function conversionFor(attrs: Map<string, AttrValue>, path: string, filters: FilterPolicy): Conversion {
  if (attrs.size === 0) return NO_CONVERSION;
  const filter = attrs.get('filter');
  if (typeof filter === 'string' && filters === 'error') {
    throw new SourcemeshError('E_UNSUPPORTED', `${path}: the filter attribute (filter=${filter}) needs a filter driver; the archive would depend on local configuration`, { path, filter });
  }
  const encoding = attrs.get('working-tree-encoding');
  if (typeof encoding === 'string' && encoding !== '' && !/^utf-?8$/i.test(encoding)) {
    throw new SourcemeshError('E_UNSUPPORTED', `${path}: working-tree-encoding=${encoding} is not supported`, { path, encoding });
  }
  // The `text` attribute decides; the legacy `crlf` one only when `text` says nothing.
  let action = actionOf(attrs.get('text'));
  if (action === 'undefined') action = actionOf(attrs.get('crlf'));
  if (action !== 'binary') {
    const eol = attrs.get('eol');
    if (action === 'auto' && eol === 'lf') action = 'auto-input';
    else if (action === 'auto' && eol === 'crlf') action = 'auto-crlf';
    else if (eol === 'lf') action = 'text-input';
    else if (eol === 'crlf') action = 'text-crlf';
  }
  return {
    ident: attrs.get('ident') === true,
    eol: action === 'text-crlf' ? 'crlf' : action === 'auto-crlf' ? 'auto-crlf' : 'none',
    exportSubst: attrs.get('export-subst') === true,
  };
}

export function needsContent(c: Conversion): boolean {
  return c.ident || c.eol !== 'none' || c.exportSubst;
}

/**
 * `ident`: "$Id$", and "$Id:<anything>$" without a newline inside, become "$Id: <blob id> $". An existing
 * expansion holding a space before its last character is left alone (it belongs to another tool).
 */
export function expandIdent(src: Buffer, blobHex: string): Buffer {
  if (src.indexOf('$Id') < 0) return src;
  const parts: Buffer[] = [];
  const replacement = Buffer.from(`Id: ${blobHex} $`, 'latin1');
  let copied = 0;
  let s = 0;
  for (;;) {
    const dollar = src.indexOf(0x24, s);
    if (dollar < 0) break;
    s = dollar + 1;
    if (src.length - s < 3 || src[s] !== 0x49 /* I */ || src[s + 1] !== 0x64 /* d */) continue;
    let end: number;
    if (src[s + 2] === 0x24) end = s + 3;
    else if (src[s + 2] === 0x3a /* : */) {
      const close = src.indexOf(0x24, s + 3);
      if (close < 0) break;
      const nl = src.indexOf(0x0a, s + 3);
      if (nl >= 0 && nl < close) continue;
      const space = close - (s + 4) > 0 ? src.subarray(s + 4, close).indexOf(0x20) : -1;
      if (space >= 0 && s + 4 + space < close - 1) continue;
      end = close + 1;
    } else continue;
    parts.push(src.subarray(copied, s), replacement);
    copied = end;
    s = end;
  }
  if (parts.length === 0) return src;
  parts.push(src.subarray(copied));
  return Buffer.concat(parts);
}

/**
 * LF to CRLF for the working tree. With `auto-crlf`, only files git's heuristics call text (no NUL, no lone
 * CR, few non-printable bytes) and that hold no CR LF yet are converted.
 */
export function toCrlf(src: Buffer, mode: 'crlf' | 'auto-crlf'): Buffer {
  if (mode === 'crlf') return insertCr(src, countLoneLf(src));
  let loneLf = 0;
  let loneCr = 0;
  let crlf = 0;
  let nul = 0;
  let printable = 0;
  let nonPrintable = 0;
  const n = src.length;
  for (let i = 0; i < n; i++) {
    const c = src[i]!;
    if (c === 0x0d) {
      if (i + 1 < n && src[i + 1] === 0x0a) {
        crlf++;
        i++;
      } else loneCr++;
    } else if (c === 0x0a) loneLf++;
    else if (c === 0x7f) nonPrintable++;
    else if (c < 0x20) {
      // Backspace, tab, escape and form feed count as printable.
      if (c === 0x08 || c === 0x09 || c === 0x1b || c === 0x0c) printable++;
      else {
        if (c === 0) nul++;
        nonPrintable++;
      }
    } else printable++;
  }
  // A trailing ^Z (DOS end of file) is not held against the file.
  if (n > 0 && src[n - 1] === 0x1a) nonPrintable--;
  if (loneLf === 0) return src;
  // text=auto: leave files that already hold CRs, and files that look binary, alone.
  if (loneCr || crlf) return src;
  if (nul || printable >> 7 < nonPrintable) return src;
  return insertCr(src, loneLf);
}

function countLoneLf(src: Buffer): number {
  let n = 0;
  for (let i = src.indexOf(0x0a); i >= 0; i = src.indexOf(0x0a, i + 1)) if (i === 0 || src[i - 1] !== 0x0d) n++;
  return n;
}

/** Insert a CR before each of the `loneLf` LFs not preceded by one. */
function insertCr(src: Buffer, loneLf: number): Buffer {
  if (loneLf === 0) return src;
  const n = src.length;
  const out = Buffer.allocUnsafe(n + loneLf);
  let o = 0;
  let prev = 0;
  for (let i = 0; i < n; i++) {
    const c = src[i]!;
    if (c === 0x0a && prev !== 0x0d) out[o++] = 0x0d;
    out[o++] = c;
    prev = c;
  }
  return out;
}
