// Key rotation for release keys as a skipchain (CHAINIAC, Nikitin et al., USENIX Security 2017), in
// signed notes. A trust policy pins the genesis key set K0 (vkeys and a threshold). Rotation statement j
// (`sourcemesh.rotation/v1`) names key set Kj and the hash of statement j-1, and is signed by a threshold
// of K(j-1): walking the chain one statement at a time checks every step. Forward skip links
// (`sourcemesh.rotation-link/v1`) let a client far behind skip: when statement j is made, every i = j - 2^k
// (k >= 1, i a multiple of 2^k) gets a link "from i to j" signed by a threshold of Ki, the same threshold
// that could have signed statement i+1. A client at i accepts Kj through that link. With links at every
// level, 0 -> n takes popcount(n) hops and any i -> n at most 2*log2(n). A key set's power is always its
// own threshold: one compromised key, below it, can't sign a statement or a link.
//
// Everything parsed here is attacker-controlled (statements and links come from bundles and chain files).
// Formats in docs/FORMATS.md, "Key rotation".

import * as v from 'valibot';
import { SourcemeshError } from '../errors.ts';
import { LIMITS, type Limits } from '../limits.ts';
import { sha256Hex } from '../store/digest.ts';
import {
  createVerifier, formatVerifierKey, KEY_TYPE_ED25519, parseNote, parseVerifierKey, signNote, type NoteSigner, type NoteVerifier,
  type VerifierKey,
} from './note.ts';
import { firstIssue, parseBoundedJson } from './release.ts';

export const KEYSET_FORMAT = 'sourcemesh.keyset/v1';
export const ROTATION_FORMAT = 'sourcemesh.rotation/v1';
export const LINK_FORMAT = 'sourcemesh.rotation-link/v1';
export const CHAIN_FORMAT = 'sourcemesh.rotation-chain/v1';

export type RotationLimits = Pick<Limits, 'rotationKeys' | 'noteKeyNameBytes'>;

/** Release-signing keys and how many of them must sign. */
export interface KeySet {
  readonly threshold: number;
  /** Sorted by their vkey text, distinct names, key IDs and public keys. */
  readonly keys: readonly VerifierKey[];
  readonly vkeys: readonly string[];
}

/** A key set from vkey texts; E_FORMAT (naming `what`) unless every key is an Ed25519 note key, distinct, and 1 <= threshold <= keys. */
export function keySetFrom(vkeys: readonly string[], threshold: number, what: string, limits: RotationLimits = LIMITS): KeySet {
  const bad = (why: string): never => {
    throw new SourcemeshError('E_FORMAT', `${what}: ${why}`);
  };
  if (!Array.isArray(vkeys) || vkeys.length === 0) bad('no keys');
  if (vkeys.length > limits.rotationKeys) bad(`${vkeys.length} keys, over the limit of ${limits.rotationKeys}`);
  if (!Number.isSafeInteger(threshold) || threshold < 1 || threshold > vkeys.length) bad(`threshold ${threshold} is not from 1 to the ${vkeys.length} keys`);
  const keys = vkeys.map((text) => {
    let key: VerifierKey;
    try {
      key = parseVerifierKey(text, limits);
    } catch (err) {
      return bad((err as Error).message);
    }
    if (key.type !== KEY_TYPE_ED25519) bad(`${key.name} is not an Ed25519 note key (type 0x01)`);
    return key;
  });
  const seen = new Set<string>();
  for (const k of keys) {
    for (const id of [`n:${k.name}`, `p:${Buffer.from(k.publicKey).toString('hex')}`]) {
      if (seen.has(id)) bad(`the key ${k.name} is listed twice (by name or by public key)`);
      seen.add(id);
    }
  }
  const sorted = keys.map((k) => ({ k, text: formatVerifierKey(k) })).sort((a, b) => (a.text < b.text ? -1 : a.text > b.text ? 1 : 0));
  return { threshold, keys: sorted.map((s) => s.k), vkeys: sorted.map((s) => s.text) };
}

/** The key set's canonical text; the chain ID is the SHA-256 of the genesis set's. */
export function keySetText(set: KeySet): string {
  return `${KEYSET_FORMAT}\nthreshold ${set.threshold}\n${set.vkeys.map((k) => `key ${k}\n`).join('')}`;
}

export function chainIdOf(genesis: KeySet): string {
  return sha256Hex(keySetText(genesis));
}

// ---------------------------------------------------------------------------------------------------
// Statements and links

export interface RotationStatement {
  /** Hex SHA-256 of the genesis key set text. */
  readonly chain: string;
  /** 1 for the first rotation; the genesis set is number 0. */
  readonly sequence: number;
  /** Hex SHA-256 of statement sequence-1's note text (for sequence 1: the chain ID). */
  readonly previous: string;
  readonly keySet: KeySet;
}

export interface RotationLink {
  readonly chain: string;
  readonly from: { readonly sequence: number; readonly hash: string };
  readonly to: { readonly sequence: number; readonly hash: string };
}

/** The hash a statement is known by: hex SHA-256 of its note text (signatures excluded). */
export function statementHash(text: string): string {
  return sha256Hex(text);
}

export function formatRotationStatement(s: RotationStatement): string {
  return `${ROTATION_FORMAT}\nchain ${s.chain}\nsequence ${s.sequence}\nprevious ${s.previous}\nthreshold ${s.keySet.threshold}\n${s.keySet.vkeys.map((k) => `key ${k}\n`).join('')}`;
}

const HEX64 = /^[0-9a-f]{64}$/;
const DECIMAL = /^(?:0|[1-9][0-9]{0,15})$/;

function lineValue(lines: readonly string[], i: number, key: string, bad: (why: string) => never): string {
  const line = lines[i];
  if (line === undefined || !line.startsWith(`${key} `)) bad(`line ${i + 1} is not a "${key} " line`);
  return line!.slice(key.length + 1);
}

function decimal(text: string, what: string, bad: (why: string) => never): number {
  if (!DECIMAL.test(text) || !Number.isSafeInteger(Number(text))) bad(`${what} is not a decimal number without leading zeros`);
  return Number(text);
}

/** Parse rotation statement note text, exactly as formatRotationStatement writes it. Attacker-controlled. */
export function parseRotationStatement(text: string, limits: RotationLimits = LIMITS): RotationStatement {
  const bad = (why: string): never => {
    throw new SourcemeshError('E_FORMAT', `malformed rotation statement: ${why}`);
  };
  if (typeof text !== 'string' || text.length > 256 * 1024 || !text.endsWith('\n')) bad('not text ending in a newline, or over 256 KiB');
  const lines = text.slice(0, -1).split('\n');
  if (lines[0] !== ROTATION_FORMAT) bad(`the first line is not ${ROTATION_FORMAT}`);
  if (lines.length - 5 > limits.rotationKeys) bad(`more than ${limits.rotationKeys} keys`);
  const chain = lineValue(lines, 1, 'chain', bad);
  if (!HEX64.test(chain)) bad('the chain is not 64 lowercase hex digits');
  const sequence = decimal(lineValue(lines, 2, 'sequence', bad), 'the sequence', bad);
  if (sequence < 1) bad('the sequence starts at 1');
  const previous = lineValue(lines, 3, 'previous', bad);
  if (!HEX64.test(previous)) bad('previous is not 64 lowercase hex digits');
  const threshold = decimal(lineValue(lines, 4, 'threshold', bad), 'the threshold', bad);
  const vkeys = lines.slice(5).map((_, i) => lineValue(lines, 5 + i, 'key', bad));
  const keySet = keySetFrom(vkeys, threshold, 'malformed rotation statement', limits);
  const statement = { chain, sequence, previous, keySet };
  // One spelling: keys sorted, nothing else, so the hash names one statement.
  if (formatRotationStatement(statement) !== text) bad('the keys are not sorted, or a line is spelled differently');
  return statement;
}

export function formatRotationLink(l: RotationLink): string {
  return `${LINK_FORMAT}\nchain ${l.chain}\nfrom ${l.from.sequence} ${l.from.hash}\nto ${l.to.sequence} ${l.to.hash}\n`;
}

export function parseRotationLink(text: string): RotationLink {
  const bad = (why: string): never => {
    throw new SourcemeshError('E_FORMAT', `malformed rotation link: ${why}`);
  };
  if (typeof text !== 'string' || text.length > 1024 || !text.endsWith('\n')) bad('not text ending in a newline, or over 1 KiB');
  const lines = text.slice(0, -1).split('\n');
  if (lines[0] !== LINK_FORMAT || lines.length !== 4) bad(`not four lines starting with ${LINK_FORMAT}`);
  const chain = lineValue(lines, 1, 'chain', bad);
  if (!HEX64.test(chain)) bad('the chain is not 64 lowercase hex digits');
  const end = (i: number, key: string) => {
    const [seq, hash, ...rest] = lineValue(lines, i, key, bad).split(' ');
    if (rest.length > 0 || hash === undefined || !HEX64.test(hash)) bad(`the ${key} line is not "<sequence> <64 hex digits>"`);
    return { sequence: decimal(seq!, `the ${key} sequence`, bad), hash: hash! };
  };
  const link = { chain, from: end(2, 'from'), to: end(3, 'to') };
  if (!isSkip(link.from.sequence, link.to.sequence)) bad(`${link.from.sequence} -> ${link.to.sequence} is not a skip of 2^k (k >= 1) from a multiple of 2^k`);
  return link;
}

/** Skip links go from i to i + 2^k for k >= 1 when i is a multiple of 2^k. */
export function isSkip(from: number, to: number): boolean {
  const d = to - from;
  return d >= 2 && (d & (d - 1)) === 0 && from % d === 0 && Number.isSafeInteger(to);
}

/** The statements whose key sets link forward to statement j when it is made: j - 2^k for 2^k dividing j, k >= 1. */
export function skipSources(j: number): number[] {
  const out: number[] = [];
  for (let d = 2; d <= j && j % d === 0; d *= 2) out.push(j - d);
  return out;
}

/**
 * The hops from key set `from` to `to` with the skip links `hasLink(i, j)` says exist: the longest
 * available skip at each step, else one statement. Greedy along the skip-list levels: at most
 * 2*log2(to) hops when every link exists.
 */
export function planHops(from: number, to: number, hasLink: (i: number, j: number) => boolean): number[] {
  const path: number[] = [];
  let at = from;
  while (at < to) {
    let next = at + 1;
    for (let d = 2; at % d === 0 && at + d <= to; d *= 2) if (hasLink(at, at + d)) next = at + d;
    path.push(next);
    at = next;
  }
  return path;
}

// ---------------------------------------------------------------------------------------------------
// Threshold signatures

/** How many signature verifications were done (the cost the catch-up benchmark counts). */
export interface SignatureCounter {
  checks: number;
}

/**
 * Count the distinct keys of `set` with a valid signature on `note`. Signatures by other keys are ignored;
 * a set key whose signature fails refuses the note (E_SIGNATURE), as C2SP signed-note asks.
 */
export function countKeySetSignatures(note: string, set: KeySet, counter?: SignatureCounter): { text: string; signers: string[] } {
  const parsed = parseNote(note);
  const verifiers = new Map<string, NoteVerifier>(set.keys.map((k) => [`${k.keyId}:${k.name}`, createVerifier(k)]));
  const signers = new Set<string>();
  for (const sig of parsed.signatures) {
    const id = `${sig.keyId}:${sig.name}`;
    const verifier = verifiers.get(id);
    if (verifier === undefined || signers.has(sig.name)) continue;
    if (counter) counter.checks++;
    if (verifier.verify(parsed.textBytes, sig.signature) === undefined) {
      throw new SourcemeshError('E_SIGNATURE', `the signature by ${sig.name} is invalid`, { name: sig.name });
    }
    signers.add(sig.name);
  }
  return { text: parsed.text, signers: [...signers] };
}

/** Throw E_POLICY unless at least the set's threshold of its keys signed `note`. */
export function requireThreshold(note: string, set: KeySet, what: string, counter?: SignatureCounter): { text: string; signers: string[] } {
  const r = countKeySetSignatures(note, set, counter);
  if (r.signers.length < set.threshold) {
    throw new SourcemeshError('E_POLICY', `${what} is signed by ${r.signers.length} of the key set's ${set.keys.length} keys; ${set.threshold} are required`, { signers: r.signers, threshold: set.threshold });
  }
  return r;
}

// ---------------------------------------------------------------------------------------------------
// Walking the chain

export interface ChainPosition {
  readonly chain: string;
  readonly sequence: number;
  /** The hash of statement `sequence` (the chain ID at 0). */
  readonly hash: string;
  readonly keySet: KeySet;
}

export interface WalkHop {
  readonly statement: string;
  readonly link?: string;
}

export function genesisPosition(genesis: KeySet): ChainPosition {
  const chain = chainIdOf(genesis);
  return { chain, sequence: 0, hash: chain, keySet: genesis };
}

/**
 * One hop forward from `at`: to the next statement (signed by a threshold of `at`'s keys), or along a
 * skip link (signed by a threshold of `at`'s keys, naming the statement's hash). Throws E_FORMAT on
 * malformed input, E_SIGNATURE on a bad signature, E_POLICY on a wrong or under-signed step.
 */
export function stepForward(at: ChainPosition, hop: WalkHop, counter?: SignatureCounter, limits: RotationLimits = LIMITS): ChainPosition {
  const parsed = parseNote(hop.statement);
  const statement = parseRotationStatement(parsed.text, limits);
  const hash = statementHash(parsed.text);
  if (statement.chain !== at.chain) throw new SourcemeshError('E_POLICY', `rotation statement ${statement.sequence} belongs to another chain (${statement.chain.slice(0, 16)}…)`, { sequence: statement.sequence });
  if (hop.link === undefined) {
    if (statement.sequence !== at.sequence + 1 || statement.previous !== at.hash) {
      throw new SourcemeshError('E_POLICY', `rotation statement ${statement.sequence} does not follow key set ${at.sequence} (wrong sequence or previous hash): a forged or missing link`, { from: at.sequence, sequence: statement.sequence });
    }
    requireThreshold(hop.statement, at.keySet, `rotation statement ${statement.sequence}`, counter);
  } else {
    const linkNote = parseNote(hop.link);
    const link = parseRotationLink(linkNote.text);
    if (link.chain !== at.chain || link.from.sequence !== at.sequence || link.from.hash !== at.hash || link.to.sequence !== statement.sequence || link.to.hash !== hash) {
      throw new SourcemeshError('E_POLICY', `the skip link ${link.from.sequence} -> ${link.to.sequence} does not join key set ${at.sequence} to rotation statement ${statement.sequence}: a forged link`, { from: at.sequence, sequence: statement.sequence });
    }
    requireThreshold(hop.link, at.keySet, `the skip link ${at.sequence} -> ${statement.sequence}`, counter);
  }
  return { chain: at.chain, sequence: statement.sequence, hash, keySet: statement.keySet };
}

/** Walk `hops` from `start`; `onHop` sees each hop after it is checked (the caller checks log inclusion there). */
export function walkChain(start: ChainPosition, hops: readonly WalkHop[], options: { counter?: SignatureCounter; onHop?: (hop: WalkHop, index: number, at: ChainPosition) => void; limits?: RotationLimits } = {}): ChainPosition {
  let at = start;
  hops.forEach((hop, i) => {
    at = stepForward(at, hop, options.counter, options.limits ?? LIMITS);
    options.onHop?.(hop, i, at);
  });
  return at;
}

// ---------------------------------------------------------------------------------------------------
// Making statements and links (the project's side)

/** Statement `sequence` after `at`, naming `next`, signed by `signers` (who must reach `at`'s threshold). */
export function makeRotationStatement(at: ChainPosition, next: KeySet, signers: readonly NoteSigner[]): string {
  const text = formatRotationStatement({ chain: at.chain, sequence: at.sequence + 1, previous: at.hash, keySet: next });
  const note = signNote(text, signers);
  requireThreshold(note, at.keySet, `rotation statement ${at.sequence + 1}`);
  return note;
}

/** A skip link from `from` to statement `to` (note text `toText`), signed by whichever `signers` belong to `from`'s key set; undefined below its threshold. */
export function makeRotationLink(from: ChainPosition, toSequence: number, toText: string, signers: readonly NoteSigner[]): string | undefined {
  const members = new Set(from.keySet.keys.map((k) => `${k.keyId}:${k.name}`));
  const own = signers.filter((s) => members.has(`${s.keyId}:${s.name}`));
  if (own.length < from.keySet.threshold) return undefined;
  const text = formatRotationLink({ chain: from.chain, from: { sequence: from.sequence, hash: from.hash }, to: { sequence: toSequence, hash: statementHash(toText) } });
  return signNote(text, own);
}

// ---------------------------------------------------------------------------------------------------
// The chain file a project keeps (`sourcemesh.rotation-chain/v1`)

export interface ChainFile {
  readonly genesis: KeySet;
  /** statements[i] is statement i+1, as logged, with its log index. */
  readonly statements: readonly { readonly note: string; readonly index: number }[];
  /** Skip links by "from:to". */
  readonly links: ReadonlyMap<string, string>;
}

const linkKey = (from: number, to: number) => `${from}:${to}`;

export function chainSchema(limits: Pick<Limits, 'rotationKeys' | 'rotationStatements' | 'noteBytes'>) {
  const note = v.pipe(v.string(), v.minLength(1), v.maxLength(limits.noteBytes));
  return v.strictObject({
    format: v.literal(CHAIN_FORMAT),
    genesis: v.strictObject({ threshold: v.pipe(v.number(), v.safeInteger(), v.minValue(1)), keys: v.pipe(v.array(v.string()), v.minLength(1), v.maxLength(limits.rotationKeys)) }),
    statements: v.pipe(v.array(v.strictObject({ note, index: v.pipe(v.number(), v.safeInteger(), v.minValue(0)) })), v.maxLength(limits.rotationStatements)),
    links: v.pipe(v.array(note), v.maxLength(limits.rotationStatements * 64)),
  });
}

/**
 * Parse a chain file and check it whole: each statement follows the previous one (signed by its
 * threshold), each link joins the statements it names with its key set's threshold.
 */
export function parseChainFile(text: string, source: string, limits: Pick<Limits, 'rotationKeys' | 'rotationStatements' | 'noteBytes' | 'rotationChainBytes' | 'noteKeyNameBytes'> = LIMITS): ChainFile {
  const data = parseBoundedJson(text, source, limits.rotationChainBytes, 'rotation chain');
  const r = v.safeParse(chainSchema(limits), data);
  if (!r.success) throw new SourcemeshError('E_FORMAT', `${source}: not a rotation chain: ${firstIssue(r.issues)}`, { source });
  const genesis = keySetFrom(r.output.genesis.keys, r.output.genesis.threshold, `${source}: genesis`, limits);
  const positions: ChainPosition[] = [genesisPosition(genesis)];
  for (const s of r.output.statements) positions.push(stepForward(positions.at(-1)!, { statement: s.note }, undefined, limits));
  const links = new Map<string, string>();
  for (const note of r.output.links) {
    const link = parseRotationLink(parseNote(note).text);
    const from = positions[link.from.sequence];
    const to = positions[link.to.sequence];
    if (from === undefined || to === undefined) throw new SourcemeshError('E_FORMAT', `${source}: a link names statement ${link.to.sequence}, beyond the chain`);
    stepForward(from, { statement: r.output.statements[link.to.sequence - 1]!.note, link: note }, undefined, limits);
    links.set(linkKey(link.from.sequence, link.to.sequence), note);
  }
  return { genesis, statements: r.output.statements, links };
}

export function formatChainFile(chain: ChainFile): string {
  return `${JSON.stringify({
    format: CHAIN_FORMAT,
    genesis: { threshold: chain.genesis.threshold, keys: chain.genesis.vkeys },
    statements: chain.statements,
    links: [...chain.links.values()],
  }, null, 2)}\n`;
}

/** Every position of the chain (0: genesis), without re-checking signatures (parseChainFile did). */
export function chainPositions(chain: ChainFile): ChainPosition[] {
  const out: ChainPosition[] = [genesisPosition(chain.genesis)];
  for (const s of chain.statements) {
    const text = parseNote(s.note).text;
    const st = parseRotationStatement(text);
    out.push({ chain: out[0]!.chain, sequence: st.sequence, hash: statementHash(text), keySet: st.keySet });
  }
  return out;
}

/** The hops from genesis to the chain's last key set, with log indexes, skipping where links exist. */
export function chainHops(chain: ChainFile, from = 0): { statement: string; index: number; link?: string }[] {
  const plan = planHops(from, chain.statements.length, (i, j) => chain.links.has(linkKey(i, j)));
  let at = from;
  return plan.map((j) => {
    const s = chain.statements[j - 1]!;
    const link = j === at + 1 ? undefined : chain.links.get(linkKey(at, j));
    at = j;
    return { statement: s.note, index: s.index, ...(link === undefined ? {} : { link }) };
  });
}

/** Add statement `note` (logged at `index`) and its skip links to the chain. */
export function appendToChain(chain: ChainFile, note: string, index: number, links: readonly { from: number; note: string }[]): ChainFile {
  const all = new Map(chain.links);
  const to = chain.statements.length + 1;
  for (const l of links) all.set(linkKey(l.from, to), l.note);
  return { genesis: chain.genesis, statements: [...chain.statements, { note, index }], links: all };
}
