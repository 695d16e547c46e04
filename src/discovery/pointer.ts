// The mirror-list pointer: a BEP 44 mutable item, signed by the list publisher's Ed25519 key, salted with
// the list's name, whose value says which mirror list is the newest: its digest (the same SHA-256 of its
// RFC 8785 canonical JSON that a release of the list names), its size, and URLs to get it from (docs/
// FORMATS.md, "Mirror-list pointer"). Nothing it says is trusted: the list got from a URL must hash to the
// digest, and the client remembers the highest seq it accepted per key and salt, so that an older pointer
// (a DHT node replaying one) is refused as a rollback.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import { request, type Dispatcher } from '../net/undici.ts';
import { SourcemeshError } from '../errors.ts';
import { USER_AGENT, networkError, readBoundedBody } from '../fetch/http.ts';
import { parseMirrorList, type MirrorEntry } from '../fetch/mirror-list.ts';
import { openDatabase, writeTransaction } from '../fs/sqlite.ts';
import type { Limits } from '../limits.ts';
import { canonicalDigest } from '../manifest/index.ts';
import type { MeasureOptions } from '../time/client.ts';
import { checkRelease, type CheckedRelease } from '../trust/check-release.ts';
import type { DhtNode } from './dht.ts';

export const POINTER_FORMAT = 'sourcemesh.mirrors-pointer/v1';

export interface Pointer {
  format: typeof POINTER_FORMAT;
  /** Hex SHA-256 of the list's RFC 8785 canonical JSON (what `release --kind mirror-list` signs). */
  sha256: string;
  /** Bytes of the list as served. */
  size: number;
  /** Where the list may be got; its release bundle is beside it at URL.release. */
  urls: string[];
  /** BitTorrent info-hash (hex) of a torrent of the list, when one exists (BEP 46's idea). */
  btih?: string;
}

/** `dht:HEXKEY[?salt=NAME]`: the publisher's 32-byte Ed25519 public key in hex, and the list's name. */
export interface PointerAddress {
  publicKey: Buffer;
  salt: string;
}

export function parsePointerAddress(text: string, what = '--mirror-list'): PointerAddress {
  const m = /^dht:([0-9a-fA-F]{64})(?:\?salt=([^&#]*))?$/.exec(text);
  if (!m) throw new SourcemeshError('E_USAGE', `${what} ${text}: expected dht:HEXKEY or dht:HEXKEY?salt=NAME (HEXKEY: the 64 hex digits of an Ed25519 public key)`);
  let salt: string;
  try {
    salt = decodeURIComponent(m[2] ?? '');
  } catch {
    throw new SourcemeshError('E_USAGE', `${what} ${text}: the salt is not valid percent-encoding`);
  }
  if (Buffer.byteLength(salt) > 64) throw new SourcemeshError('E_USAGE', `${what} ${text}: the salt is over BEP 44's 64 bytes`);
  return { publicKey: Buffer.from(m[1]!.toLowerCase(), 'hex'), salt };
}

export function formatPointerAddress(a: PointerAddress): string {
  return `dht:${a.publicKey.toString('hex')}${a.salt ? `?salt=${encodeURIComponent(a.salt)}` : ''}`;
}

/** The value stored in the DHT: one line of JSON, keys in this order (a byte string in BEP 44 terms). */
export function pointerValue(p: Pointer): Buffer {
  return Buffer.from(JSON.stringify({ format: p.format, sha256: p.sha256, size: p.size, urls: p.urls, ...(p.btih !== undefined ? { btih: p.btih } : {}) }), 'utf8');
}

/** Read a pointer value (from the DHT: attacker-controlled until its signature held, and even then only a claim). */
export function parsePointer(value: Uint8Array, where: string): Pointer {
  const bad = (why: string): never => {
    throw new SourcemeshError('E_FORMAT', `${where}: malformed mirror-list pointer: ${why}`);
  };
  let data: unknown;
  try {
    data = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(value));
  } catch {
    bad('not UTF-8 JSON');
  }
  const o = data as Record<string, unknown>;
  if (typeof o !== 'object' || o === null || Array.isArray(o)) bad('not a JSON object');
  if (o.format !== POINTER_FORMAT) bad(`format is not ${POINTER_FORMAT}`);
  if (typeof o.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(o.sha256)) bad('sha256 is not 64 lowercase hex digits');
  if (!Number.isSafeInteger(o.size) || (o.size as number) < 0) bad('size is not a whole number of bytes');
  if (!Array.isArray(o.urls) || o.urls.length === 0 || !o.urls.every((u) => typeof u === 'string' && /^https?:\/\/\S+$/.test(u))) bad('urls is not a list of http(s) URLs');
  if (o.btih !== undefined && (typeof o.btih !== 'string' || !/^([0-9a-f]{40}|[0-9a-f]{64})$/.test(o.btih))) bad('btih is not a hex info-hash');
  const p: Pointer = { format: POINTER_FORMAT, sha256: o.sha256 as string, size: o.size as number, urls: o.urls as string[], ...(o.btih !== undefined ? { btih: o.btih as string } : {}) };
  if (!pointerValue(p).equals(Buffer.from(value))) bad('not in its canonical form (field order, spacing, unknown fields)');
  return p;
}

/** The pointer to a mirror list whose text is `text`, to be got from `urls`. */
export function pointerTo(text: string, urls: string[], where: string): Pointer {
  parseMirrorList(text, where);
  return { format: POINTER_FORMAT, sha256: canonicalDigest(JSON.parse(text)), size: Buffer.byteLength(text), urls };
}

// ---------------------------------------------------------------------------------------------------
// Rollback protection: the highest seq accepted per (key, salt), in STATE/pointers.sqlite

const SCHEMA = `CREATE TABLE IF NOT EXISTS pointers (key TEXT NOT NULL, salt TEXT NOT NULL, seq INTEGER NOT NULL,
  sha256 TEXT NOT NULL, updated INTEGER NOT NULL, PRIMARY KEY (key, salt))`;

export class PointerState {
  readonly file: string;
  readonly #db: DatabaseSync;

  private constructor(file: string, db: DatabaseSync) {
    this.file = file;
    this.#db = db;
  }

  static open(stateDir: string): PointerState {
    const file = path.join(path.resolve(stateDir), 'pointers.sqlite');
    return new PointerState(file, openDatabase(file, SCHEMA, 'the mirror-list pointer state'));
  }

  highest(a: PointerAddress): { seq: number; sha256: string } | undefined {
    const row = this.#db.prepare('SELECT seq, sha256 FROM pointers WHERE key = ? AND salt = ?').get(a.publicKey.toString('hex'), a.salt) as { seq: number; sha256: string } | undefined;
    return row && { seq: row.seq, sha256: row.sha256 };
  }

  /**
   * Accept `seq` for `a` or refuse it (E_POLICY) as a rollback: lower than the highest accepted, or the
   * same seq naming another list (a key that signed two values under one seq). Atomic across processes.
   */
  accept(a: PointerAddress, seq: number, sha256: string, now: number): void {
    writeTransaction(this.#db, () => {
      const prev = this.highest(a);
      if (prev && (seq < prev.seq || (seq === prev.seq && sha256 !== prev.sha256))) {
        throw new SourcemeshError('E_POLICY', `${formatPointerAddress(a)}: refused as a rollback: the DHT gave seq ${seq}${seq === prev.seq ? ' for another list' : ''}, and seq ${prev.seq} was accepted before (${this.file})`, { seq, highest: prev.seq });
      }
      this.#db.prepare('INSERT INTO pointers (key, salt, seq, sha256, updated) VALUES (?, ?, ?, ?, ?) ON CONFLICT (key, salt) DO UPDATE SET seq = excluded.seq, sha256 = excluded.sha256, updated = excluded.updated')
        .run(a.publicKey.toString('hex'), a.salt, seq, sha256, Math.floor(now / 1000));
    }, `${this.file}: cannot record the pointer's seq`);
  }

  close(): void {
    this.#db.close();
  }
}

// ---------------------------------------------------------------------------------------------------
// Resolving: DHT -> pointer -> list

export interface ResolvedList {
  address: string;
  seq: number;
  pointer: Pointer;
  /** The list as got, and where from. */
  text: string;
  url: string;
  mirrors: MirrorEntry[];
}

/** Look the pointer up, refuse rollbacks, get the list from its URLs and check it against the digest. */
export async function resolveMirrorList(a: PointerAddress, o: { dht: DhtNode; stateDir: string; dispatcher: Dispatcher; limits: Limits; now?: () => number }): Promise<ResolvedList> {
  const where = formatPointerAddress(a);
  const item = await o.dht.getMutable(a.publicKey, a.salt ? Buffer.from(a.salt) : undefined);
  if (!item) throw new SourcemeshError('E_NO_SOURCE', `${where}: no DHT node has this pointer (was it published, and is --dht-bootstrap right?)`);
  const pointer = parsePointer(item.value, where);
  const state = PointerState.open(o.stateDir);
  try {
    const prev = state.highest(a);
    if (prev && item.seq < prev.seq) throw new SourcemeshError('E_POLICY', `${where}: refused as a rollback: the DHT gave seq ${item.seq}, and seq ${prev.seq} was accepted before (${state.file})`, { seq: item.seq, highest: prev.seq });
    const failures: string[] = [];
    for (const url of pointer.urls.slice(0, 16)) {
      let text: string;
      try {
        text = await getText(url, pointer.size, o.dispatcher, o.limits);
      } catch (err) {
        failures.push((err as Error).message);
        continue;
      }
      let digest: string;
      try {
        digest = canonicalDigest(JSON.parse(text));
      } catch {
        failures.push(`${url}: not JSON`);
        continue;
      }
      if (digest !== pointer.sha256) {
        // Wrong bytes from one URL: the next may serve the right ones; if none does, a checksum failure.
        failures.push(`${url}: the list's digest is ${digest}, the pointer names ${pointer.sha256}`);
        continue;
      }
      const mirrors = parseMirrorList(text, url);
      state.accept(a, item.seq, pointer.sha256, (o.now ?? Date.now)());
      return { address: where, seq: item.seq, pointer, text, url, mirrors };
    }
    const mismatch = failures.some((f) => f.includes('the pointer names'));
    throw new SourcemeshError(mismatch ? 'E_CHECKSUM' : 'E_NO_SOURCE', `${where}: no URL of the pointer served the list it names: ${failures.join('; ')}`, { failures });
  } finally {
    state.close();
  }
}

/** GET a small document: exactly `size` bytes expected (more is cut), HTTP 200, no redirects. */
export async function getText(url: string, size: number, dispatcher: Dispatcher, limits: Limits): Promise<string> {
  const max = Math.min(size, limits.manifestBytes);
  try {
    const res = await request(url, { dispatcher, headers: { 'accept-encoding': 'identity', 'user-agent': USER_AGENT }, headersTimeout: limits.headersTimeoutMs, bodyTimeout: limits.idleTimeoutMs });
    if (res.statusCode !== 200) {
      await res.body.dump().catch(() => {});
      throw new SourcemeshError('E_HTTP', `${url}: HTTP ${res.statusCode}`, { url, status: res.statusCode });
    }
    return (await readBoundedBody(res.body, max, () => new SourcemeshError('E_SIZE', `${url}: more than the ${max} bytes expected`))).toString('utf8');
  } catch (err) {
    if (err instanceof SourcemeshError) throw err;
    const e = networkError(err, url);
    throw e;
  }
}

/**
 * With a trust policy: the list's release in the log, as for a manifest. The bundle is got from
 * URL.release beside the list (bounded like any release bundle), and both are checked from temporary
 * files that go afterwards.
 */
export async function checkListRelease(list: ResolvedList, o: { trustPolicy: string; stateDir: string; dispatcher: Dispatcher; limits: Limits; offline?: boolean; time?: MeasureOptions }): Promise<CheckedRelease> {
  const bundleUrl = `${list.url}.release`;
  const bundle = await getText(bundleUrl, o.limits.releaseBundleBytes, o.dispatcher, o.limits).catch((err: SourcemeshError) => {
    throw new SourcemeshError('E_POLICY', `${list.address}: refused by the trust policy: no release bundle at ${bundleUrl} (${err.message})`, { bundle: bundleUrl });
  });
  const dir = await mkdtemp(path.join(tmpdir(), 'sourcemesh-list-'));
  try {
    const file = path.join(dir, 'mirrors.json');
    await writeFile(file, list.text);
    await writeFile(`${file}.release`, bundle);
    return await checkRelease({ file, subject: { kind: 'mirror-list', sha256: list.pointer.sha256 }, policyFile: o.trustPolicy, stateDir: o.stateDir, online: !o.offline, dispatcher: o.dispatcher, ...(o.time ? { time: o.time } : {}) });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
