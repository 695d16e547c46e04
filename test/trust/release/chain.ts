// Test and benchmark support: a rotation chain of n statements built in memory, as `release rotate` builds
// one. Key set j is three keys with threshold 2 (deterministic seeds); statement j is signed by two keys of
// set j-1; every skip link by two keys of the set it starts from. Log indexes are the sequence numbers - 1.
import { createHash } from 'node:crypto';
import { createSigner, formatVerifierKey, KEY_TYPE_ED25519, parseNote, signerKeyFromSeed, type NoteSigner, type SignerKey } from '../../../src/trust/note.ts';
import {
  appendToChain, chainPositions, keySetFrom, makeRotationLink, makeRotationStatement, skipSources, stepForward, type ChainFile, type ChainPosition, type KeySet,
} from '../../../src/trust/rotation.ts';

export interface BuiltChain {
  readonly chain: ChainFile;
  /** keys[j]: the signer keys of key set j. */
  readonly keys: SignerKey[][];
  readonly sets: KeySet[];
  readonly positions: ChainPosition[];
}

export function setKeys(label: string, j: number): SignerKey[] {
  return [0, 1, 2].map((m) => signerKeyFromSeed(`${label}-k${j}-${m}`, KEY_TYPE_ED25519, createHash('sha256').update(`${label} ${j} ${m}`).digest()));
}

export function buildChain(n: number, options: { label?: string; links?: boolean } = {}): BuiltChain {
  const label = options.label ?? 'chain';
  const keys = [setKeys(label, 0)];
  const sets = [keySetFrom(keys[0]!.map((k) => formatVerifierKey(k)), 2, 'genesis')];
  const signers: NoteSigner[][] = [keys[0]!.map((k) => createSigner(k))];
  let chain: ChainFile = { genesis: sets[0]!, statements: [], links: new Map() };
  const positions: ChainPosition[] = chainPositions(chain);
  for (let j = 1; j <= n; j++) {
    keys.push(setKeys(label, j));
    signers.push(keys[j]!.map((k) => createSigner(k)));
    sets.push(keySetFrom(keys[j]!.map((k) => formatVerifierKey(k)), 2, `set ${j}`));
    const note = makeRotationStatement(positions[j - 1]!, sets[j]!, signers[j - 1]!.slice(0, 2));
    const text = parseNote(note).text;
    const links = options.links === false ? [] : skipSources(j).map((i) => ({ from: i, note: makeRotationLink(positions[i]!, j, text, signers[i]!.slice(1, 3))! }));
    chain = appendToChain(chain, note, j - 1, links);
    positions.push(stepForward(positions[j - 1]!, { statement: note }));
  }
  return { chain, keys, sets, positions };
}

