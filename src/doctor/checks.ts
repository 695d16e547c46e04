// `sourcemesh doctor`: the checks a node operator runs before trusting the node, each a pass, warn or fail
// line with a hint. Each check is a function of what it is given (paths, a policy, a clock) that never
// throws: a failure to check is itself a fail line naming the cause. docs/OPERATIONS.md, "Doctor".
import { randomInt } from 'node:crypto';
import { lstat, readdir, statfs } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { isNotFound, isSourcemeshError } from '../errors.ts';
import { readBoundedFile } from '../fs/bounded-read.ts';
import { LIMITS } from '../limits.ts';
import { INVENTORY_PATH, parseInventory } from '../mirror/inventory.ts';
import { sha256File } from '../store/digest.ts';
import type { MeasureOptions } from '../time/client.ts';
import { decideNow, readFloor, signedTime } from '../time/signed-now.ts';
import { TrustState } from '../trust/client-state.ts';
import { LogClient } from '../trust/log-client.ts';
import { proveConsistency } from '../trust/merkle.ts';
import { formatVerifierKey } from '../trust/note.ts';
import { checkCheckpoint, checkConsistency, type StoredCheckpoint, type TrustPolicy } from '../trust/policy.ts';

export type Status = 'pass' | 'warn' | 'fail';

export interface CheckResult {
  readonly check: string;
  readonly status: Status;
  readonly detail: string;
  /** What to do about a warn or fail. */
  readonly hint?: string;
}

const pass = (check: string, detail: string): CheckResult => ({ check, status: 'pass', detail });
const warn = (check: string, detail: string, hint: string): CheckResult => ({ check, status: 'warn', detail, hint });
const fail = (check: string, detail: string, hint: string): CheckResult => ({ check, status: 'fail', detail, hint });

/** The running Node.js against the major version package.json's engines asks for. */
export function checkNodeVersion(version: string, requiredMajor: number): CheckResult {
  const major = Number(version.split('.')[0]);
  return major >= requiredMajor
    ? pass('node', `Node.js ${version}`)
    : fail('node', `Node.js ${version} is older than ${requiredMajor}`, `install Node.js ${requiredMajor} or later`);
}

/** Free space on the file system holding `dir`: fail below `minFreeBytes`, warn below 10%. */
export async function checkDisk(what: string, dir: string, minFreeBytes: number): Promise<CheckResult> {
  const check = `disk ${what}`;
  try {
    // A store or root not made yet will be made inside its nearest existing parent: that file system counts.
    let at = dir;
    while (await statfs(at).then(() => false, (err: unknown) => isNotFound(err) && path.dirname(at) !== at)) at = path.dirname(at);
    const s = await statfs(at);
    const free = s.bavail * s.bsize;
    const total = s.blocks * s.bsize;
    const detail = `${dir}: ${mib(free)} free of ${mib(total)}`;
    if (free < minFreeBytes) return fail(check, `${detail}, under the ${mib(minFreeBytes)} needed`, `free space on ${dir}'s file system, or lower the caps (--min-free)`);
    if (total > 0 && free / total < 0.1) return warn(check, `${detail} (under 10%)`, `free space on ${dir}'s file system before it fills`);
    return pass(check, detail);
  } catch (err) {
    return fail(check, `${dir}: ${(err as Error).message}`, 'check that the directory exists and is readable');
  }
}

function mib(n: number): string {
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** Pick up to `n` items at random (reservoir sampling, `random` passed in for tests). */
export function sample<T>(items: readonly T[], n: number, random: (max: number) => number = randomInt): T[] {
  const out: T[] = [];
  items.forEach((x, i) => {
    if (out.length < n) out.push(x);
    else {
      const j = random(i + 1);
      if (j < n) out[j] = x;
    }
  });
  return out;
}

/** Re-hash a random sample of the store's objects (objects/sha256/XX/HEX): each must hash to its name. */
export async function checkStoreSample(storeRoot: string, n: number, random?: (max: number) => number): Promise<CheckResult> {
  const check = 'store sample';
  const base = path.join(storeRoot, 'objects', 'sha256');
  const objects: string[] = [];
  try {
    for (const d of await readdir(base)) {
      if (!/^[0-9a-f]{2}$/.test(d)) continue;
      for (const f of await readdir(path.join(base, d))) if (/^[0-9a-f]{64}$/.test(f) && f.startsWith(d)) objects.push(path.join(base, d, f));
    }
  } catch (err) {
    if (isNotFound(err)) return pass(check, `${storeRoot}: no objects yet`);
    return fail(check, `${base}: ${(err as Error).message}`, 'check the store\'s permissions');
  }
  const picked = sample(objects, n, random);
  const bad: string[] = [];
  for (const file of picked) {
    try {
      const st = await lstat(file);
      if (!st.isFile()) bad.push(`${file} (not a regular file)`);
      else if ((await sha256File(file)) !== path.basename(file)) bad.push(`${file} (its bytes hash to another digest)`);
    } catch (err) {
      bad.push(`${file} (${(err as Error).message})`);
    }
  }
  if (bad.length > 0) return fail(check, `${bad.length} of ${picked.length} sampled objects are corrupt: ${bad.slice(0, 3).join(', ')}`, 'remove them (`sourcemesh store gc`) and fetch again; check the disk (SMART, fsck)');
  return pass(check, `${picked.length} of ${objects.length} objects re-hashed`);
}

/** A private key file: a regular file, not readable by group or others, owned by this user. */
export async function checkKeyFile(file: string, uid: number | undefined): Promise<CheckResult> {
  const check = `key ${file}`;
  try {
    const st = await lstat(file);
    if (!st.isFile()) return fail(check, `${file} is not a regular file`, 'point the config at the key file itself');
    const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
    if ((st.mode & 0o077) !== 0) return fail(check, `${file} has mode ${mode}: others on this machine can read the private key`, `chmod 600 ${file}, and make a new key if others could have read it`);
    if (uid !== undefined && st.uid !== uid) return warn(check, `${file} is owned by uid ${st.uid}, not this user (${uid})`, `chown it to the user that runs the node`);
    return pass(check, `${file}: mode ${mode}`);
  } catch (err) {
    return fail(check, `${file}: ${(err as Error).message}`, 'make the key (`sourcemesh node init` or `key generate`)');
  }
}

/** A TCP service the node runs: something must accept connections on host:port. */
export function checkListening(what: string, host: string, port: number, timeoutMs: number = LIMITS.doctorConnectTimeoutMs): Promise<CheckResult> {
  const check = `service ${what}`;
  const connectHost = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return new Promise((resolve) => {
    const s = net.connect({ host: connectHost, port });
    const done = (r: CheckResult) => {
      s.destroy();
      resolve(r);
    };
    s.setTimeout(timeoutMs, () => done(fail(check, `${host}:${port}: no answer within ${timeoutMs} ms`, `is the service running? \`sourcemesh node run\``)));
    s.once('connect', () => done(pass(check, `${host}:${port} accepts connections`)));
    s.once('error', (err) => done(fail(check, `${host}:${port}: ${(err as NodeJS.ErrnoException).code ?? err.message}`, `start it (\`sourcemesh node run\`), or switch it off in node.json`)));
  });
}

/** The SOCKS5 methods the greeting offers (RFC 1928 §3): none, and username/password (RFC 1929), which
 * Tor's stream isolation (IsolateSOCKSAuth) uses. */
const SOCKS_METHODS: Readonly<Record<number, string>> = { 0x00: 'no authentication', 0x02: 'username/password' };

/**
 * Tor's SOCKS port (the node's torProxy): it must answer a SOCKS5 greeting (RFC 1928 §3: VER 5, NMETHODS,
 * METHODS) with VER 5 and a method we offered. Only the 2-byte answer is read; a closed port, silence, a
 * refusal of every method (0xFF) or another protocol fails. The proxy is only greeted, never asked to connect.
 */
export function checkSocks(proxy: string, timeoutMs: number = LIMITS.doctorConnectTimeoutMs): Promise<CheckResult> {
  const check = 'tor';
  let host: string;
  let port: number;
  try {
    const u = new URL(proxy);
    host = u.hostname.replace(/^\[(.*)\]$/, '$1');
    port = Number(u.port);
    if (u.protocol !== 'socks5h:' || host === '' || !(port >= 1 && port <= 65535)) throw new Error('not a socks5h://HOST:PORT URL');
  } catch (err) {
    return Promise.resolve(fail(check, `torProxy ${JSON.stringify(proxy)}: ${(err as Error).message}`, 'set torProxy to socks5h://127.0.0.1:9050 (docs/CONFIG.md)'));
  }
  const where = `${proxy.replace(/\/\/[^@/]*@/, '//')}`; // credentials, if any, stay out of the output
  const hint = 'is Tor running with its SocksPort there? (`systemctl status tor`, torrc SocksPort)';
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    let got = Buffer.alloc(0);
    const done = (r: CheckResult) => {
      s.destroy();
      resolve(r);
    };
    s.setTimeout(timeoutMs, () => done(fail(check, `${where}: no SOCKS5 answer within ${timeoutMs} ms`, hint)));
    s.once('connect', () => s.write(Buffer.of(0x05, 0x02, 0x00, 0x02)));
    s.on('data', (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]).subarray(0, 2);
      if (got.length < 2) return;
      if (got[0] !== 0x05) done(fail(check, `${where}: answers, but not as a SOCKS5 server (first byte 0x${got[0]!.toString(16).padStart(2, '0')})`, `${hint}; another program may hold the port`));
      else if (SOCKS_METHODS[got[1]!] !== undefined) done(pass(check, `${where} answers SOCKS5 (${SOCKS_METHODS[got[1]!]})`));
      else done(fail(check, `${where}: a SOCKS5 server that accepts none of our methods (0x${got[1]!.toString(16).padStart(2, '0')})`, 'Tor accepts both; is this Tor?'));
    });
    s.once('end', () => done(fail(check, `${where}: closed the connection without a SOCKS5 answer`, hint)));
    s.once('error', (err) => done(fail(check, `${where}: ${(err as NodeJS.ErrnoException).code ?? err.message}`, hint)));
  });
}

/**
 * The local clock against signed time: the policy's Roughtime witnesses (k of n) when it names them, else
 * the floor of the cosignatures already seen. A witness that did not answer or lied is a warning while the
 * quorum holds.
 */
export async function checkClock(policy: TrustPolicy, stateDir: string, local: () => number, measure?: MeasureOptions): Promise<CheckResult[]> {
  const maxSkew = policy.time?.maxSkewSeconds;
  if (policy.time === undefined) {
    const floor = readFloorSafe(stateDir, policy);
    if (floor === undefined) return [warn('clock', 'the policy names no Roughtime witnesses and no cosignature was seen yet: the local clock is unchecked', 'add time.roughtime to the policy (docs/FORMATS.md)')];
    try {
      decideNow(local(), undefined, floor, 300);
      return [pass('clock', `not behind the newest time the witnesses signed (${new Date(floor * 1000).toISOString()})`)];
    } catch (err) {
      return [fail('clock', (err as Error).message, 'set the clock right (NTP, or by hand)')];
    }
  }
  const out: CheckResult[] = [];
  try {
    // Through the node's Tor proxy when it has one (src/time/through-proxy.ts): doctor must not leak either.
    const r = await signedTime(policy, { stateDir, ...(measure ? { measure } : {}) });
    for (const f of r.measurement.failed) out.push(warn(`witness ${f.server}`, `no valid Roughtime answer: ${f.reason}`, 'check that the witness runs `witness serve --roughtime` at the policy\'s address'));
    for (const l of r.liars) out.push(warn(`witness ${l.server}`, `contradicts the other witnesses${r.proofFile ? ` (proof: ${r.proofFile})` : ''}`, 'report it to its operator with the proof'));
    const d = decideNow(local(), { earliest: r.earliest / 1000 + (Date.now() - r.localAt) / 1000, latest: r.latest / 1000 + (Date.now() - r.localAt) / 1000 }, undefined, maxSkew!);
    out.unshift(pass('clock', `within ${Math.abs(Math.round(d.skew ?? 0))} s of signed time (${r.agreed.length} witnesses agree: ${r.agreed.join(', ')})`));
  } catch (err) {
    out.unshift(fail('clock', (err as Error).message, 'set the clock right, or check that the witnesses are reachable (their Roughtime addresses in the policy)'));
  }
  return out;
}

function readFloorSafe(stateDir: string, policy: TrustPolicy): number | undefined {
  try {
    return readFloor(stateDir, policy);
  } catch {
    return undefined;
  }
}

/**
 * The policy's log: reachable, its newest checkpoint signed by the policy's log key and cosigned by a fresh
 * quorum at `now`, and consistent with the newest checkpoint this client stored (same root at the same
 * size; a consistency proof from the log's tiles when larger; never smaller). Nothing is stored.
 */
export async function checkLog(policy: TrustPolicy, stateDir: string, now: number): Promise<CheckResult> {
  const check = 'log';
  if (policy.log.url === undefined) return warn(check, 'the policy names no log URL: the newest checkpoint is not checked', 'add log.url to the policy');
  const url = policy.log.url;
  let note: string;
  let log: LogClient;
  try {
    log = new LogClient(url);
    note = await log.checkpoint();
  } catch (err) {
    return fail(check, `${url}: ${(err as Error).message}`, 'check that the log runs and this machine reaches it (proxy, firewall)');
  }
  let current: StoredCheckpoint;
  try {
    const cp = checkCheckpoint(note, policy, now);
    current = { size: cp.size, root: cp.root, note, key: formatVerifierKey(policy.log.key) };
  } catch (err) {
    return fail(check, `${url}: the newest checkpoint is refused: ${(err as Error).message}`, 'a stale checkpoint means the witnesses stopped cosigning: tell the log\'s operator');
  }
  let state: TrustState | undefined;
  try {
    state = TrustState.open(stateDir);
    const stored = state.checkpoint(policy.log.key.name, policy.log.key);
    const proofs = stored !== undefined && stored.size > 0 && stored.size < current.size ? [{ size: stored.size, proof: await proveConsistency(stored.size, current.size, log.reader(current.size)) }] : [];
    const { consistency } = checkConsistency(stored, current, proofs);
    return pass(check, `${url}: checkpoint of ${current.size} entries, ${consistency === 'first' ? 'none stored yet to compare' : `consistent with the stored one of ${stored!.size} (${consistency})`}`);
  } catch (err) {
    return fail(check, `${url}: ${(err as Error).message}`, 'a fork or rollback is evidence against the log: keep both checkpoints and tell the policy\'s publisher');
  } finally {
    state?.close();
  }
}

/**
 * Re-hash a random sample of a mirror root's files against its signed inventory (checked with the node
 * key's vkey in ROOT/.sourcemesh/node.pub): each sampled file must have the listed size and sha256.
 */
export async function checkRootSample(root: string, n: number, random?: (max: number) => number): Promise<CheckResult> {
  const check = 'mirror root sample';
  let files: readonly { name: string; size: number; sha256: string }[];
  try {
    const note = await readBoundedFile(path.join(root, INVENTORY_PATH), LIMITS.inventoryBytes, 'mirror inventory');
    const vkey = (await readBoundedFile(path.join(root, '.sourcemesh', 'node.pub'), LIMITS.keyFileBytes, 'node vkey')).trim();
    files = parseInventory(note, vkey).files;
  } catch (err) {
    if (isSourcemeshError(err, 'E_INPUT') || isNotFound(err)) return warn(check, `${root}: no signed inventory to check against (${(err as Error).message})`, 'run `sourcemesh mirror sync` for this root');
    return fail(check, `${root}: the inventory is refused: ${(err as Error).message}`, 'run `sourcemesh mirror sync` again; a bad signature means the inventory or the node key was changed');
  }
  const picked = sample(files, n, random);
  const bad: string[] = [];
  for (const f of picked) {
    const file = path.join(root, f.name);
    try {
      const st = await lstat(file);
      if (!st.isFile() || st.size !== f.size) bad.push(`${f.name} (${st.isFile() ? `${st.size} bytes, listed ${f.size}` : 'not a regular file'})`);
      else if ((await sha256File(file)) !== f.sha256) bad.push(`${f.name} (its bytes hash to another digest)`);
    } catch (err) {
      bad.push(`${f.name} (${(err as Error).message})`);
    }
  }
  if (bad.length > 0) return fail(check, `${bad.length} of ${picked.length} sampled files differ from the signed inventory: ${bad.slice(0, 3).join(', ')}`, 'run `sourcemesh mirror sync` to replace them; check the disk');
  return pass(check, `${picked.length} of ${files.length} files re-hashed against the signed inventory`);
}
