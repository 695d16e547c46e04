// Test support: real `sourcemesh log serve` and `witness serve` processes on loopback, keys written the way
// `key generate` writes them, and a small HTTP client. Each server prints `listening on URL` first on
// stdout; its JSON log lines (pino, stderr) are collected so tests can see what it signed and published.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Agent, request } from 'undici';
import { CLI, ROOT } from '../../helpers/run.ts';
import {
  createSigner, formatSignerKey, formatVerifierKey, KEY_TYPE_COSIGNATURE_V1, KEY_TYPE_ED25519, signerKeyFromSeed, signNote, type NoteSigner,
  type SignerKey, type NoteVerifier,
} from '../../../src/trust/note.ts';
import { formatReleaseStatement } from '../../../src/trust/release.ts';
import { openCheckpoint, type OpenedCheckpoint } from '../../../src/trust/checkpoint.ts';
import { entryBundlePath, parseEntryBundle, TILE_WIDTH, TileHashReader, tilePath } from '../../../src/trust/tiles.ts';

export interface LogLine {
  msg?: string;
  size?: number;
  root?: string;
  pid?: number;
  [key: string]: unknown;
}

export class ServerProcess {
  readonly url: string;
  readonly child: ChildProcess;
  readonly lines: LogLine[];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #stderr: { text: string };

  private constructor(url: string, child: ChildProcess, lines: LogLine[], stderr: { text: string }, exited: ServerProcess['exited']) {
    this.url = url;
    this.child = child;
    this.lines = lines;
    this.#stderr = stderr;
    this.exited = exited;
  }

  get stderr(): string {
    return this.#stderr.text;
  }

  /** Start `node src/cli/main.ts ...args` and wait for its `listening on URL` line. */
  static start(args: readonly string[], timeoutMs = 20_000): Promise<ServerProcess> {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    const lines: LogLine[] = [];
    const stderr = { text: '' };
    let partial = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      stderr.text += d;
      partial += d;
      const parts = partial.split('\n');
      partial = parts.pop()!;
      for (const line of parts) {
        try {
          lines.push(JSON.parse(line));
        } catch {
          // not a log line (a warning, say)
        }
      }
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    return new Promise((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`server did not start: ${args.join(' ')}\n${stderr.text}`));
      }, timeoutMs);
      child.stdout!.setEncoding('utf8');
      child.stdout!.on('data', (d: string) => {
        out += d;
        const m = /^listening on (\S+)\n/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(new ServerProcess(m[1]!, child, lines, stderr, exited));
        }
      });
      void exited.then(({ code }) => {
        clearTimeout(timer);
        reject(new Error(`server exited with ${code} before listening: ${args.join(' ')}\n${stderr.text}`));
      });
    });
  }

  events(msg: string): LogLine[] {
    return this.lines.filter((l) => l.msg === msg);
  }

  async waitFor(pred: (line: LogLine) => boolean, timeoutMs = 15_000): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.lines.find(pred);
      if (hit) return hit;
      if (Date.now() > deadline) throw new Error(`timed out waiting for a log line; stderr:\n${this.stderr.slice(-4000)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Send SIGHUP (log serve: reload the admission file). */
  hup(): void {
    this.child.kill('SIGHUP');
  }

  async kill9(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
  }

  async stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    return this.exited;
  }
}

export interface KeyFiles {
  readonly file: string;
  readonly pub: string;
  readonly key: SignerKey;
  readonly vkey: string;
}

/** A fresh key written as `key generate` writes it (KEYFILE, KEYFILE.pub). */
export async function writeKey(dir: string, name: string, type: 'note' | 'cosignature' = 'note'): Promise<KeyFiles> {
  const key = signerKeyFromSeed(name, type === 'note' ? KEY_TYPE_ED25519 : KEY_TYPE_COSIGNATURE_V1, randomBytes(32));
  const file = path.join(dir, `${name.replace(/[^a-z0-9.-]/gi, '_')}.key`);
  const vkey = formatVerifierKey(key);
  await writeFile(file, `${formatSignerKey(key)}\n`, { mode: 0o600 });
  await writeFile(`${file}.pub`, `${vkey}\n`);
  return { file, pub: `${file}.pub`, key, vkey };
}

const signers = new WeakMap<SignerKey, NoteSigner>();

/**
 * A release statement (sourcemesh.release/v1) of a manifest `name` at `version`, signed by `keys`: an entry
 * a log admitting those keys takes. Distinct versions make distinct entries.
 */
export function releaseEntry(keys: readonly SignerKey[], version: string, name = 'log-test'): string {
  const text = formatReleaseStatement({ kind: 'manifest', name, version, sha256: '0'.repeat(64) });
  return signNote(text, keys.map((k) => {
    let s = signers.get(k);
    if (s === undefined) signers.set(k, (s = createSigner(k)));
    return s;
  }));
}

/**
 * An in-toto statement about `subject` in a DSSE envelope signed by `keys` (keyid `name+hex key ID`), as the
 * log takes attestations; `padding` bytes in the predicate make it as large as a test needs.
 */
export function dsseEntry(keys: readonly SignerKey[], subject: string, padding = 0): string {
  const payload = Buffer.from(JSON.stringify({
    _type: 'https://in-toto.io/Statement/v1',
    subject: [{ name: subject, digest: { sha256: '0'.repeat(64) } }],
    predicateType: 'https://sourcemesh.example/test/v1',
    predicate: { padding: 'p'.repeat(padding) },
  }));
  const type = 'application/vnd.in-toto+json';
  const pae = Buffer.concat([Buffer.from(`DSSEv1 ${type.length} ${type} ${payload.length} `), payload]);
  return JSON.stringify({
    payloadType: type,
    payload: payload.toString('base64'),
    signatures: keys.map((k) => ({ keyid: `${k.name}+${k.keyId.toString(16).padStart(8, '0')}`, sig: Buffer.from(createSigner(k).sign(pae)).toString('base64') })),
  });
}

/** `log serve` flags that lift the per-key quotas and the per-address rate (tests that submit in bulk). */
export const NO_QUOTAS = ['--key-entries-per-hour', '0', '--key-bytes-per-day', '0', '--add-rate', '0'];

export const agent = new Agent({ connections: 256, keepAliveTimeout: 10_000 });

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  text: string;
}

export async function http(method: 'GET' | 'POST' | 'HEAD' | 'PUT', url: string, body?: string | Uint8Array, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await request(url, { method, body, headers, dispatcher: agent });
  const bytes = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, headers: res.headers, body: bytes, text: bytes.toString('utf8') };
}

/** POST /add; the index it was given (throws on anything but 200). */
export async function add(url: string, entry: Uint8Array | string): Promise<number> {
  const a = await http('POST', `${url}/add`, entry);
  if (a.status !== 200) throw new Error(`POST /add: ${a.status} ${a.text}`);
  return JSON.parse(a.text).index;
}

/** A URL nothing listens on (a port just closed). */
export async function deadUrl(): Promise<string> {
  const net = await import('node:net');
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((r) => server.close(() => r()));
  return `http://127.0.0.1:${port}`;
}

/**
 * Read a log as a client would, over HTTP: the checkpoint (verified with `verifiers`), then every entry
 * bundle up to its size, and a TileHashReader over its tiles.
 */
export async function readLog(url: string, verifiers: NoteVerifier[]): Promise<{ note: string; opened: OpenedCheckpoint; entries: Buffer[]; reader: TileHashReader; tileFetches: string[] }> {
  const cp = await http('GET', `${url}/checkpoint`);
  if (cp.status !== 200) throw new Error(`GET /checkpoint: ${cp.status} ${cp.text}`);
  const opened = openCheckpoint(cp.text, verifiers);
  const size = opened.checkpoint.size;
  const entries: Buffer[] = [];
  for (let n = 0; n * TILE_WIDTH < size; n++) {
    const width = Math.min(TILE_WIDTH, size - n * TILE_WIDTH);
    const a = await http('GET', `${url}/${entryBundlePath({ index: n, width })}`);
    if (a.status !== 200) throw new Error(`GET ${entryBundlePath({ index: n, width })}: ${a.status}`);
    entries.push(...parseEntryBundle(a.body, width).map((e) => Buffer.from(e)));
  }
  const tileFetches: string[] = [];
  const reader = new TileHashReader(size, async (tile) => {
    const p = tilePath(tile);
    tileFetches.push(p);
    const a = await http('GET', `${url}/${p}`);
    if (a.status !== 200) throw new Error(`GET ${p}: ${a.status}`);
    return a.body;
  });
  return { note: cp.text, opened, entries, reader, tileFetches };
}
