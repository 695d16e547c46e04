// Glob matching as gitignore(5) and gitattributes(5) define it ("PATTERN FORMAT"), over raw bytes held in
// latin1 strings. With `pathname` set (patterns containing a slash): "*" and "?" and bracket expressions never
// match "/"; "**" matches across directories only as a whole component ("**/x", "x/**", "x/**/y", where
// "**/" may also match nothing), elsewhere it is just "*". Without it, "*" matches anything. Bracket
// expressions take "!" or "^" for negation, ranges, backslash escapes and the POSIX classes, in the C locale
// (bytes above 0x7f are in no class). A pattern ending in the middle of a bracket expression, or naming an
// unknown class, matches nothing.
//
// The matcher is a plain backtracking one; failures are memoised per (pattern position, text position) at
// each star so that hostile patterns ("*a*a*a*a*b") stay polynomial.

const STAR = 0x2a;
const QUESTION = 0x3f;
const BACKSLASH = 0x5c;
const OPEN = 0x5b;
const CLOSE = 0x5d;
const SLASH = 0x2f;

function inClass(name: string, c: number): boolean | null {
  switch (name) {
    case 'alnum': return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
    case 'alpha': return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
    case 'blank': return c === 0x20 || c === 0x09;
    case 'cntrl': return c < 0x20 || c === 0x7f;
    case 'digit': return c >= 0x30 && c <= 0x39;
    case 'graph': return c > 0x20 && c < 0x7f;
    case 'lower': return c >= 0x61 && c <= 0x7a;
    case 'print': return c >= 0x20 && c < 0x7f;
    case 'punct': return c > 0x20 && c < 0x7f && !((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a));
    // git's own ctype: space, tab, LF, CR (not VT or FF).
    case 'space': return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
    case 'upper': return c >= 0x41 && c <= 0x5a;
    case 'xdigit': return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
    default: return null;
  }
}

/**
 * Match the bracket expression starting at p[pi] === "[" against byte c. Returns the pattern position after
 * the closing "]" when it matches, -1 when it does not, -2 when the expression is malformed (matches nothing).
 */
function bracket(p: string, pi: number, c: number, pathname: boolean): number {
  let k = pi + 1;
  let ch = p.charCodeAt(k);
  let negated = false;
  if (ch === 0x21 /* ! */ || ch === 0x5e /* ^ */) {
    negated = true;
    k++;
    ch = p.charCodeAt(k);
  }
  let matched = false;
  let prev = 0; // 0: no previous character a range could start from
  // The first character is always a member, even "]".
  for (;;) {
    if (Number.isNaN(ch)) return -2;
    if (ch === BACKSLASH) {
      k++;
      ch = p.charCodeAt(k);
      if (Number.isNaN(ch)) return -2;
      if (c === ch) matched = true;
    } else if (ch === 0x2d /* - */ && prev !== 0 && k + 1 < p.length && p.charCodeAt(k + 1) !== CLOSE) {
      k++;
      ch = p.charCodeAt(k);
      if (ch === BACKSLASH) {
        k++;
        ch = p.charCodeAt(k);
        if (Number.isNaN(ch)) return -2;
      }
      if (c <= ch && c >= prev) matched = true;
      ch = 0;
    } else if (ch === OPEN && p.charCodeAt(k + 1) === 0x3a /* : */) {
      const s = k + 2;
      let e = s;
      while (e < p.length && p.charCodeAt(e) !== CLOSE) e++;
      if (e >= p.length) return -2;
      if (e - s - 1 < 0 || p.charCodeAt(e - 1) !== 0x3a) {
        // No ":]": an ordinary "[".
        if (c === OPEN) matched = true;
      } else {
        const r = inClass(p.slice(s, e - 1), c);
        if (r === null) return -2;
        if (r) matched = true;
        k = e;
        ch = 0;
      }
    } else if (c === ch) {
      matched = true;
    }
    prev = ch;
    k++;
    ch = p.charCodeAt(k);
    if (ch === CLOSE) break;
  }
  if (matched === negated || (pathname && c === SLASH)) return -1;
  return k + 1;
}

export function wildmatch(p: string, t: string, pathname: boolean): boolean {
  const failed = new Set<number>();
  const width = t.length + 1;

  const match = (pi: number, ti: number): boolean => {
    while (pi < p.length) {
      const pc = p.charCodeAt(pi);
      if (pc === STAR) {
        let j = pi;
        while (j < p.length && p.charCodeAt(j) === STAR) j++;
        let matchSlash = !pathname;
        if (pathname && j - pi >= 2) {
          const atStart = pi === 0 || p.charCodeAt(pi - 1) === SLASH;
          const next = p.charCodeAt(j);
          const atEnd = j === p.length || next === SLASH || (next === BACKSLASH && p.charCodeAt(j + 1) === SLASH);
          if (atStart && atEnd) {
            // "**/" may match no directory at all.
            if (next === SLASH && match(j + 1, ti)) return true;
            matchSlash = true;
          }
        }
        if (j === p.length) return matchSlash || t.indexOf('/', ti) < 0;
        if (!matchSlash && p.charCodeAt(j) === SLASH) {
          // One "*" before a slash takes exactly the rest of this path component.
          const slash = t.indexOf('/', ti);
          if (slash < 0) return false;
          ti = slash;
          pi = j;
          continue;
        }
        const key = j * width + ti;
        if (failed.has(key)) return false;
        for (let k = ti; k < t.length; k++) {
          if (match(j, k)) return true;
          if (!matchSlash && t.charCodeAt(k) === SLASH) break;
        }
        failed.add(key);
        return false;
      }
      if (ti >= t.length) return false;
      const tc = t.charCodeAt(ti);
      if (pc === QUESTION) {
        if (pathname && tc === SLASH) return false;
      } else if (pc === OPEN) {
        const next = bracket(p, pi, tc, pathname);
        if (next < 0) return false;
        pi = next;
        ti++;
        continue;
      } else if (pc === BACKSLASH) {
        pi++;
        if (pi >= p.length || p.charCodeAt(pi) !== tc) return false;
      } else if (pc !== tc) {
        return false;
      }
      pi++;
      ti++;
    }
    return ti === t.length;
  };
  return match(0, 0);
}
