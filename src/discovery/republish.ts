// `seed --republish dht:HEXKEY?salt=NAME`: keep mirror-list pointers alive in the DHT. BEP 44 storing
// nodes drop an item after some two hours unless it is put again, and only the publisher can sign a new
// one; but a signed item may be stored again by anyone, unchanged (BEP 44: nodes check the signature, not
// who puts it). So a long-running node gets each pointer, keeps the newest one it has seen (a lower seq
// from the DHT is a replay, never put), and puts it again every limits.dhtRepublishMs.
import { SourcemeshError, asSourcemeshError } from '../errors.ts';
import { LIMITS, type Limits } from '../limits.ts';
import { SILENT, type Logger } from '../logger.ts';
import type { DhtNode, MutableItem } from './dht.ts';
import { formatPointerAddress, parsePointer, type PointerAddress } from './pointer.ts';

export type HeldItem = Pick<MutableItem, 'value' | 'seq' | 'sig'>;

/**
 * The item to put again: the DHT's when its seq is higher than the one held (the publisher published
 * again), else the one held (the DHT forgot it, or replays an older one).
 */
export function newerItem(held: HeldItem | undefined, found: HeldItem | undefined): HeldItem | undefined {
  if (found === undefined) return held;
  if (held === undefined || found.seq > held.seq) return found;
  return held;
}

export interface RepublishResult {
  address: string;
  seq?: number;
  /** DHT nodes that took the item. */
  nodes?: number;
  error?: string;
}

export class PointerRepublisher {
  readonly #dht: DhtNode;
  readonly #addresses: readonly PointerAddress[];
  readonly #held = new Map<string, HeldItem>();
  readonly #log: Logger;
  readonly #everyMs: number;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<RepublishResult[]> | undefined;

  constructor(dht: DhtNode, addresses: readonly PointerAddress[], o: { everyMs?: number; limits?: Limits; log?: Logger } = {}) {
    this.#dht = dht;
    this.#addresses = addresses;
    this.#log = o.log ?? SILENT;
    this.#everyMs = o.everyMs ?? (o.limits ?? LIMITS).dhtRepublishMs;
  }

  /** The seq held for `a`, if any. */
  heldSeq(a: PointerAddress): number | undefined {
    return this.#held.get(formatPointerAddress(a))?.seq;
  }

  /** One round: get each pointer, keep the newest, put it again. Never throws: failures are in the results. */
  round(): Promise<RepublishResult[]> {
    this.#running ??= this.#round().finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #round(): Promise<RepublishResult[]> {
    const results: RepublishResult[] = [];
    for (const a of this.#addresses) {
      const address = formatPointerAddress(a);
      const salt = a.salt ? Buffer.from(a.salt) : undefined;
      try {
        const found = await this.#dht.getMutable(a.publicKey, salt).catch((err: unknown) => {
          // A DHT that answers nothing good this round does not stop us putting what we hold.
          this.#log.warn({ address, error: asSourcemeshError(err).message }, 'mirror-list pointer: get failed');
          return undefined;
        });
        if (found !== undefined) parsePointer(found.value, address); // a key that signed garbage: not spread further
        const item = newerItem(this.#held.get(address), found);
        if (item === undefined) throw new SourcemeshError('E_NO_SOURCE', `${address}: no DHT node has this pointer yet; nothing to put again`);
        this.#held.set(address, item);
        const put = await this.#dht.putSigned(a.publicKey, salt, item);
        results.push({ address, seq: item.seq, nodes: put.nodes });
        this.#log.info({ address, seq: item.seq, nodes: put.nodes }, 'mirror-list pointer put again');
      } catch (err) {
        const e = asSourcemeshError(err);
        results.push({ address, error: `${e.message} [${e.code}]` });
        this.#log.warn({ address, error: e.message, code: e.code }, 'mirror-list pointer not put again');
      }
    }
    return results;
  }

  /** A round now, then one every `everyMs`. */
  start(): Promise<RepublishResult[]> {
    this.#timer ??= setInterval(() => void this.round(), this.#everyMs);
    return this.round();
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }
}
