// The gate every submitted entry passes before it is sequenced (docs/OPERATIONS.md, "Who may write to the
// log"): a replay of a logged entry gets its index; anything else is checked on a verifier thread (its
// type, its signatures: 400 when it is not a statement this log takes), judged by the admission policy
// (403), charged to its signers' quotas (429), and only then queued. The policy's decision is taken again
// for each batch under the log's lock, in sequence order, so that two rotation statements for one chain
// can't both pass and an admission file reloaded meanwhile applies to every entry not yet sequenced; the
// index of logged entries, rotation statements and quota charges is written in the transaction that
// moves the tree head (entry-index.ts).

import type { Logger } from '../../logger.ts';
import type { Limits } from '../../limits.ts';
import type { ChainPosition } from '../rotation.ts';
import { type AdmissionPolicy, decide, genesisPositions, knownKeys } from './admission.ts';
import type { CheckedEntry } from './entries/types.ts';
import { entryHash, type EntryIndex } from './entry-index.ts';
import { QuotaBook, type QuotaLimits, type Reservation } from './quota.ts';
import type { BatchGate, Sequencer, Verdict } from './sequencer.ts';
import type { EntryVerifier } from './verifier.ts';

/** A submission the log refuses: the HTTP status, a one-line reason, and Retry-After for 429. */
export class Refused extends Error {
  readonly status: 400 | 403 | 413 | 429;
  readonly retryAfterSeconds: number | undefined;

  constructor(status: 400 | 403 | 413 | 429, message: string, retryAfterSeconds?: number) {
    super(message);
    this.status = status;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** What the sequencer carries for each queued entry. */
export interface EntryMeta {
  readonly hash: Buffer;
  readonly checked: CheckedEntry | undefined;
  /** What its signers' quotas were charged at admission: stored with it when it is logged. */
  readonly reservation: Reservation | undefined;
  /** Set when the batch found it logged already (by another process on the directory). */
  duplicate?: boolean;
}

const PRUNE_EVERY_MS = 60_000;

export class Gate implements BatchGate<EntryMeta> {
  readonly #index: EntryIndex;
  readonly #verifier: EntryVerifier;
  readonly #quota: QuotaBook;
  readonly #logger: Logger;
  readonly #limits: Limits;
  readonly #now: () => number;
  #sequencer!: Sequencer<EntryMeta>;
  #policy: AdmissionPolicy;
  /** The position the log holds for each listed chain. */
  #positions = new Map<string, ChainPosition>();
  /** Entries being checked or sequenced, by hash: a replay meanwhile waits for the first one's answer. */
  readonly #inflight = new Map<string, Promise<number>>();
  #touched = new Set<string>();
  #prunedAt = 0;

  constructor(options: { index: EntryIndex; verifier: EntryVerifier; policy: AdmissionPolicy; quota: QuotaLimits; logger: Logger; limits: Limits; now?: () => number }) {
    this.#index = options.index;
    this.#verifier = options.verifier;
    this.#policy = options.policy;
    this.#logger = options.logger;
    this.#limits = options.limits;
    this.#now = options.now ?? Date.now;
    this.#quota = new QuotaBook(options.index, options.quota, options.limits.logQuotaKeysCached);
    this.#setPolicy(options.policy, false);
  }

  attach(sequencer: Sequencer<EntryMeta>): void {
    this.#sequencer = sequencer;
  }

  get policy(): AdmissionPolicy {
    return this.#policy;
  }

  /** Whether a new entry can be taken now (else 503). */
  get accepting(): boolean {
    return this.#sequencer.accepting && this.#verifier.pending < this.#limits.logVerifyPending;
  }

  /** Replace the admission policy (SIGHUP): it applies to every batch sequenced from now on. */
  reload(policy: AdmissionPolicy): void {
    this.#setPolicy(policy, true);
  }

  #setPolicy(policy: AdmissionPolicy, keep: boolean): void {
    const positions = new Map<string, ChainPosition>();
    for (const [chain, genesis] of genesisPositions(policy)) {
      const known = keep ? this.#positions.get(chain) : undefined;
      positions.set(chain, known ?? this.#index.walk(genesis));
    }
    this.#policy = policy;
    this.#positions = positions;
    this.#publishKeys();
  }

  #publishKeys(): void {
    if (this.#policy.mode !== 'unsigned') this.#verifier.setKeys(knownKeys(this.#policy, this.#positions));
  }

  /** The current key set position of each listed project (for the log line after a reload). */
  positions(): ReadonlyMap<string, ChainPosition> {
    return this.#positions;
  }

  /**
   * Take a submitted entry: its index once logged (or logged before). `extra`: vkeys the submitter names,
   * used under --admit-any-signed. Throws Refused, or a SourcemeshError when it could not be stored.
   */
  submit(entry: Buffer, extra: readonly string[]): Promise<number> {
    const hash = entryHash(entry);
    const known = this.#index.lookup(hash);
    if (known !== undefined) return Promise.resolve(known);
    const id = hash.toString('base64');
    const pending = this.#inflight.get(id);
    if (pending !== undefined) return pending;
    const p = this.#admit(entry, hash, extra);
    this.#inflight.set(id, p);
    // Removed once answered: by then the batch that logged it is committed, so a replay finds its row.
    p.then(() => this.#inflight.delete(id), () => this.#inflight.delete(id));
    return p;
  }

  async #admit(entry: Buffer, hash: Buffer, extra: readonly string[]): Promise<number> {
    let checked: CheckedEntry | undefined;
    let reservation: Reservation | undefined;
    if (this.#policy.mode !== 'unsigned') {
      try {
        checked = await this.#verifier.check(entry, this.#policy.mode === 'any-signed' ? extra : []);
      } catch (err) {
        const e = err as { code?: string; message: string };
        if (e.code === 'E_FORMAT' || e.code === 'E_SIGNATURE') throw new Refused(400, e.message);
        throw err;
      }
      const d = decide(checked, this.#policy, (chain) => this.#positions.get(chain));
      if (!d.ok) throw new Refused(403, d.reason);
      const r = this.#quota.reserve(d.charge, entry.length, this.#now());
      if ('retryAfterMs' in r) {
        if (r.retryAfterMs === Infinity) throw new Refused(413, `${entry.length} bytes are more than the key ${r.key.split('+')[0]} may add (${r.what})`);
        const seconds = Math.max(1, Math.ceil(r.retryAfterMs / 1000));
        throw new Refused(429, `the key ${r.key.split('+')[0]} is over its quota of ${r.what}; retry after ${seconds} s`, seconds);
      }
      reservation = r;
    }
    const meta: EntryMeta = { hash, checked, reservation };
    let index: number;
    try {
      index = await this.#sequencer.submit(entry, meta);
    } catch (err) {
      if (reservation) this.#quota.refund(reservation);
      throw err;
    }
    if (reservation) {
      if (meta.duplicate) this.#quota.refund(reservation);
      else this.#quota.settle(reservation);
    }
    return index;
  }

  // -------------------------------------------------------------------------------------------------
  // BatchGate: called by the sequencer under the log's lock

  decide(batch: readonly EntryMeta[], moved: boolean): Verdict[] {
    if (moved) {
      // Another process logged entries: re-read what they changed.
      this.#quota.forget();
      for (const [chain, at] of this.#positions) this.#positions.set(chain, this.#index.walk(at, true));
      this.#publishKeys();
    }
    const working = new Map(this.#positions);
    return batch.map((m): Verdict => {
      if (moved) {
        const existing = this.#index.lookupLocked(m.hash);
        if (existing !== undefined) {
          m.duplicate = true;
          return { existing };
        }
      }
      if (m.checked === undefined) return { accept: true };
      const d = decide(m.checked, this.#policy, (chain) => working.get(chain));
      if (!d.ok) return { refuse: new Refused(403, d.reason) };
      if (d.advance) working.set(d.advance.chain, d.advance);
      return { accept: true };
    });
  }

  record(entries: readonly Uint8Array[], metas: readonly EntryMeta[], base: number): void {
    const now = this.#now();
    const charges: Reservation[] = [];
    this.#touched = new Set();
    for (const m of metas) {
      if (m.checked?.subject.kind === 'rotation') this.#touched.add(m.checked.subject.chain);
    }
    // Charges are stored as the quota book made them at admission (the same keys, the same amounts).
    for (const m of metas) if (m.reservation) charges.push(m.reservation);
    this.#index.record(entries, metas.map((m) => m.hash), base, QuotaBook.deltas(charges), now);
    if (now - this.#prunedAt > PRUNE_EVERY_MS) {
      this.#prunedAt = now;
      this.#index.pruneQuota(now);
    }
  }

  settle(committed: boolean): void {
    const touched = this.#touched;
    this.#touched = new Set();
    if (!committed) return;
    let moved = false;
    for (const chain of touched) {
      const at = this.#positions.get(chain);
      if (at === undefined) continue;
      const next = this.#index.walk(at);
      if (next.sequence !== at.sequence) {
        this.#positions.set(chain, next);
        moved = true;
        const names = this.#policy.chains.get(chain)?.map((p) => p.name) ?? [];
        this.#logger.info({ projects: names, sequence: next.sequence, keys: next.keySet.vkeys.length, threshold: next.keySet.threshold }, 'release keys rotated');
      }
    }
    if (moved) this.#publishKeys();
  }
}
