// The key rotation skipchain (src/trust/rotation.ts): walking forward link by link and through skip
// links, the O(log n) bound on hops, and the attacks: a forged link, a statement or link signed by one
// compromised key, a statement that does not follow, a link naming another statement, a bad signature.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { createSigner, formatNote, formatVerifierKey, parseNote, signNote } from '../../../src/trust/note.ts';
import {
  chainHops, formatChainFile, formatRotationLink, formatRotationStatement, genesisPosition, isSkip, keySetFrom, parseChainFile, parseRotationStatement,
  planHops, skipSources, statementHash, walkChain, type SignatureCounter,
} from '../../../src/trust/rotation.ts';
import { buildChain, setKeys } from './chain.ts';

const isCode = (code: string, pattern?: RegExp) => (e: unknown) => {
  const err = e as { code?: string; message: string };
  return err.code === code && (pattern === undefined || pattern.test(err.message));
};

test('a chain of 100 statements: skip links reach the last key set in popcount(100) hops, link by link in 100', () => {
  const built = buildChain(100);
  const genesis = genesisPosition(built.sets[0]!);
  const hops = chainHops(built.chain);
  assert.deepEqual(hops.map((h) => parseRotationStatement(parseNote(h.statement).text).sequence), [64, 96, 100]);
  const counter: SignatureCounter = { checks: 0 };
  const end = walkChain(genesis, hops, { counter });
  assert.equal(end.sequence, 100);
  assert.equal(end.hash, built.positions[100]!.hash);
  assert.deepEqual(end.keySet.vkeys, built.sets[100]!.vkeys);
  assert.equal(counter.checks, 3 * 2, 'two signatures per hop');

  const slow: SignatureCounter = { checks: 0 };
  const all = built.chain.statements.map((s) => ({ statement: s.note }));
  assert.equal(walkChain(genesis, all, { counter: slow }).hash, end.hash);
  assert.equal(slow.checks, 200);

  // From the middle: up the levels, then down.
  const from = built.positions[37]!;
  const middle = chainHops(built.chain, 37);
  assert.ok(middle.length <= 2 * Math.log2(100));
  assert.equal(walkChain(from, middle).hash, end.hash);

  // The chain file round-trips and is checked whole when read.
  const text = formatChainFile(built.chain);
  assert.equal(formatChainFile(parseChainFile(text, 'chain')), text);
});

test('planHops: at most 2*log2(n) hops between any two key sets when every skip link exists', () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 1 << 20 }), fc.integer({ min: 0, max: 1 << 20 }), (to, f) => {
    const from = f % to;
    const path = planHops(from, to, isSkip);
    assert.equal(path.at(-1), to);
    let at = from;
    for (const next of path) {
      assert.ok(next === at + 1 || isSkip(at, next));
      at = next;
    }
    assert.ok(path.length <= Math.max(1, 2 * Math.log2(to)), `${from} -> ${to}: ${path.length} hops`);
  }), { numRuns: 2000 });
  assert.deepEqual(skipSources(8), [6, 4, 0]);
  assert.deepEqual(skipSources(7), []);
  assert.equal(planHops(0, 1000, isSkip).length, 6); // popcount(1000)
});

test('a forged link, a compromised key, a statement out of order: refused, each step checked', () => {
  const built = buildChain(8);
  const genesis = genesisPosition(built.sets[0]!);
  const hops = chainHops(built.chain);
  assert.equal(hops.length, 1, '0 -> 8 through one skip link');
  const statement8 = hops[0]!.statement;
  const text8 = parseNote(statement8).text;
  const linkText = parseNote(hops[0]!.link!).text;
  const [k0a, k0b] = built.keys[0]!.map((k) => createSigner(k));

  // The attacker's own key set, and a statement 8 naming it.
  const evil = setKeys('evil', 8);
  const evilSet = keySetFrom(evil.map((k) => formatVerifierKey(k)), 1, 'evil');
  const evilText = formatRotationStatement({ chain: genesis.chain, sequence: 8, previous: built.positions[7]!.hash, keySet: evilSet });
  const evilStatement = signNote(evilText, evil.map((k) => createSigner(k)));

  // A link signed by one genesis key (compromised) plus the attacker's: below the threshold.
  const oneKeyLink = signNote(formatRotationLink({ chain: genesis.chain, from: { sequence: 0, hash: genesis.hash }, to: { sequence: 8, hash: statementHash(evilText) } }), [k0a!, createSigner(evil[0]!)]);
  assert.throws(() => walkChain(genesis, [{ statement: evilStatement, link: oneKeyLink }]), isCode('E_POLICY', /signed by 1 of the key set's 3 keys/));
  // The genuine link with the statement swapped: the hash does not match.
  assert.throws(() => walkChain(genesis, [{ statement: evilStatement, link: hops[0]!.link! }]), isCode('E_POLICY', /forged link/));
  // A link signed by the threshold of a later key set, not the one it starts from.
  const laterLink = signNote(linkText, built.keys[7]!.slice(0, 2).map((k) => createSigner(k)));
  assert.throws(() => walkChain(genesis, [{ statement: statement8, link: laterLink }]), isCode('E_POLICY', /signed by 0/));
  // A genuine link whose signature bytes were changed: a bad signature by a set key.
  const parsedLink = parseNote(hops[0]!.link!);
  const sig = Buffer.from(parsedLink.signatures[0]!.signature);
  sig[5]! ^= 1;
  const badSig = formatNote(parsedLink.text, [{ ...parsedLink.signatures[0]!, signature: sig }, ...parsedLink.signatures.slice(1)]);
  assert.throws(() => walkChain(genesis, [{ statement: statement8, link: badSig }]), isCode('E_SIGNATURE'));
  // Statement 1 signed by one genesis key alone (the threshold is 2).
  const one = parseNote(built.chain.statements[0]!.note);
  const single = formatNote(one.text, one.signatures.slice(0, 1));
  assert.throws(() => walkChain(genesis, [{ statement: single }]), isCode('E_POLICY', /signed by 1/));
  // Statement 2 without statement 1, or statement 1 twice: they don't follow.
  assert.throws(() => walkChain(genesis, [{ statement: built.chain.statements[1]!.note }]), isCode('E_POLICY', /does not follow/));
  const s1 = { statement: built.chain.statements[0]!.note };
  assert.throws(() => walkChain(genesis, [s1, s1]), isCode('E_POLICY', /does not follow/));
  // A statement whose previous hash is right but signed by the old genesis keys at step 2 (a rotated set).
  const s2Text = parseNote(built.chain.statements[1]!.note).text;
  const s2ByGenesis = signNote(s2Text, [k0a!, k0b!]);
  assert.throws(() => walkChain(genesis, [s1, { statement: s2ByGenesis }]), isCode('E_POLICY', /signed by 0/));
  // The genuine path still walks.
  assert.equal(walkChain(genesis, hops).hash, statementHash(text8));
});

test('a chain file with a tampered statement or a forged link is refused when read', () => {
  const built = buildChain(4);
  const good = JSON.parse(formatChainFile(built.chain));
  const tampered = structuredClone(good);
  tampered.statements[2].note = tampered.statements[2].note.replace('threshold 2', 'threshold 1');
  assert.throws(() => parseChainFile(JSON.stringify(tampered), 'chain'), (e: { code: string }) => e.code === 'E_SIGNATURE' || e.code === 'E_POLICY' || e.code === 'E_FORMAT');
  const forged = structuredClone(good);
  const evil = setKeys('evil', 4);
  const l = parseNote(good.links[0]);
  forged.links[0] = signNote(l.text, evil.slice(0, 2).map((k) => createSigner(k)));
  assert.throws(() => parseChainFile(JSON.stringify(forged), 'chain'), isCode('E_POLICY'));
  const unsorted = structuredClone(good);
  const st = parseNote(good.statements[0].note);
  const lines = st.text.split('\n');
  [lines[5], lines[6]] = [lines[6]!, lines[5]!];
  unsorted.statements[0].note = formatNote(lines.join('\n'), st.signatures);
  assert.throws(() => parseChainFile(JSON.stringify(unsorted), 'chain'), (e: { code: string }) => e.code === 'E_FORMAT' || e.code === 'E_SIGNATURE');
});
