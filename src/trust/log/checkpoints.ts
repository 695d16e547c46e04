// Checkpoints: sign the committed tree head (C2SP tlog-checkpoint, origin = the log key's name), get it
// cosigned by the witnesses (C2SP tlog-witness), and publish it, as DIR/checkpoint and GET /checkpoint,
// only once it carries cosignatures from at least `quorum` of them, as Tessera does. Only committed tree
// heads are signed, and those form one chain (storage.ts), so no two checkpoints of one size differ.
// Publishing is a compare-and-swap under the log's lock too: DIR/checkpoint never goes back to a smaller
// tree, even with two processes on one directory.

import type { Logger } from '../../logger.ts';
import { SourcemeshError } from '../../errors.ts';
import type { Limits } from '../../limits.ts';
import { formatCheckpoint, openCheckpoint } from '../checkpoint.ts';
import { type Hash, hashesEqual, proveConsistency, proveInclusion, treeHash } from '../merkle.ts';
import { formatNote, type NoteSignature, type NoteSigner, type NoteVerifier } from '../note.ts';
import { type Tile, TileHashReader, tilePath } from '../tiles.ts';
import { sameHead, type LogStorage, type TreeHead } from './storage.ts';
import type { WitnessClient } from './witness-client.ts';

export interface Published {
  readonly note: string;
  readonly size: number;
  readonly root: Hash;
  /** Cosignatures it carries (from keys other than the log's). */
  readonly cosignatures: number;
}

export interface CheckpointerOptions {
  readonly storage: LogStorage;
  /** The log's key: signs checkpoints under its name, which is the origin. */
  readonly signer: NoteSigner;
  readonly verifier: NoteVerifier;
  readonly witnesses: readonly WitnessClient[];
  readonly quorum: number;
  readonly intervalMs: number;
  /** Sign early once this many entries were added since the last checkpoint (0: only on the interval). */
  readonly batch: number;
  /** Re-sign an unchanged tree this often, so that its published checkpoint carries fresh cosignatures. */
  readonly refreshMs?: number;
  readonly logger: Logger;
  readonly limits: Limits;
  /** Milliseconds. */
  readonly now?: () => number;
}

interface Waiter {
  readonly index: number;
  readonly resolve: (published: Published | undefined) => void;
  readonly timer: NodeJS.Timeout;
}

export class Checkpointer {
  readonly #o: CheckpointerOptions;
  readonly #now: () => number;
  #published: Published | undefined;
  #lastSigned: TreeHead | undefined;
  #lastSignedAt = 0;
  #sinceSigned = 0;
  #round: Promise<void> | undefined;
  #again = false;
  #timer: NodeJS.Timeout | undefined;
  #waiters: Waiter[] = [];
  #proofCache: { size: number; tiles: Map<string, Uint8Array> } = { size: -1, tiles: new Map() };
  /** Witnesses with a request in flight, and the rounds still waiting on witnesses. */
  readonly #busy = new Set<WitnessClient>();
  readonly #inflight = new Set<Promise<void>>();
  readonly #abort = new AbortController();
  #stopped = false;

  constructor(options: CheckpointerOptions) {
    if (!Number.isInteger(options.quorum) || options.quorum < 0 || options.quorum > options.witnesses.length) {
      throw new SourcemeshError('E_USAGE', `--quorum ${options.quorum}: there are ${options.witnesses.length} witnesses`);
    }
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  /** Read DIR/checkpoint and check it belongs to this tree; then sign on the interval. */
  async start(head: TreeHead): Promise<void> {
    this.#published = await this.#readPublished();
    if (this.#published !== undefined) {
      const p = this.#published;
      if (p.size > head.size) throw new SourcemeshError('E_VERIFY', `${this.#o.storage.root}/checkpoint is of ${p.size} entries, beyond the stored tree of ${head.size}`);
      const root = await treeHash(p.size, new TileHashReader(head.size, this.#o.storage.fetchTile));
      if (!hashesEqual(root, p.root)) throw new SourcemeshError('E_VERIFY', `${this.#o.storage.root}/checkpoint is not a checkpoint of this tree (root differs at size ${p.size})`);
    }
    this.#timer = setInterval(() => this.trigger(), this.#o.intervalMs);
    this.trigger();
  }

  get published(): Published | undefined {
    return this.#published;
  }

  /** Entries were committed: sign early if `batch` of them piled up since the last checkpoint. */
  appended(count: number): void {
    this.#sinceSigned += count;
    if (this.#o.batch > 0 && this.#sinceSigned >= this.#o.batch) this.trigger();
  }

  /** Run a round now, or right after the one in progress. */
  trigger(): void {
    if (this.#stopped) return;
    if (this.#round !== undefined) {
      this.#again = true;
      return;
    }
    this.#round = this.#signAndPublish()
      .catch((err) => this.#o.logger.error({ err }, 'checkpoint round failed'))
      .finally(() => {
        this.#round = undefined;
        if (this.#again) {
          this.#again = false;
          this.trigger();
        }
      });
  }

  async #signAndPublish(): Promise<void> {
    const { storage, signer, witnesses, quorum, logger } = this.#o;
    const head = storage.readHead();
    const fresh = this.#now() - this.#lastSignedAt < (this.#o.refreshMs ?? 60_000);
    if (this.#lastSigned !== undefined && sameHead(this.#lastSigned, head) && this.#published?.size === head.size && fresh) return;
    this.#sinceSigned = 0;
    const text = formatCheckpoint({ origin: signer.name, size: head.size, rootHash: head.root, extensions: [] });
    const textBytes = Buffer.from(text, 'utf8');
    const logSignature: NoteSignature = { name: signer.name, keyId: signer.keyId, signature: signer.sign(textBytes) };
    const note = formatNote(text, [logSignature]);
    this.#lastSigned = head;
    this.#lastSignedAt = this.#now();
    logger.info({ size: head.size, root: Buffer.from(head.root).toString('base64') }, 'checkpoint signed');

    // Proofs come from the tiles of the committed head (a partial tile deleted since is read from its full one).
    const reader = new TileHashReader(head.size, storage.fetchTile);
    const proofs = new Map<number, Promise<Hash[]>>();
    const prove = (old: number) => {
      let p = proofs.get(old);
      if (p === undefined) proofs.set(old, (p = proveConsistency(old, head.size, reader)));
      return p;
    };
    const cosignatures: NoteSignature[] = [];
    let publishedWith = -1;
    let quorumReached!: () => void;
    const reached = new Promise<void>((resolve) => (quorumReached = resolve));
    const publishIfQuorum = async () => {
      if (cosignatures.length < quorum || cosignatures.length <= publishedWith) return;
      publishedWith = cosignatures.length;
      await this.#publish(text, [logSignature, ...cosignatures], head);
      quorumReached();
    };
    await publishIfQuorum();
    const guess = this.#published?.size ?? 0;
    // A witness still busy with an earlier checkpoint (slow, or hanging until its timeout) sits this round
    // out; the round ends once the quorum is in or every witness asked has answered, so a slow witness
    // never holds back the next checkpoint.
    const asked = witnesses.filter((w) => !this.#busy.has(w));
    const answers = Promise.all(asked.map(async (w) => {
      const t0 = this.#now();
      this.#busy.add(w);
      try {
        const got = await w.cosign(text, note, head.size, prove, guess, this.#abort.signal);
        cosignatures.push(...got);
        logger.debug({ witness: w.name, size: head.size, ms: this.#now() - t0 }, 'cosigned');
      } catch (err) {
        logger.warn({ witness: w.name, size: head.size, err }, 'no cosignature from witness');
        return;
      } finally {
        this.#busy.delete(w);
      }
      await publishIfQuorum().catch((err) => logger.error({ err, size: head.size }, 'checkpoint not published'));
    })).then(() => {
      if (cosignatures.length < quorum) {
        logger.warn({ size: head.size, cosignatures: cosignatures.length, quorum }, 'checkpoint not published: too few cosignatures');
      }
    });
    this.#inflight.add(answers);
    void answers.finally(() => this.#inflight.delete(answers));
    await Promise.race([answers, reached]);
  }

  async #readPublished(): Promise<Published | undefined> {
    const bytes = await this.#o.storage.readCheckpoint();
    if (bytes === undefined) return undefined;
    const opened = openCheckpoint(bytes, [this.#o.verifier], this.#o.limits);
    if (opened.checkpoint.origin !== this.#o.signer.name) {
      throw new SourcemeshError('E_VERIFY', `${this.#o.storage.root}/checkpoint has origin ${opened.checkpoint.origin}, not ${this.#o.signer.name}`);
    }
    return { note: bytes.toString('utf8'), size: opened.checkpoint.size, root: Buffer.from(opened.checkpoint.rootHash), cosignatures: opened.note.signatures.length - 1 };
  }

  async #publish(text: string, signatures: readonly NoteSignature[], head: TreeHead): Promise<void> {
    const note = formatNote(text, signatures, this.#o.limits);
    const cosignatures = signatures.length - 1;
    const done = await this.#o.storage.withLock(async () => {
      const current = await this.#readPublished();
      if (current !== undefined) {
        if (current.size > head.size) return current;
        if (current.size === head.size) {
          // Never happens with one chain of tree heads; if it does, refuse loudly rather than flip roots.
          if (!hashesEqual(current.root, head.root)) throw new SourcemeshError('E_VERIFY', `two roots for tree size ${head.size}: ${this.#o.storage.root}/checkpoint and the tree head disagree`);
          if (current.cosignatures > cosignatures) return current;
        }
      }
      await this.#o.storage.writeCheckpoint(note);
      return { note, size: head.size, root: Buffer.from(head.root), cosignatures };
    });
    this.#published = done;
    if (done.note === note) {
      this.#o.logger.info({ size: head.size, root: Buffer.from(head.root).toString('base64'), cosignatures }, 'checkpoint published');
    }
    this.#wake();
  }

  /**
   * Resolve when a published checkpoint covers entry `index` (undefined after logCheckpointWaitMs).
   * E_UNSUPPORTED (answer 503) when too many clients wait already.
   */
  waitFor(index: number): Promise<Published | undefined> {
    const p = this.#published;
    if (p !== undefined && p.size > index) return Promise.resolve(p);
    if (this.#waiters.length >= this.#o.limits.logCheckpointWaiters) {
      return Promise.reject(new SourcemeshError('E_UNSUPPORTED', 'too many clients are waiting for a checkpoint'));
    }
    return new Promise((resolve) => {
      const waiter: Waiter = {
        index,
        resolve,
        timer: setTimeout(() => {
          this.#waiters = this.#waiters.filter((w) => w !== waiter);
          resolve(undefined);
        }, this.#o.limits.logCheckpointWaitMs),
      };
      this.#waiters.push(waiter);
    });
  }

  #wake(): void {
    const p = this.#published;
    if (p === undefined) return;
    const ready = this.#waiters.filter((w) => w.index < p.size);
    if (ready.length === 0) return;
    this.#waiters = this.#waiters.filter((w) => w.index >= p.size);
    for (const w of ready) {
      clearTimeout(w.timer);
      w.resolve(p);
    }
  }

  /** The inclusion proof of entry `index` in the tree of `size` (a published size), from the tiles on disk. */
  async inclusionProof(index: number, size: number): Promise<Hash[]> {
    if (this.#proofCache.size !== size) this.#proofCache = { size, tiles: new Map() };
    const cache = this.#proofCache.tiles;
    const reader = new TileHashReader(size, async (tile: Tile) => {
      const key = tilePath(tile);
      let data = cache.get(key);
      if (data === undefined) {
        data = await this.#o.storage.fetchTile(tile);
        if (cache.size < 4096) cache.set(key, data);
      }
      return data;
    });
    return proveInclusion(index, size, reader);
  }

  /** Stop signing; pending waiters get no checkpoint. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#abort.abort();
    if (this.#round !== undefined) await this.#round;
    await Promise.all(this.#inflight);
    for (const w of this.#waiters) {
      clearTimeout(w.timer);
      w.resolve(undefined);
    }
    this.#waiters = [];
  }
}
