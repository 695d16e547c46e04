// Parsing a gitattributes(5) file: one "pattern attr1 attr2 ..." per line, where an attribute is set ("name"),
// unset ("-name"), unspecified ("!name") or given a value ("name=value"). Macro lines "[attr]name ..." are
// honoured only where git honours them (the top-level .gitattributes and $GIT_DIR/info/attributes). The file
// comes from the archived tree, so it is attacker-controlled; git's own bounds decide what is ignored
// (files of 100 MiB or more, lines of 2048 bytes or more), since ignoring differently would change the bytes.
// Lines git rejects (an invalid attribute name, a negative pattern, an unterminated quote) are dropped whole.

/** git's ATTR_MAX_FILE_SIZE: a larger attributes file is ignored entirely. */
export const ATTR_MAX_FILE_BYTES = 100 * 1024 * 1024;
/** git's ATTR_MAX_LINE_LENGTH: a line this long or longer is ignored. */
const ATTR_MAX_LINE_BYTES = 2048;

/** true: set; false: unset ("-a"); null: unspecified ("!a"); a string: a value ("a=v"). */
export type AttrValue = true | false | null | string;

export interface AttrState {
  name: string;
  value: AttrValue;
}

export interface Pattern {
  /** The pattern without a leading "!" or trailing "/" (latin1 bytes). */
  text: string;
  /** Ended with "/": matches directories only. */
  mustBeDir: boolean;
  /** Contains no "/": matched against the last path component only. */
  noDir: boolean;
  /** Length of the leading part without glob characters. */
  literalLength: number;
}

export type Rule =
  | { kind: 'pattern'; pattern: Pattern; states: AttrState[] }
  | { kind: 'macro'; name: string; states: AttrState[] };

const BLANK = ' \t\r\n';

function isBlank(c: string | undefined): boolean {
  return c !== undefined && BLANK.includes(c);
}

function skipBlanks(s: string, i: number): number {
  while (i < s.length && isBlank(s[i])) i++;
  return i;
}

function tokenEnd(s: string, i: number): number {
  while (i < s.length && !isBlank(s[i])) i++;
  return i;
}

export function isValidAttrName(name: string): boolean {
  return /^[-._0-9a-zA-Z]+$/.test(name) && !name.startsWith('-');
}

/** C-style unquoting as git's quote.c does it; returns [text, index after the closing quote] or null. */
function unquote(s: string, start: number): [string, number] | null {
  let out = '';
  let i = start + 1;
  while (i < s.length) {
    const c = s[i]!;
    if (c === '"') return [out, i + 1];
    if (c !== '\\') {
      out += c;
      i++;
      continue;
    }
    const e = s[i + 1];
    i += 2;
    switch (e) {
      case 'a': out += '\x07'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'v': out += '\v'; break;
      case '\\': out += '\\'; break;
      case '"': out += '"'; break;
      case '0': case '1': case '2': case '3': {
        const oct = s.slice(i - 1, i + 2);
        if (!/^[0-3][0-7][0-7]$/.test(oct)) return null;
        out += String.fromCharCode(parseInt(oct, 8));
        i += 2;
        break;
      }
      default: return null;
    }
  }
  return null;
}

function parsePattern(raw: string): Pattern | null {
  // git keeps patterns as C strings: a NUL from an escape ends them.
  let p = raw.includes('\0') ? raw.slice(0, raw.indexOf('\0')) : raw;
  if (p.startsWith('!')) return null; // negative patterns are refused in attributes files
  let literalLength = 0;
  while (literalLength < p.length && !'*?[\\'.includes(p[literalLength]!)) literalLength++;
  let mustBeDir = false;
  if (p.endsWith('/')) {
    mustBeDir = true;
    p = p.slice(0, -1);
  }
  const noDir = !p.includes('/');
  return { text: p, mustBeDir, noDir, literalLength: Math.min(literalLength, p.length) };
}

function parseStates(s: string, i: number): AttrState[] | null {
  const states: AttrState[] = [];
  i = skipBlanks(s, i);
  while (i < s.length) {
    const end = tokenEnd(s, i);
    const token = s.slice(i, end);
    const eq = token.indexOf('=');
    let name = eq >= 0 ? token.slice(0, eq) : token;
    let value: AttrValue = eq >= 0 ? token.slice(eq + 1) : true;
    if (name.startsWith('-') || name.startsWith('!')) {
      value = name.startsWith('-') ? false : null;
      name = name.slice(1);
    }
    if (!isValidAttrName(name)) return null;
    states.push({ name, value });
    i = skipBlanks(s, end);
  }
  return states;
}

function parseLine(line: string, macrosAllowed: boolean): Rule | null {
  let i = skipBlanks(line, 0);
  if (i >= line.length || line[i] === '#') return null;
  if (line.length >= ATTR_MAX_LINE_BYTES) return null;
  let name: string;
  let rest: number;
  const quoted = line[i] === '"' ? unquote(line, i) : null;
  if (quoted) [name, rest] = quoted;
  else {
    rest = tokenEnd(line, i);
    name = line.slice(i, rest);
  }
  if (name.length > 6 && name.startsWith('[attr]')) {
    if (!macrosAllowed) return null;
    const m = name.slice(6);
    const start = skipBlanks(m, 0);
    const macro = m.slice(start, tokenEnd(m, start));
    if (!isValidAttrName(macro)) return null;
    const states = parseStates(line, rest);
    return states ? { kind: 'macro', name: macro, states } : null;
  }
  const states = parseStates(line, rest);
  if (!states) return null;
  const pattern = parsePattern(name);
  return pattern ? { kind: 'pattern', pattern, states } : null;
}

/** Parse an attributes file's bytes. */
export function parseAttributes(buf: Buffer, macrosAllowed: boolean): Rule[] {
  if (buf.length >= ATTR_MAX_FILE_BYTES) return [];
  // git reads the file as a C string: nothing after a NUL counts. A UTF-8 byte order mark is skipped.
  let text = buf.toString('latin1');
  const nul = text.indexOf('\0');
  if (nul >= 0) text = text.slice(0, nul);
  if (text.startsWith('\xef\xbb\xbf')) text = text.slice(3);
  const rules: Rule[] = [];
  for (const line of text.split('\n')) {
    const rule = parseLine(line, macrosAllowed);
    if (rule) rules.push(rule);
  }
  return rules;
}
