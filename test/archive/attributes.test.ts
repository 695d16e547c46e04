// Conformance of the attributes git applies when archiving (export-ignore, export-subst, text/eol, ident,
// macros, info/attributes), compared byte for byte with `git archive`; and the refusals (filter drivers,
// working-tree-encoding, placeholders we cannot reproduce).

import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { isSourcemeshError } from '../../src/errors.ts';
import { assertSameArchive, commitAll, git, gitText, initRepo, makeRepo, ourArchive, tempRoot, writeFiles } from './git-fixture.ts';

const root = tempRoot();
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const repoDir = (name: string) => path.join(root, `${n++}-${name}`);

const LF_TEXT = 'one\ntwo\r\nthree\n\nfour';
const MIXED = 'a\r\nb\nc\n';
const BINARYISH = 'bin\0ary\nline\n';

describe('export-ignore', () => {
  test('files, directories, globs, "**", trailing-slash patterns, nested .gitattributes, info/attributes', async () => {
    const dir = repoDir('ignore');
    makeRepo(dir, {
      '.gitattributes': [
        '*.log export-ignore',
        '/top-only.txt export-ignore',
        'build/ export-ignore',
        'docs/**/*.tmp export-ignore',
        'vendor export-ignore',
        'a**  export-ignore',
        '"quoted name.txt" export-ignore',
        '# comment line export-ignore',
        '!negated export-ignore',
        'allfiles/* export-ignore',
        'keep.log -export-ignore',
        '[attr]ignored export-ignore',
        'macro-* ignored',
      ].join('\n') + '\n',
      'x.log': 'log', 'keep.log': 'kept', 'sub/y.log': 'log',
      'top-only.txt': 'top', 'sub/top-only.txt': 'kept',
      'build/out.o': 'o', 'src/build/inner.o': 'inner dir named build',
      'docs/a.tmp': 'docs a', 'docs/x/b.tmp': 'docs x b', 'docs/x/y/c.tmp': 'c', 'docs/readme': 'r',
      'vendor/lib.c': 'v', 'sub/vendor': 'a file named vendor',
      'abc/def': 'a** quirk', 'ab': 'ab', 'b-a': 'b-a',
      'quoted name.txt': 'q', 'negated': 'n',
      'allfiles/one': '1', 'allfiles/two': '2',
      'macro-file': 'm', 'macro/file': 'not a match',
      'nested/.gitattributes': '*.txt export-ignore\n/local export-ignore\n[attr]nope export-ignore\nnope-file nope\n',
      'nested/a.txt': 'ignored by nested', 'nested/local': 'ignored', 'nested/deeper/local': 'kept', 'nested/deeper/b.txt': 'ignored',
      'nested/nope-file': 'kept: macros are not allowed below the top level',
      'other/a.txt': 'kept',
    });
    await assertSameArchive(dir, 'HEAD', 'P/');
    await assertSameArchive(dir, 'HEAD');
    mkdirSync(path.join(dir, '.git', 'info'), { recursive: true });
    writeFileSync(path.join(dir, '.git', 'info', 'attributes'), 'other/* export-ignore\nkeep.log export-ignore\n[attr]ignored -export-ignore\n');
    await assertSameArchive(dir, 'HEAD', 'P/');
  });

  test('a directory whose files are all ignored is still written; an ignored directory is not', async () => {
    const dir = repoDir('ignore-dirs');
    makeRepo(dir, {
      '.gitattributes': 'emptied/* export-ignore\ngone export-ignore\nsub/* export-ignore\n',
      'emptied/a': 'a', 'emptied/b': 'b', 'gone/x': 'x', 'gone/y/z': 'z', 'sub/inner/file': 'kept: sub/* matches sub/inner itself',
      'plain': 'p',
    });
    await assertSameArchive(dir, 'HEAD', 'P/');
  });

  test('a symlinked .gitattributes is read from the tree as git reads it', async () => {
    const dir = repoDir('ignore-symlink');
    makeRepo(dir, { 's/.gitattributes': { symlink: '*.txt export-ignore' }, 's/a.txt': 'gone', 's/b': 'kept' });
    await assertSameArchive(dir, 'HEAD', 'P/');
  });
});

describe('text, eol and ident', () => {
  test('eol=crlf, text, -text, text=auto, crlf, binary macro, eol=lf, across kinds of content', async () => {
    const dir = repoDir('eol');
    const files: Record<string, string | Buffer> = {
      '.gitattributes': [
        '*.crlf eol=crlf',
        '*.text text',
        '*.notext -text eol=crlf',
        '*.auto text=auto eol=crlf',
        '*.autolf text=auto eol=lf',
        '*.autoonly text=auto',
        '*.input text=input eol=crlf',
        '*.legacy crlf eol=crlf',
        '*.legacyoff -crlf eol=crlf',
        '*.bin binary eol=crlf',
        '*.binfirst eol=crlf binary',
        '*.lf eol=lf',
        '*.textcrlf text eol=crlf',
        '*.unset !text eol=crlf',
        '*.valued text=foo eol=crlf',
      ].join('\n') + '\n',
    };
    const contents: Record<string, string | Buffer> = {
      lf: LF_TEXT, mixed: MIXED, binaryish: BINARYISH, lonecr: 'a\rb\nc\n', empty: '', nolf: 'no newline at all',
      ctrl: `${'\x01'.repeat(3)}${'text '.repeat(100)}\n`, manyctrl: `${'\x01'.repeat(20)}${'t'.repeat(100)}\n`,
      eof: 'dos\ntext\n\x1a', latin: Buffer.from([0xe9, 0x0a, 0xff, 0x0a]), crlfonly: 'a\r\nb\r\n', del: 'x\x7f\n',
    };
    for (const ext of ['crlf', 'text', 'notext', 'auto', 'autolf', 'autoonly', 'input', 'legacy', 'legacyoff', 'bin', 'binfirst', 'lf', 'textcrlf', 'unset', 'valued', 'none']) {
      for (const [kind, body] of Object.entries(contents)) files[`${kind}.${ext}`] = body;
    }
    makeRepo(dir, files);
    await assertSameArchive(dir, 'HEAD', 'P/');
  });

  test('ident: $Id$ forms, existing expansions, other tools\' ids, with eol conversion', async () => {
    const dir = repoDir('ident');
    makeRepo(dir, {
      '.gitattributes': '*.c ident\n*.both ident eol=crlf\n',
      'a.c': '/* $Id$ */\n$Id: old-expansion $\n$Id:no-space$\n$Id: has space inside $\n$Id:$ x\n$Id: newline\n$\n$Id\n$Id$$Id$\n$I$d$ end $Id',
      'b.c': 'no keyword here\n',
      'c.c': 'trailing $Id:',
      'd.both': 'line $Id$\nnext\n',
      'e.txt': '$Id$ not ident\n',
    });
    await assertSameArchive(dir, 'HEAD', 'P/');
  });
});

describe('export-subst', () => {
  test('every supported placeholder, with time zones, merges, subjects and unicode', async () => {
    const dir = repoDir('subst');
    initRepo(dir);
    writeFiles(dir, { 'base': 'b' });
    commitAll(dir, 'base');
    git(dir, ['checkout', '-q', '-b', 'side']);
    writeFiles(dir, { 'side': 's' });
    commitAll(dir, 'side');
    git(dir, ['checkout', '-q', 'main']);
    const all = '%H|%h|%T|%t|%P|%p|%an|%ae|%ad|%aD|%ai|%at|%cn|%ce|%cd|%cD|%ci|%ct|%s|%n|%%|end%';
    writeFiles(dir, {
      '.gitattributes': '*.subst export-subst\nsub/** export-subst\n',
      'version.subst': `v=$Format:${all}$\nsecond $Format:%H$ and $Format:%h$ and $Format:unclosed`,
      'sub/a/b.txt': '$Format:%s$',
      'plain.txt': '$Format:%H$ stays\n',
      'empty.subst': '',
      'two.subst': '$Format:$$Format:%%$$$Format:%n$',
    });
    commitAll(dir, 'subst files');
    git(dir, ['merge', '-q', '--no-ff', '-m', '  Merge: subject  \t\nwith a second line\n\nbody text\n', 'side'], {
      env: { GIT_AUTHOR_NAME: 'Ünïcødé Åuthor', GIT_AUTHOR_EMAIL: 'u@例え.jp', GIT_AUTHOR_DATE: '1234567890 -0330', GIT_COMMITTER_DATE: '951782400 +1400' },
    });
    await assertSameArchive(dir, 'HEAD', 'P/');
    for (const tz of ['+0000', '-1200', '+0545', '-0001', '+0059']) {
      writeFiles(dir, { 'tz.subst': `$Format:%ad|%aD|%ai|%cd|%cD|%ci$` });
      commitAll(dir, `tz ${tz}`, { GIT_AUTHOR_DATE: `1709208000 ${tz}`, GIT_COMMITTER_DATE: `1582934400 ${tz}` });
      await assertSameArchive(dir, 'HEAD', 'P/');
    }
    // Leap days, the end of 1999, 1973, 2096, a root commit.
    for (const date of ['951782400 +0000', '946684799 +0100', '100000000 +0000', '4000000000 -0800']) {
      writeFiles(dir, { 'date.subst': `$Format:%ad %aD %ai %at$ ${date}` });
      commitAll(dir, date, { GIT_AUTHOR_DATE: date, GIT_COMMITTER_DATE: date });
      await assertSameArchive(dir, 'HEAD', 'P/');
    }
    const orphan = repoDir('subst-root');
    makeRepo(orphan, { '.gitattributes': '* export-subst\n', 'f': '[$Format:%P|%p|%s$]' }, 'root commit');
    await assertSameArchive(orphan, 'HEAD', 'P/');
  });

  test('commit messages: blank lines before the subject, a multi-line subject, no message, non-UTF-8', async () => {
    const dir = repoDir('subst-messages');
    makeRepo(dir, { '.gitattributes': '* export-subst\n', 'f': '[$Format:%s$]' });
    const tree = gitText(dir, ['rev-parse', 'HEAD^{tree}']);
    const messages = [
      '\n\n  \nfirst\nsecond  \n\nbody\n',
      'single line without newline',
      '',
      'trailing spaces   \t\n',
      'caf\xe9 in latin-1\n',
    ];
    for (const m of messages) {
      const header = m.includes('\xe9') ? 'encoding ISO-8859-1\n' : '';
      const c = gitText(dir, ['hash-object', '-t', 'commit', '-w', '--stdin', '--literally'], {
        input: Buffer.from(`tree ${tree}\nauthor A <a@b> 1700000000 +0000\ncommitter C <c@d> 1700000000 +0000\n${header}\n${m}`, 'latin1'),
      });
      await assertSameArchive(dir, c, 'P/');
    }
  });

  test('%h and %t lengths follow the repository\'s object count and stay unique', async () => {
    const dir = repoDir('abbrev');
    makeRepo(dir, { '.gitattributes': '* export-subst\n', 'f': '$Format:%h %t %p$' });
    // Add objects until some other object shares 7 hex digits with... the commit rarely; instead, check
    // loose and packed states give git's answer.
    for (let i = 0; i < 3; i++) {
      writeFiles(dir, { [`g${i}`]: `${i}` });
      commitAll(dir, `c${i}`);
    }
    await assertSameArchive(dir, 'HEAD', 'P/');
    git(dir, ['gc', '-q']);
    await assertSameArchive(dir, 'HEAD', 'P/');
    git(dir, ['multi-pack-index', 'write']);
    await assertSameArchive(dir, 'HEAD', 'P/');
    // git lists loose object names without reading them: a name sharing 10 digits with the commit and with
    // the tree makes %h and %t 11 digits long.
    const commit = gitText(dir, ['rev-parse', 'HEAD']);
    const tree = gitText(dir, ['rev-parse', 'HEAD^{tree}']);
    for (const id of [commit, tree]) {
      const twin = id.slice(0, 10) + (id[10] === '0' ? '1' : '0') + id.slice(11);
      mkdirSync(path.join(dir, '.git', 'objects', twin.slice(0, 2)), { recursive: true });
      writeFileSync(path.join(dir, '.git', 'objects', twin.slice(0, 2), twin.slice(2)), 'not read');
    }
    await assertSameArchive(dir, 'HEAD', 'P/');
  });

  test('%h is 8 digits once more than 16384 objects are packed', async () => {
    const dir = repoDir('abbrev-many');
    initRepo(dir);
    const N = 17_000;
    const parts: string[] = [];
    for (let i = 0; i < N; i++) parts.push(`blob\nmark :${i + 1}\ndata ${`${i}\n`.length}\n${i}\n\n`);
    const blob = (mark: number, body: string) => `blob\nmark :${mark}\ndata ${Buffer.byteLength(body)}\n${body}\n`;
    parts.push(blob(N + 1, '* export-subst\n'), blob(N + 2, '\n$Format:%h %t$\n'));
    parts.push(`commit refs/heads/main\ncommitter C <c@d> 1700000000 +0000\ndata 5\nmany\nM 100644 :${N + 1} .gitattributes\nM 100644 :${N + 2} version\n`);
    for (let i = 0; i < N; i += 97) parts.push(`M 100644 :${i + 1} d/f${i}\n`);
    git(dir, ['fast-import', '--quiet'], { input: parts.join('') });
    await assertSameArchive(dir, 'main', 'P/');
    const tar = await ourArchive({ repoPath: dir, ref: 'main' });
    assert.match(tar.toString('latin1'), /\n[0-9a-f]{8} [0-9a-f]{8}\n/);
  });
});

describe('refusals', () => {
  async function refusal(dir: string, code: string, extra = {}): Promise<void> {
    await assert.rejects(ourArchive({ repoPath: dir, ref: 'HEAD', prefix: 'P/', ...extra }), (err: unknown) => isSourcemeshError(err) && err.code === code);
  }

  test('a filter attribute is E_UNSUPPORTED; with filters: "ignore" the bytes are git\'s without a driver', async () => {
    const dir = repoDir('filter');
    makeRepo(dir, { '.gitattributes': '*.big filter=lfs diff=lfs merge=lfs -text\n*.set filter\n', 'a.big': 'version https://git-lfs.github.com/spec/v1\n', 'b.set': 'b' });
    await refusal(dir, 'E_UNSUPPORTED');
    await assertSameArchive(dir, 'HEAD', 'P/', { filters: 'ignore' });
    const ok = repoDir('filter-set-only');
    makeRepo(ok, { '.gitattributes': '*.set filter\n*.unset -filter\n', 'b.set': 'b', 'c.unset': 'c' });
    await assertSameArchive(ok, 'HEAD', 'P/');
  });

  test('working-tree-encoding other than UTF-8 is E_UNSUPPORTED; UTF-8 is a no-op', async () => {
    const dir = repoDir('encoding');
    makeRepo(dir, { '.gitattributes': '*.txt working-tree-encoding=UTF-16LE\n', 'a.txt': Buffer.from('a\n', 'utf16le') });
    await refusal(dir, 'E_UNSUPPORTED');
    const utf8 = repoDir('encoding-utf8');
    makeRepo(utf8, { '.gitattributes': '*.txt working-tree-encoding=utf8 eol=crlf\n', 'a.txt': 'a\n' });
    await assertSameArchive(utf8, 'HEAD', 'P/');
  });

  test('placeholders that depend on refs, tags, the clock or the mailmap are E_UNSUPPORTED', async () => {
    for (const ph of ['%d', '%D', '%(describe)', '%ar', '%aN', '%b', '%x00', '%+s', '%Cred', '%G?', '%N', '%e', '%f', '%q']) {
      const dir = repoDir('placeholder');
      makeRepo(dir, { '.gitattributes': '* export-subst\n', 'f': `$Format:${ph}$` });
      await refusal(dir, 'E_UNSUPPORTED');
    }
  });
});
