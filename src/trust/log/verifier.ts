// Checking submitted entries (entries/registry.ts: parsing and Ed25519 verification, about 120 µs an entry
// on one core of CI's 2-core machine) on worker threads, so that the thread that sequences entries never
// waits on a signature: at 10,000 appends/s the checks take a whole core. A message between threads costs
// some 5 to 20 µs whatever it carries, so jobs go as batches, one message each way: a thread has at most
// two batches in hand, and what arrives meanwhile waits for the next one. The busier the log, the larger
// the batches; an idle log sends a job at once.
//
// Each thread holds the table of keys the log knows (admitted keys, the current key sets of admitted
// projects), replaced by setKeys. Messages to a thread are delivered in order, so a job sent after
// setKeys is checked with the new table. `threads: 0` checks on the calling thread (for comparison).
//
// The same module is the worker: started with workerData.role === ROLE, it serves the messages below.

import os from 'node:os';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { isSourcemeshError, SourcemeshError, type ErrorCode } from '../../errors.ts';
import type { Limits } from '../../limits.ts';
import { createVerifier, KEY_TYPE_ED25519, parseVerifierKey, type VerifierKey } from '../note.ts';
import { checkEntry } from './entries/registry.ts';
import type { CheckedEntry, EntryLimits, KeyLookup, KnownKey, Subject } from './entries/types.ts';

const ROLE = 'sourcemesh-log-verifier';

/**
 * A batch of jobs travels as one transferred buffer: the entries' lengths (u32 each), then the entries (a
 * request body is often a view of a larger socket buffer, which structured cloning would copy whole);
 * `extra` only for the jobs that name keys, by position. The answer is one flat array of strings and
 * numbers, the jobs' results in order (encodeResult): cloning nested objects costs some 2 µs an entry to
 * rebuild on the sequencing thread, a flat array a tenth of that. Both sides keep the batches in order
 * (messages between two threads are delivered in order), so jobs carry no IDs.
 */
type Request =
  | { type: 'keys'; vkeys: readonly string[] }
  | { type: 'check'; buf: ArrayBuffer; count: number; extra: [number, readonly string[]][] };
type Flat = (string | number)[];

/** Append one job's result to `out`: 1 and the checked entry, or 0, an error code and a message. */
function encodeResult(out: Flat, r: CheckedEntry | { code: ErrorCode; message: string }): void {
  if ('code' in r) {
    out.push(0, r.code, r.message);
    return;
  }
  const s = r.subject;
  out.push(1, r.type, r.describe, r.signers.length, ...r.signers, r.named.length, ...r.named, s.kind);
  if (s.kind === 'release') out.push(s.project);
  else if (s.kind === 'rotation') out.push(s.chain, s.sequence, s.previous, s.hash, s.threshold, s.vkeys.length, ...s.vkeys);
}

/** Read one result of `flat` from `at`: what it holds and where the next one starts. */
function decodeResult(flat: Flat, at: number): { result: CheckedEntry | SourcemeshError; next: number } {
  let i = at;
  const str = () => flat[i++] as string;
  const num = () => flat[i++] as number;
  const strs = () => {
    const n = num();
    i += n;
    return flat.slice(i - n, i) as string[];
  };
  if (num() === 0) {
    const code = str() as ErrorCode;
    return { result: new SourcemeshError(code, str()), next: i };
  }
  const type = str();
  const describe = str();
  const signers = strs();
  const named = strs();
  const kind = str();
  const subject: Subject = kind === 'release' ? { kind, project: str() }
    : kind === 'rotation' ? { kind, chain: str(), sequence: num(), previous: str(), hash: str(), threshold: num(), vkeys: strs() }
    : { kind: 'signed' };
  return { result: { type, subject, signers, named, describe }, next: i };
}

/** Verifier keys by vkey text, parsed once and kept while they stay in the table. */
class KeyTable implements KeyLookup {
  #byId = new Map<string, KnownKey>();

  constructor(previous?: KeyTable, vkeys: readonly string[] = []) {
    const old = new Map<string, KnownKey>();
    if (previous) for (const k of previous.#byId.values()) old.set(k.vkey, k);
    for (const vkey of vkeys) {
      const known = old.get(vkey) ?? knownKey(vkey);
      if (known === undefined) continue;
      this.#byId.set(`${known.verifier.keyId}:${known.verifier.name}`, known);
    }
  }

  byId(name: string, keyId: number): KnownKey | undefined {
    return this.#byId.get(`${keyId}:${name}`);
  }
}

function knownKey(vkey: string): KnownKey | undefined {
  let key: VerifierKey;
  try {
    key = parseVerifierKey(vkey);
  } catch {
    return undefined;
  }
  if (key.type !== KEY_TYPE_ED25519) return undefined;
  return { vkey, verifier: createVerifier(key) };
}

/** The table plus the keys one submission names (`--admit-any-signed`), the table's winning on a clash. */
function withExtra(table: KeyTable, extra: readonly string[], cache: Map<string, KnownKey | undefined>): KeyLookup {
  if (extra.length === 0) return table;
  const byId = new Map<string, KnownKey>();
  for (const vkey of extra) {
    let known = cache.get(vkey);
    if (known === undefined && !cache.has(vkey)) {
      known = knownKey(vkey);
      if (cache.size >= 4096) cache.clear();
      cache.set(vkey, known);
    }
    if (known !== undefined) byId.set(`${known.verifier.keyId}:${known.verifier.name}`, known);
  }
  return { byId: (name, keyId) => table.byId(name, keyId) ?? byId.get(`${keyId}:${name}`) };
}

function runJob(entry: Uint8Array, extra: readonly string[], table: KeyTable, cache: Map<string, KnownKey | undefined>, limits: EntryLimits): CheckedEntry | { code: ErrorCode; message: string } {
  try {
    return checkEntry(entry, withExtra(table, extra, cache), limits);
  } catch (err) {
    if (isSourcemeshError(err)) return { code: err.code, message: err.message };
    return { code: 'E_FORMAT', message: `unreadable entry (${(err as Error).message})` };
  }
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === ROLE) {
  const limits = (workerData as { limits: EntryLimits }).limits;
  let table = new KeyTable();
  const cache = new Map<string, KnownKey | undefined>();
  parentPort!.on('message', (m: Request) => {
    if (m.type === 'keys') {
      table = new KeyTable(table, m.vkeys);
      return;
    }
    const lengths = new Uint32Array(m.buf, 0, m.count);
    const extra = new Map(m.extra);
    const out: Flat = [];
    let offset = 4 * m.count;
    for (let i = 0; i < m.count; i++) {
      const entry = new Uint8Array(m.buf, offset, lengths[i]!);
      offset += lengths[i]!;
      encodeResult(out, runJob(entry, extra.get(i) ?? [], table, cache, limits));
    }
    parentPort!.postMessage(out);
  });
}

interface Job {
  readonly entry: Uint8Array;
  readonly extra: readonly string[];
  readonly resolve: (c: CheckedEntry) => void;
  readonly reject: (e: Error) => void;
}

/** Batches a thread may hold at once: one being checked, one ready behind it. */
const BATCHES_IN_HAND = 2;

class Thread {
  readonly worker: Worker;
  queued: Job[] = [];
  /** Batches sent and not answered yet, in the order sent (the order of the answers). */
  readonly sent: Job[][] = [];
  /** Jobs queued or sent. */
  load = 0;
  failed = false;

  constructor(limits: EntryLimits, vkeys: readonly string[], onFail: (t: Thread, err: Error) => void) {
    // Named so that its CPU shows apart in /proc/PID/task/TID/comm (bench/log.ts measures it).
    this.worker = new Worker(new URL(import.meta.url), { workerData: { role: ROLE, limits }, name: 'sm-verifier' });
    this.worker.unref();
    this.worker.postMessage({ type: 'keys', vkeys } satisfies Request);
    this.worker.on('message', (flat: Flat) => {
      const jobs = this.sent.shift();
      if (jobs === undefined) return;
      this.load -= jobs.length;
      this.send();
      let at = 0;
      for (const job of jobs) {
        const { result, next } = decodeResult(flat, at);
        at = next;
        if (result instanceof SourcemeshError) job.reject(result);
        else job.resolve(result);
      }
    });
    const fail = (err: Error) => {
      if (this.failed) return;
      this.failed = true;
      onFail(this, err);
    };
    this.worker.on('error', fail);
    this.worker.on('exit', () => fail(new Error('a verifier thread exited')));
  }

  /** Every job not answered: queued or sent. */
  jobs(): Job[] {
    return [...this.sent.flat(), ...this.queued];
  }

  /** Post what is queued as one batch, if the thread has room for one. */
  send(): void {
    if (this.queued.length === 0 || this.sent.length >= BATCHES_IN_HAND || this.failed) return;
    const jobs = this.queued;
    this.queued = [];
    let size = 4 * jobs.length;
    for (const j of jobs) size += j.entry.length;
    const buf = new ArrayBuffer(size);
    const lengths = new Uint32Array(buf, 0, jobs.length);
    const all = new Uint8Array(buf);
    const extra: [number, readonly string[]][] = [];
    let offset = 4 * jobs.length;
    jobs.forEach((j, i) => {
      lengths[i] = j.entry.length;
      all.set(j.entry, offset);
      offset += j.entry.length;
      if (j.extra.length > 0) extra.push([i, j.extra]);
    });
    this.sent.push(jobs);
    this.worker.postMessage({ type: 'check', buf, count: jobs.length, extra } satisfies Request, [buf]);
  }
}

export class EntryVerifier {
  readonly #limits: EntryLimits;
  readonly #threads: Thread[] = [];
  #vkeys: readonly string[] = [];
  #table = new KeyTable();
  readonly #cache = new Map<string, KnownKey | undefined>();
  #flushing = false;
  #closed = false;

  /** `threads`: worker threads (0: check on this thread); default one per core but one, at least one. */
  constructor(options: { limits: Limits; threads?: number }) {
    const l = options.limits;
    this.#limits = { logEntryBytes: l.logEntryBytes, noteBytes: l.noteBytes, noteSignatures: l.noteSignatures, noteKeyNameBytes: l.noteKeyNameBytes, rotationKeys: l.rotationKeys };
    const n = options.threads ?? defaultThreads();
    for (let i = 0; i < n; i++) this.#threads.push(this.#start());
  }

  get threads(): number {
    return this.#threads.length;
  }

  /** The threads' workers (for tests: a thread that dies). */
  get workers(): readonly Worker[] {
    return this.#threads.map((t) => t.worker);
  }

  /** Entries being checked. */
  get pending(): number {
    let n = 0;
    for (const t of this.#threads) n += t.load;
    return n;
  }

  /** Replace the keys the log knows (vkey texts); jobs submitted from now on are checked with them. */
  setKeys(vkeys: readonly string[]): void {
    this.#vkeys = [...vkeys];
    this.#table = new KeyTable(this.#table, this.#vkeys);
    for (const t of this.#threads) t.worker.postMessage({ type: 'keys', vkeys: this.#vkeys } satisfies Request);
  }

  /** Check `entry` with the known keys plus `extra` (vkeys the submitter names). */
  check(entry: Uint8Array, extra: readonly string[] = []): Promise<CheckedEntry> {
    if (this.#closed) return Promise.reject(new SourcemeshError('E_UNSUPPORTED', 'the log is shutting down'));
    if (this.#threads.length === 0) {
      const r = runJob(entry, extra, this.#table, this.#cache, this.#limits);
      return 'code' in r ? Promise.reject(new SourcemeshError(r.code, r.message)) : Promise.resolve(r);
    }
    let thread = this.#threads[0]!;
    for (const t of this.#threads) if (t.load < thread.load) thread = t;
    return new Promise<CheckedEntry>((resolve, reject) => {
      thread.queued.push({ entry, extra, resolve, reject });
      thread.load++;
      // A thread with both batches in hand takes this one when it answers; otherwise send what this turn
      // of the event loop brings.
      if (thread.sent.length < BATCHES_IN_HAND && !this.#flushing) {
        this.#flushing = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  #flush(): void {
    this.#flushing = false;
    for (const t of this.#threads) t.send();
  }

  #start(): Thread {
    return new Thread(this.#limits, this.#vkeys, (dead, err) => {
      // Its jobs fail (the submitters get 503 and may retry); a new thread takes its place.
      for (const job of dead.jobs()) job.reject(new SourcemeshError('E_INTERNAL', `entry not checked: ${err.message}`));
      dead.queued = [];
      dead.sent.length = 0;
      dead.load = 0;
      const i = this.#threads.indexOf(dead);
      if (i >= 0 && !this.#closed) this.#threads[i] = this.#start();
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(this.#threads.map(async (t) => {
      t.failed = true;
      for (const job of t.jobs()) job.reject(new SourcemeshError('E_UNSUPPORTED', 'the log is shutting down'));
      t.queued = [];
      t.sent.length = 0;
      t.load = 0;
      await t.worker.terminate();
    }));
  }
}

export function defaultThreads(): number {
  return Math.max(1, os.availableParallelism() - 1);
}
