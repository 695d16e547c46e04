// A small LRU of rebuilt delta bases, bounded in bytes (git keeps one too: core.deltaBaseCacheLimit).
// Trees of one commit are usually deltas of each other and blobs of nearby versions share bases, so
// keeping recent bases avoids re-inflating and re-applying whole chains.

import type { ObjectType } from './object-id.ts';

export interface CachedObject {
  type: ObjectType;
  data: Buffer;
}

export class DeltaBaseCache {
  private readonly map = new Map<string, CachedObject>();
  private bytes = 0;
  private readonly budget: number;

  constructor(budget: number) {
    this.budget = budget;
  }

  get(key: string): CachedObject | undefined {
    const hit = this.map.get(key);
    if (hit) {
      // Map keeps insertion order: re-inserting marks the entry most recently used.
      this.map.delete(key);
      this.map.set(key, hit);
    }
    return hit;
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
    this.bytes = 0;
  }
}
