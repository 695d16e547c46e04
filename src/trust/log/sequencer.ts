// Sequencing with group commit: submitted entries wait in memory; one batch at a time takes all that are
// waiting (up to logBatchEntries), writes their tiles and bundles, moves the tree head by compare-and-swap,
// and only then tells each submitter its index. An index is therefore never given out for an entry that a
// crash could lose, and one fsync'd head update serves thousands of entries.
//
// A gate (gate.ts) sees each batch under the log's lock before it is integrated, in sequence order: it may
// refuse entries or answer them with the index they already have, and it records what it must in the
// same transaction as the tree head.

import type { Logger } from '../../logger.ts';
import { SourcemeshError } from '../../errors.ts';
import type { Limits } from '../../limits.ts';
import { sameHead, type LogStorage, type TreeHead } from './storage.ts';
import { integrate, type TreeEdge } from './tree.ts';

/** What a gate says of one entry of a batch. */
export type Verdict = { readonly accept: true } | { readonly refuse: Error } | { readonly existing: number };

export interface BatchGate<M> {
  /** Under the lock, before integration: a verdict per entry, in order. `moved`: another process moved the tree. */
  decide(batch: readonly M[], moved: boolean): Verdict[];
  /** Under the lock, after the head moved and before COMMIT (synchronous): the accepted entries at base, base + 1, ... */
  record(entries: readonly Uint8Array[], metas: readonly M[], base: number): void;
  /** After the transaction: whether it committed. */
  settle(committed: boolean): void;
}

interface Pending<M> {
  readonly entry: Uint8Array;
  readonly meta: M;
  readonly resolve: (index: number) => void;
  readonly reject: (err: unknown) => void;
}

export class Sequencer<M = undefined> {
  readonly #storage: LogStorage;
  readonly #limits: Limits;
  readonly #logger: Logger;
  readonly #onCommitted: (head: TreeHead, added: number) => void;
  readonly #gate: BatchGate<M> | undefined;
  #edge!: TreeEdge;
  #head!: TreeHead;
  #pending: Pending<M>[] = [];
  #draining: Promise<void> | undefined;
  #closed = false;

  constructor(options: { storage: LogStorage; limits: Limits; logger: Logger; onCommitted?: (head: TreeHead, added: number) => void; gate?: BatchGate<M> }) {
    this.#storage = options.storage;
    this.#limits = options.limits;
    this.#logger = options.logger;
    this.#onCommitted = options.onCommitted ?? (() => {});
    this.#gate = options.gate;
  }

  /** Load the tree's right edge from disk (under the lock, so no other process is halfway through a batch). */
  async start(): Promise<void> {
    await this.#storage.withLock(async () => {
      const head = this.#storage.readHead();
      this.#edge = await this.#storage.loadEdge(head);
      this.#head = head;
    });
    this.#logger.info({ size: this.#head.size }, 'tree loaded');
  }

  /** The tree head this process last committed or loaded. */
  get head(): TreeHead {
    return this.#head;
  }

  /** False while the queue is full (answer 503) or the log is closing. */
  get accepting(): boolean {
    return !this.#closed && this.#pending.length < this.#limits.logPendingEntries;
  }

  get pending(): number {
    return this.#pending.length;
  }

  /** Queue an entry; resolves with its index once the tree head covering it is stored. */
  submit(entry: Uint8Array, meta: M): Promise<number> {
    if (this.#closed) return Promise.reject(new SourcemeshError('E_UNSUPPORTED', 'the log is shutting down'));
    if (entry.length > Math.min(this.#limits.logEntryBytes, 0xffff)) {
      return Promise.reject(new SourcemeshError('E_INPUT', `a log entry is at most ${Math.min(this.#limits.logEntryBytes, 0xffff)} bytes`));
    }
    return new Promise<number>((resolve, reject) => {
      this.#pending.push({ entry, meta, resolve, reject });
      // Entries arriving in the same turn of the event loop join one batch.
      if (this.#draining === undefined) this.#draining = new Promise<void>((done) => setImmediate(() => void this.#drain().finally(done)));
    });
  }

  async #drain(): Promise<void> {
    try {
      while (this.#pending.length > 0) {
        const batch = this.#pending.splice(0, this.#limits.logBatchEntries);
        await this.#commit(batch);
      }
    } finally {
      this.#draining = undefined;
    }
  }

  async #commit(batch: Pending<M>[]): Promise<void> {
    let base = 0;
    let next: TreeEdge | undefined;
    let filled: readonly string[] = [];
    let verdicts: Verdict[] = [];
    let accepted: Pending<M>[] = [];
    try {
      await this.#storage.withLock(async () => {
        const stored = this.#storage.readHead();
        const moved = !sameHead(stored, this.#head);
        if (moved) {
          // Another process on this directory moved the tree: continue from its head.
          this.#logger.info({ from: this.#head.size, to: stored.size }, 'tree head moved by another process; reloading');
          this.#edge = await this.#storage.loadEdge(stored);
          this.#head = stored;
        }
        verdicts = this.#gate?.decide(batch.map((p) => p.meta), moved) ?? batch.map(() => ({ accept: true }) as const);
        accepted = batch.filter((_, i) => 'accept' in verdicts[i]!);
        base = this.#edge.size;
        if (accepted.length === 0) return;
        const result = integrate(this.#edge, accepted.map((p) => p.entry), this.#limits);
        await this.#storage.writeFiles(result.files);
        // From here to COMMIT nothing awaits: the head and the gate's rows go in one transaction.
        this.#storage.swapHead(this.#head, { size: result.next.size, root: result.next.range.root() });
        this.#gate?.record(accepted.map((p) => p.entry), accepted.map((p) => p.meta), base);
        next = result.next;
        filled = result.filled;
      });
    } catch (err) {
      this.#gate?.settle(false);
      this.#logger.error({ err, entries: batch.length }, 'batch not stored');
      for (const p of batch) p.reject(err);
      return;
    }
    if (next !== undefined) {
      this.#edge = next;
      this.#head = { size: next.size, root: next.range.root() };
    }
    this.#gate?.settle(true);
    let at = base;
    batch.forEach((p, i) => {
      const v = verdicts[i]!;
      if ('accept' in v) p.resolve(at++);
      else if ('existing' in v) p.resolve(v.existing);
      else p.reject(v.refuse);
    });
    if (accepted.length === 0) return;
    this.#logger.debug({ size: this.#head.size, added: accepted.length }, 'batch stored');
    this.#onCommitted(this.#head, accepted.length);
    void this.#storage.removePartials(filled);
  }

  /** Stop taking entries and wait for those already queued to be stored. */
  async close(): Promise<void> {
    this.#closed = true;
    while (this.#draining !== undefined) await this.#draining;
  }
}
