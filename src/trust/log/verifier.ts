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
import type { CheckedEntry, EntryLimits, KeyLookup, KnownKey } from './entries/types.ts';

const ROLE = 'sourcemesh-log-verifier';

/**
 * A batch of jobs travels as one transferred buffer holding every entry: a request body is often a view
 * of a larger socket buffer, which structured cloning would copy whole.
 */
type Request =
  | { type: 'keys'; vkeys: readonly string[] }
  | { type: 'check'; buf: ArrayBuffer; jobs: { id: number; offset: number; length: number; extra: readonly string[] }[] };
type Result = { id: number; checked: CheckedEntry } | { id: number; code: ErrorCode; message: string };

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

function runJob(job: { id: number; entry: Uint8Array; extra: readonly string[] }, table: KeyTable, cache: Map<string, KnownKey | undefined>, limits: EntryLimits): Result {
  try {
    return { id: job.id, checked: checkEntry(job.entry, withExtra(table, job.extra, cache), limits) };
  } catch (err) {
    if (isSourcemeshError(err)) return { id: job.id, code: err.code, message: err.message };
    return { id: job.id, code: 'E_FORMAT', message: `unreadable entry (${(err as Error).message})` };
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
    const all = new Uint8Array(m.buf);
    parentPort!.postMessage(m.jobs.map((job) => runJob({ id: job.id, entry: all.subarray(job.offset, job.offset + job.length), extra: job.extra }, table, cache, limits)));
  });
}

interface Waiting {
  readonly resolve: (c: CheckedEntry) => void;
  readonly reject: (e: Error) => void;
}

/** Batches a thread may hold at once: one being checked, one ready behind it. */
const BATCHES_IN_HAND = 2;

class Thread {
  readonly worker: Worker;
  readonly waiting = new Map<number, Waiting>();
  queued: { id: number; entry: Uint8Array; extra: readonly string[] }[] = [];
  /** Batches sent and not answered yet. */
  inHand = 0;
  failed = false;

  constructor(limits: EntryLimits, vkeys: readonly string[], onFail: (t: Thread, err: Error) => void) {
    // Named so that its CPU shows apart in /proc/PID/task/TID/comm (bench/log.ts measures it).
    this.worker = new Worker(new URL(import.meta.url), { workerData: { role: ROLE, limits }, name: 'sm-verifier' });
    this.worker.unref();
    this.worker.postMessage({ type: 'keys', vkeys } satisfies Request);
    this.worker.on('message', (results: Result[]) => {
      this.inHand--;
      this.send();
      for (const r of results) {
        const w = this.waiting.get(r.id);
        if (w === undefined) continue;
        this.waiting.delete(r.id);
        if ('checked' in r) w.resolve(r.checked);
        else w.reject(new SourcemeshError(r.code, r.message));
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

  get load(): number {
    return this.waiting.size;
  }

  /** Post what is queued as one batch, if the thread has room for one. */
  send(): void {
    if (this.queued.length === 0 || this.inHand >= BATCHES_IN_HAND || this.failed) return;
    const jobs = this.queued;
    this.queued = [];
    let size = 0;
    for (const j of jobs) size += j.entry.length;
    const buf = new ArrayBuffer(size);
    const all = new Uint8Array(buf);
    let offset = 0;
    const sent = jobs.map((j) => {
      all.set(j.entry, offset);
      offset += j.entry.length;
      return { id: j.id, offset: offset - j.entry.length, length: j.entry.length, extra: j.extra };
    });
    this.inHand++;
    this.worker.postMessage({ type: 'check', buf, jobs: sent } satisfies Request, [buf]);
  }
}

export class EntryVerifier {
  readonly #limits: EntryLimits;
  readonly #threads: Thread[] = [];
  #vkeys: readonly string[] = [];
  #table = new KeyTable();
  readonly #cache = new Map<string, KnownKey | undefined>();
  #seq = 0;
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

  /** Entries being checked. */
  get pending(): number {
    let n = 0;
    for (const t of this.#threads) n += t.waiting.size;
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
      const r = runJob({ id: 0, entry, extra }, this.#table, this.#cache, this.#limits);
      return 'checked' in r ? Promise.resolve(r.checked) : Promise.reject(new SourcemeshError(r.code, r.message));
    }
    let thread = this.#threads[0]!;
    for (const t of this.#threads) if (t.load < thread.load) thread = t;
    const id = ++this.#seq;
    const job = { id, entry, extra };
    return new Promise<CheckedEntry>((resolve, reject) => {
      thread.waiting.set(id, { resolve, reject });
      thread.queued.push(job);
      // A thread with both batches in hand takes this one when it answers; otherwise send what this turn
      // of the event loop brings.
      if (thread.inHand < BATCHES_IN_HAND && !this.#flushing) {
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
      for (const w of dead.waiting.values()) w.reject(new SourcemeshError('E_INTERNAL', `entry not checked: ${err.message}`));
      dead.waiting.clear();
      const i = this.#threads.indexOf(dead);
      if (i >= 0 && !this.#closed) this.#threads[i] = this.#start();
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(this.#threads.map(async (t) => {
      t.failed = true;
      for (const w of t.waiting.values()) w.reject(new SourcemeshError('E_UNSUPPORTED', 'the log is shutting down'));
      t.waiting.clear();
      await t.worker.terminate();
    }));
  }
}

export function defaultThreads(): number {
  return Math.max(1, os.availableParallelism() - 1);
}
