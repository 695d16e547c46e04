// Which attributes apply to a path (gitattributes(5), "USING MACRO ATTRIBUTES" and "DESCRIPTION"): the
// sources are, from highest precedence, $GIT_DIR/info/attributes, then the .gitattributes of the path's own
// directory, its parent's, ... up to the top-level one, then git's built-in "binary" macro. Within a file a
// later line wins over an earlier one, and within a line a later attribute over an earlier one; the first
// source (in that order) to say anything about an attribute decides it, "!attr" included. An attribute that
// is a macro and gets set also sets the attributes of its definition, with the same precedence as the line
// that set it. Macro definitions come from the top-level file, info/attributes and the built-ins.
//
// Patterns are matched as gitattributes(5) says (the gitignore rules without negation): a pattern without
// "/" against the last component, otherwise against the path relative to the directory of the file that
// holds it; a trailing "/" restricts it to directories (git checks directory paths too when archiving,
// for export-ignore). System and user attribute files are not read: the archive is defined by the repository.

import { wildmatch } from './wildmatch.ts';
import type { AttrState, AttrValue, Pattern, Rule } from './parse.ts';

export interface AttrFrame {
  /** The directory the attributes file sits in, relative to the tree root, without trailing "/" ("" for the root). */
  base: string;
  rules: Rule[];
}

const BUILTIN_MACROS: Record<string, AttrState[]> = {
  binary: [
    { name: 'diff', value: false },
    { name: 'merge', value: false },
    { name: 'text', value: false },
  ],
};

function matches(pattern: Pattern, base: string, path: string, isDir: boolean): boolean {
  if (pattern.mustBeDir && !isDir) return false;
  if (pattern.noDir) {
    const name = path.slice(path.lastIndexOf('/') + 1);
    if (pattern.literalLength === pattern.text.length) return name === pattern.text;
    return wildmatch(pattern.text, name, false);
  }
  // Relative to the attributes file's directory; a leading "/" only anchors.
  let p = pattern.text;
  let literal = pattern.literalLength;
  if (p.startsWith('/')) {
    p = p.slice(1);
    literal--;
  }
  let name: string;
  if (base === '') name = path;
  else {
    if (path.length < base.length + 1 || path.charCodeAt(base.length) !== 0x2f || !path.startsWith(base)) return false;
    name = path.slice(base.length + 1);
  }
  // git compares the literal head first and hands only the rest to the glob matcher, so a "**" right after
  // it counts as being at the start of a pattern ("a**" matches "ab/c"). Reproduced on purpose.
  if (literal > 0) {
    if (name.slice(0, literal) !== p.slice(0, literal)) return false;
    p = p.slice(literal);
    name = name.slice(literal);
    if (p === '' && name === '') return true;
  }
  return wildmatch(p, name, true);
}

export class AttributeRules {
  private readonly info: AttrFrame | null;
  private readonly macros = new Map<string, AttrState[]>();
  constructor(root: Rule[], info: Rule[] | null) {
    this.info = info ? { base: '', rules: info } : null;
    // The highest-precedence definition of a macro wins: info/attributes, then the top-level file
    // (each read from its last line up), then the built-ins.
    for (const rules of [info ?? [], root]) {
      for (let i = rules.length - 1; i >= 0; i--) {
        const r = rules[i]!;
        if (r.kind === 'macro' && !this.macros.has(r.name)) this.macros.set(r.name, r.states);
      }
    }
    for (const [name, states] of Object.entries(BUILTIN_MACROS)) if (!this.macros.has(name)) this.macros.set(name, states);
  }

  private fill(states: AttrState[], out: Map<string, AttrValue>): void {
    for (let i = states.length - 1; i >= 0; i--) {
      const s = states[i]!;
      if (out.has(s.name)) continue;
      out.set(s.name, s.value);
      if (s.value === true) {
        const macro = this.macros.get(s.name);
        // Each expansion sets at least one new attribute before recursing, so this terminates.
        if (macro) this.fill(macro, out);
      }
    }
  }

  private fillFrame(frame: AttrFrame, path: string, isDir: boolean, out: Map<string, AttrValue>): void {
    const rules = frame.rules;
    for (let i = rules.length - 1; i >= 0; i--) {
      const r = rules[i]!;
      if (r.kind === 'pattern' && matches(r.pattern, frame.base, path, isDir)) this.fill(r.states, out);
    }
  }

  /**
   * The attributes of `path` (relative to the tree root, no trailing "/"), given the attribute files of its
   * directories from the root down (`frames`, the deepest last).
   */
  lookup(frames: readonly AttrFrame[], path: string, isDir: boolean): Map<string, AttrValue> {
    const out = new Map<string, AttrValue>();
    if (this.info) this.fillFrame(this.info, path, isDir, out);
    for (let f = frames.length - 1; f >= 0; f--) this.fillFrame(frames[f]!, path, isDir, out);
    return out;
  }
}
