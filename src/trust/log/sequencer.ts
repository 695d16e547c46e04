// Sequencing with group commit: submitted entries wait in memory; one batch at a time takes all that are
// waiting (up to logBatchEntries), writes their tiles and bundles, moves the tree head by compare-and-swap,
// and only then tells each submitter its index. An index is therefore never given out for an entry that a
// crash could lose, and one fsync'd head update serves thousands of entries.

import type { Logger } from 'pino';
import { SourcemeshError } from '../../errors.ts';
import type { Limits } from '../../limits.ts';
import { sameHead, type LogStorage, type TreeHead } from './storage.ts';
import { integrate, type TreeEdge } from './tree.ts';

interface Pending {
  readonly entry: Uint8Array;
  readonly resolve: (index: number) => void;
  readonly reject: (err: unknown) => void;
}

export class Sequencer {
  readonly #storage: LogStorage;
  readonly #limits: Limits;
  readonly #logger: Logger;
  readonly #onCommitted: (head: TreeHead, added: number) => void;
  #edge!: TreeEdge;
  #head!: TreeHead;
  #pending: Pending[] = [];
  #draining: Promise<void> | undefined;
  #closed = false;

  constructor(options: { storage: LogStorage; limits: Limits; logger: Logger; onCommitted?: (head: TreeHead, added: number) => void }) {
    this.#storage = options.storage;
    this.#limits = options.limits;
    this.#logger = options.logger;
    this.#onCommitted = options.onCommitted ?? (() => {});
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
  submit(entry: Uint8Array): Promise<number> {
    if (this.#closed) return Promise.reject(new SourcemeshError('E_UNSUPPORTED', 'the log is shutting down'));
    if (entry.length > Math.min(this.#limits.logEntryBytes, 0xffff)) {
      return Promise.reject(new SourcemeshError('E_INPUT', `a log entry is at most ${Math.min(this.#limits.logEntryBytes, 0xffff)} bytes`));
    }
    return new Promise<number>((resolve, reject) => {
      this.#pending.push({ entry, resolve, reject });
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

  async #commit(batch: Pending[]): Promise<void> {
    let base: number;
    let next: TreeEdge;
    let filled: readonly string[];
    try {
      ({ base, next, filled } = await this.#storage.withLock(async () => {
        const stored = this.#storage.readHead();
        if (!sameHead(stored, this.#head)) {
          // Another process on this directory moved the tree: continue from its head.
          this.#logger.info({ from: this.#head.size, to: stored.size }, 'tree head moved by another process; reloading');
          this.#edge = await this.#storage.loadEdge(stored);
          this.#head = stored;
        }
        const result = integrate(this.#edge, batch.map((p) => p.entry), this.#limits);
        await this.#storage.writeFiles(result.files);
        this.#storage.swapHead(this.#head, { size: result.next.size, root: result.next.range.root() });
        return { base: this.#edge.size, next: result.next, filled: result.filled };
      }));
    } catch (err) {
      this.#logger.error({ err, entries: batch.length }, 'batch not stored');
      for (const p of batch) p.reject(err);
      return;
    }
    this.#edge = next;
    this.#head = { size: next.size, root: next.range.root() };
    batch.forEach((p, i) => p.resolve(base + i));
    this.#logger.debug({ size: next.size, added: batch.length }, 'batch stored');
    this.#onCommitted(this.#head, batch.length);
    void this.#storage.removePartials(filled);
  }

  /** Stop taking entries and wait for those already queued to be stored. */
  async close(): Promise<void> {
    this.#closed = true;
    while (this.#draining !== undefined) await this.#draining;
  }
}
