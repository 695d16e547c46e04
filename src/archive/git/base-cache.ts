// A small LRU of rebuilt delta bases, bounded in bytes (git keeps one too: core.deltaBaseCacheLimit).
// Trees of one commit are usually deltas of each other and blobs of nearby versions share bases, so
// keeping recent bases avoids re-inflating and re-applying whole chains.
//
// A base is kept only when it is wanted a second time (issue 14): the first time its key is offered, only
// the key is remembered (a "ghost", a few dozen bytes) and the caller builds the base in scratch memory it
// reuses. In one archive most bases are wanted once: keeping every one (the history-rich bench repository:
// 1,942 bases, 11 MB, for the newest commit, and 20 MB for an early one) gave no hit at all, and cost a
// fresh, page-faulted buffer for each, where the scratch memory is faulted in once.

import type { ObjectType } from './object-id.ts';

export interface CachedObject {
  type: ObjectType;
  data: Buffer;
}

/** Keys remembered as offered once, at most (the oldest forgotten first): about 3 MB at most. */
const GHOSTS = 64 * 1024;

export class DeltaBaseCache {
  private readonly map = new Map<string, CachedObject>();
  private readonly ghosts = new Set<string>();
  private bytes = 0;
  private readonly budget: number;
  /** For tests and profiles: keys admitted (wanted a second time), and hits. */
  readonly stats = { admitted: 0, hits: 0 };

  constructor(budget: number) {
    this.budget = budget;
  }

  /** Bytes held. */
  get size(): number {
    return this.bytes;
  }

  get(key: string): CachedObject | undefined {
    const hit = this.map.get(key);
    if (hit) {
      this.stats.hits++;
      // Map keeps insertion order: re-inserting marks the entry most recently used.
      this.map.delete(key);
      this.map.set(key, hit);
    }
    return hit;
  }

  /**
   * Whether the result under `key`, about to be built, should be built in a buffer of its own and set():
   * true when the key was offered before (and the base fits the budget), else false, and the key is
   * remembered for next time.
   */
  admit(key: string, size: number): boolean {
    if (size > this.budget / 4) return false;
    if (this.ghosts.delete(key)) {
      this.stats.admitted++;
      return true;
    }
    if (this.ghosts.size >= GHOSTS) this.ghosts.delete(this.ghosts.values().next().value!);
    this.ghosts.add(key);
    return false;
  }

  set(key: string, value: CachedObject): void {
    const size = value.data.length;
    // One huge base would evict everything else for little gain.
    if (size > this.budget / 4 || this.map.has(key)) return;
    this.map.set(key, value);
    this.bytes += size;
    for (const [k, v] of this.map) {
      if (this.bytes <= this.budget) break;
      this.map.delete(k);
      this.bytes -= v.data.length;
    }
  }

  clear(): void {
    this.map.clear();
    this.ghosts.clear();
    this.bytes = 0;
  }
}
