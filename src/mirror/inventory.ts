// A mirror's signed inventory (`sourcemesh.inventory/v1`): every file it serves with its size and
// sha256, as one line of JSON signed by the node's Ed25519 key in the C2SP signed-note format. `mirror
// sync` writes it after each run; `serve` checks it at start and rewrites it when it no longer
// describes the files; clients (audit, fetch) read it with `parseInventory` and the mirror's vkey from
// a mirror list. Also here: the node key, created on first use.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SourcemeshError, fromSystemError } from '../errors.ts';
import { LIMITS, type Limits } from '../limits.ts';
import { nameProblem, SHA256_HEX } from '../manifest/distfile.ts';
import { writeFileDurable } from '../fs/durable-file.ts';
import { statIfExists } from '../fs/files.ts';
import { readSignerKeyFile } from '../trust/key-file.ts';
import {
  createSigner, createVerifier, formatSignerKey, formatVerifierKey, KEY_TYPE_ED25519, openNote, parseVerifierKey,
  signerKeyFromSeed, signNote, type NoteLimits, type OpenedNote, type SignerKey, type VerifierKey,
} from '../trust/note.ts';

export const INVENTORY_FORMAT = 'sourcemesh.inventory/v1';
/** Where a mirror publishes its inventory, relative to its base URL and to its root directory. */
export const INVENTORY_PATH = '.well-known/sourcemesh/inventory';

export interface InventoryFile {
  name: string;
  size: number;
  sha256: string;
}

export interface Inventory {
  format: typeof INVENTORY_FORMAT;
  /** The vkey of the node key that signs the inventory. */
  node: string;
  /** RFC 3339 UTC, whole seconds: no file listed changed after this moment (see buildInventory). */
  generated: string;
  /** Sorted by name, names unique. */
  files: InventoryFile[];
}

type InventoryLimits = Pick<Limits, 'inventoryBytes' | 'inventoryFiles' | 'noteSignatures' | 'noteKeyNameBytes'>;

function noteLimits(limits: InventoryLimits): NoteLimits {
  // An inventory is a note larger than the notes of logs and witnesses: its own bound.
  return { noteBytes: limits.inventoryBytes, noteSignatures: limits.noteSignatures, noteKeyNameBytes: limits.noteKeyNameBytes };
}

const RFC3339_SECONDS = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)Z$/;

/** RFC 3339 in UTC to whole seconds: `2026-01-01T00:00:00Z`. */
export function formatGenerated(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Whole seconds since the epoch of an inventory's `generated`, or undefined when malformed. */
export function generatedSeconds(text: string): number | undefined {
  const m = RFC3339_SECONDS.exec(text);
  if (!m) return undefined;
  const ms = Date.parse(text);
  return Number.isFinite(ms) && formatGenerated(new Date(ms)) === text ? ms / 1000 : undefined;
}

const byName = (a: InventoryFile, b: InventoryFile) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** The note text: the JSON on one line, keys in this order, no spaces, then a newline. */
export function inventoryText(inv: Inventory): string {
  return JSON.stringify({
    format: inv.format,
    node: inv.node,
    generated: inv.generated,
    files: inv.files.map((f) => ({ name: f.name, size: f.size, sha256: f.sha256 })),
  }) + '\n';
}

function checkFile(f: InventoryFile, bad: (why: string) => never): void {
  if (typeof f.name !== 'string') bad('a file name is not a string');
  const problem = nameProblem(f.name);
  if (problem !== undefined || f.name.startsWith('.') || !f.name.isWellFormed()) bad(`the file name ${JSON.stringify(f.name.slice(0, 80))} ${problem ?? 'is hidden or not valid Unicode'}`);
  if (!Number.isSafeInteger(f.size) || f.size < 0) bad(`${f.name}: the size is not a whole number of bytes`);
  if (typeof f.sha256 !== 'string' || !SHA256_HEX.test(f.sha256)) bad(`${f.name}: the sha256 is not 64 lowercase hex digits`);
}

/**
 * Sign an inventory of `files` with the node key. `generated` must not be later than the moment the
 * first of these files was hashed: `serve` trusts a listed hash for a file whose mtime and ctime are
 * both before it, without hashing the file again.
 */
export function buildInventory(files: Iterable<InventoryFile>, key: SignerKey, generated: Date, limits: InventoryLimits = LIMITS): string {
  const bad = (why: string): never => {
    throw new SourcemeshError('E_INPUT', `cannot build the inventory: ${why}`);
  };
  const list = [...files].map((f) => ({ name: f.name, size: f.size, sha256: f.sha256 })).sort(byName);
  if (list.length > limits.inventoryFiles) bad(`${list.length} files, over the limit of ${limits.inventoryFiles}`);
  for (let i = 0; i < list.length; i++) {
    checkFile(list[i]!, bad);
    if (i > 0 && list[i - 1]!.name === list[i]!.name) bad(`the name ${list[i]!.name} is listed twice`);
  }
  const text = inventoryText({ format: INVENTORY_FORMAT, node: formatVerifierKey(key), generated: formatGenerated(generated), files: list });
  return signNote(text, [createSigner(key)], [], noteLimits(limits));
}

/**
 * Publish an inventory note at ROOT/.well-known/sourcemesh/inventory, atomically and durably, so readers
 * (and `serve`, which watches it) never see half of one.
 */
export async function writeInventory(root: string, note: string): Promise<string> {
  const file = path.join(root, INVENTORY_PATH);
  await mkdir(path.dirname(file), { recursive: true }).catch((err) => { throw fromSystemError(err, `${file}: cannot write the inventory`); });
  await writeFileDurable(file, note, { what: 'cannot write the inventory' });
  return file;
}

export interface ParsedInventory extends Inventory {
  /** The opened note (its verified signature among others). */
  note: OpenedNote;
  /** Bytes of the note text. */
  text: string;
}

/**
 * Read an inventory a mirror served (attacker-controlled): the note must carry a valid signature by
 * `verifier` (a vkey or a parsed key), its text must be exactly the one line we write, `node` must be
 * that key, files sorted by name and unique, each name a plain file name.
 */
export function parseInventory(note: string | Uint8Array, verifier: string | VerifierKey, limits: InventoryLimits = LIMITS): ParsedInventory {
  const key = typeof verifier === 'string' ? parseVerifierKey(verifier) : verifier;
  const opened = openNote(note, [createVerifier(key)], noteLimits(limits));
  const bad = (why: string): never => {
    throw new SourcemeshError('E_FORMAT', `malformed inventory: ${why}`);
  };
  const text = opened.text;
  if (text.indexOf('\n') !== text.length - 1) bad('the note text is not exactly one line');
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    bad(`not JSON (${(err as Error).message})`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) bad('not a JSON object');
  const obj = data as Record<string, unknown>;
  if (obj.format !== INVENTORY_FORMAT) bad(`format is not ${INVENTORY_FORMAT}`);
  if (typeof obj.node !== 'string' || obj.node !== formatVerifierKey(key)) bad('node is not the key that signed it');
  if (typeof obj.generated !== 'string' || generatedSeconds(obj.generated) === undefined) bad('generated is not an RFC 3339 UTC time in whole seconds');
  if (!Array.isArray(obj.files)) bad('files is not a list');
  const files = obj.files as unknown[];
  if (files.length > limits.inventoryFiles) bad(`${files.length} files, over the limit of ${limits.inventoryFiles}`);
  for (let i = 0; i < files.length; i++) {
    const f = files[i];
    if (typeof f !== 'object' || f === null || Array.isArray(f)) bad(`files[${i}] is not an object`);
    checkFile(f as InventoryFile, bad);
    if (i > 0 && byName(files[i - 1] as InventoryFile, f as InventoryFile) >= 0) bad(`files are not sorted by name with no repeats at ${JSON.stringify((f as InventoryFile).name)}`);
  }
  const inv: Inventory = { format: INVENTORY_FORMAT, node: obj.node as string, generated: obj.generated as string, files: files as InventoryFile[] };
  // One spelling: unknown fields, other key orders, spaces or escapes are refused.
  if (inventoryText(inv) !== text) bad('the JSON is not in its canonical form (field order, spacing, unknown fields)');
  return { ...inv, note: opened, text };
}

// ---------------------------------------------------------------------------------------------------
// The node key

export interface NodeKeyFiles {
  /** The signer key text (`PRIVATE+KEY+...`), mode 0600. */
  key: string;
  /** Its vkey, for operators to publish in a mirror list. */
  pub: string;
}

/** ROOT/.sourcemesh/node.key for a mirror root, STORE/node.key for a store (`serve --local`). */
export function nodeKeyFiles(dir: string): NodeKeyFiles {
  return { key: path.join(dir, 'node.key'), pub: path.join(dir, 'node.pub') };
}

/**
 * The node key a command signs with: `--key FILE` as given, else the one in `dir`, created when
 * missing (named `name`, default this host's name). `created` says a new key was just made.
 */
export async function resolveNodeKey(dir: string, keyFile?: string, name?: string): Promise<{ key: SignerKey; file: string; created: boolean }> {
  if (keyFile !== undefined) return { key: await readSignerKeyFile(keyFile, 'node key'), file: keyFile, created: false };
  const files = nodeKeyFiles(dir);
  const opened = await openNodeKey(files, name ?? defaultKeyName());
  return { ...opened, file: files.key };
}

/** The default key name for a new node key: this host's name, made a valid note key name. */
export function defaultKeyName(): string {
  return os.hostname().replace(/[\s+]/g, '-') || 'sourcemesh-node';
}

/**
 * The node key in `files`, created when missing: a fresh Ed25519 key named `name`, written with mode
 * 0600 under a temporary name and hard-linked into place (so two processes starting at once end up
 * with the same key, and nobody ever reads half a key). The vkey is (re)written beside it.
 */
export async function openNodeKey(files: NodeKeyFiles, name: string, random: (n: number) => Uint8Array = randomBytes): Promise<{ key: SignerKey; created: boolean }> {
  let created = false;
  let key: SignerKey;
  const dir = path.dirname(files.key);
  if (await statIfExists(files.key)) {
    key = await readSignerKeyFile(files.key, 'node key');
  } else {
    const fresh = signerKeyFromSeed(name, KEY_TYPE_ED25519, random(32));
    await mkdir(dir, { recursive: true, mode: 0o700 }).catch((err) => { throw fromSystemError(err, `${files.key}: cannot create the node key`); });
    // Exclusive (link(2) into place): two processes starting at once end up with the same key.
    created = await writeFileDurable(files.key, formatSignerKey(fresh) + '\n', { mode: 0o600, exclusive: true, what: 'cannot create the node key' });
    key = created ? fresh : await readSignerKeyFile(files.key, 'node key');
  }
  const vkey = formatVerifierKey(key) + '\n';
  if ((await readFile(files.pub, 'utf8').catch(() => '')) !== vkey) {
    await writeFileDurable(files.pub, vkey, { what: "cannot write the node's public key" });
  }
  return { key, created };
}
