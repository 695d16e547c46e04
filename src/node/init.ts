// `node init DIR`: a node directory with its config (every service off), its identity and its panel
// token. Keys are made by the key code every other command uses (mirror/inventory.ts openNodeKey for the
// node key, trust/note.ts for the log and witness keys), mode 0600; private keys never leave DIR.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import { fromSystemError, isNotFound, SourcemeshError } from '../errors.ts';
import { readBoundedFile } from '../fs/bounded-read.ts';
import { writeFileDurable } from '../fs/durable-file.ts';
import { LIMITS } from '../limits.ts';
import { openNodeKey } from '../mirror/inventory.ts';
import { formatSignerKey, formatVerifierKey, KEY_TYPE_COSIGNATURE_V1, KEY_TYPE_ED25519, signerKeyFromSeed } from '../trust/note.ts';
import { configFile, defaultConfig, nodePath, saveConfig, type NodeConfig } from './config.ts';
import { nodeKeyOf } from './services.ts';

export const TOKEN_FILE = 'panel.token';

export interface InitResult {
  dir: string;
  config: NodeConfig;
  /** The panel token: shown once, only its SHA-256 is kept. */
  token: string;
  nodeVkey: string;
  logVkey: string;
  witnessVkey: string;
}

export interface InitOptions {
  name: string;
  /** A config to start from (a clone's), instead of the defaults; its key paths are kept. */
  config?: NodeConfig;
  random?: (n: number) => Uint8Array;
}

export async function initNode(dirArg: string, o: InitOptions): Promise<InitResult> {
  const dir = path.resolve(dirArg);
  const random = o.random ?? randomBytes;
  const entries: string[] = await readdir(dir).catch((err) => {
    if (isNotFound(err)) return [] as string[];
    throw fromSystemError(err, `${dir}: cannot read the node directory`);
  });
  if (entries.includes(path.basename(configFile(dir)))) throw new SourcemeshError('E_INPUT', `${dir} is a node already (${configFile(dir)} exists)`, { dir });
  await mkdir(path.join(dir, 'keys'), { recursive: true, mode: 0o700 }).catch((err) => { throw fromSystemError(err, `${dir}: cannot create the node directory`); });
  const config = { ...(o.config ?? defaultConfig(o.name)), name: o.name };

  const node = await openNodeKey(nodeKeyOf(dir), o.name, random);
  const logKey = await newKey(nodePath(dir, config.services.logServe.key), `${o.name}/log`, KEY_TYPE_ED25519, random);
  const witnessKey = await newKey(nodePath(dir, config.services.witnessServe.key), `${o.name}/witness`, KEY_TYPE_COSIGNATURE_V1, random);
  const token = Buffer.from(random(32)).toString('base64url');
  await writeFileDurable(path.join(dir, TOKEN_FILE), `${tokenDigest(token)}\n`, { mode: 0o600, what: 'cannot store the panel token' });
  // The config last: a directory without it is not a node yet, and init may be run again on it.
  const saved = await saveConfig(dir, config);
  return { dir, config: saved, token, nodeVkey: formatVerifierKey(node.key), logVkey: logKey, witnessVkey: witnessKey };
}

async function newKey(file: string, name: string, type: number, random: (n: number) => Uint8Array): Promise<string> {
  const key = signerKeyFromSeed(name, type, random(32));
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 }).catch((err) => { throw fromSystemError(err, `${file}: cannot create its directory`); });
  await writeFileDurable(file, `${formatSignerKey(key)}\n`, { mode: 0o600, what: 'cannot write the key' });
  const vkey = formatVerifierKey(key);
  await writeFileDurable(`${file}.pub`, `${vkey}\n`, { what: 'cannot write the public key' });
  return vkey;
}

export function tokenDigest(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** The stored digest of the panel token (DIR/panel.token). */
export async function readTokenDigest(dir: string): Promise<Buffer> {
  const file = path.join(dir, TOKEN_FILE);
  const text = (await readBoundedFile(file, LIMITS.keyFileBytes, 'panel token', 'E_INPUT')).trim();
  if (!/^[0-9a-f]{64}$/.test(text)) throw new SourcemeshError('E_INPUT', `${file}: not a panel token digest (run node init again, or write one with node token)`, { file });
  return Buffer.from(text, 'hex');
}

/** Does `token` (attacker-controlled) match the stored digest? In constant time. */
export function tokenMatches(token: string, digest: Buffer): boolean {
  if (token.length === 0 || token.length > 256) return false;
  return timingSafeEqual(Buffer.from(tokenDigest(token), 'hex'), digest);
}
