// A response body taken straight from undici's dispatch handler (onResponseData), without the Readable
// and async iteration of request(): a consumer that pipes gets each chunk in a plain call, no promise per
// chunk, and pauses the parser only when it must wait (a full write batch). Consumers that iterate
// (small bodies: mirror lists, notes) still can.
import { readDone, socketBytesRead } from '../net/socket-buffers.ts';
import type { Dispatcher } from '../net/undici.ts';

/** Takes one chunk; a promise pauses the body until it settles (rejected: the body is cancelled). */
export type BodySink = (chunk: Buffer) => void | Promise<void>;

/** Bytes an iterating consumer may leave unread before the parser is paused. */
const ITERATOR_HIGH_WATER = 64 << 10;

export class HttpBody implements AsyncIterable<Uint8Array> {
  #controller: Dispatcher.DispatchController;
  #sink: BodySink | undefined;
  #queue: Buffer[] = [];
  #queued = 0;
  #ended = false;
  #error: unknown = undefined;
  #cancelled = false;
  /** Settles the pipe or wakes the iterator. */
  #wake: (() => void) | undefined;
  /** Bytes past which the body is dropped instead of read on (dump()). */
  #discardLeft = -1;

  constructor(controller: Dispatcher.DispatchController) {
    this.#controller = controller;
    // Nobody reads yet: hold the parser until a consumer says how it wants the bytes.
    controller.pause();
  }

  // ---- called by the dispatch handler ----

  data(chunk: Buffer): void {
    socketBytesRead(chunk.length);
    if (this.#cancelled || this.#ended) return;
    if (this.#discardLeft >= 0) {
      this.#discardLeft -= chunk.length;
      if (this.#discardLeft < 0) this.cancel();
      return;
    }
    if (this.#sink) {
      let r: void | Promise<void>;
      try {
        r = this.#sink(chunk);
      } catch (err) {
        this.#fail(err);
        return;
      }
      if (r) {
        this.#controller.pause();
        r.then(() => { if (!this.#cancelled && !this.#ended) this.#controller.resume(); }, (err) => this.#fail(err));
      }
      return;
    }
    this.#queue.push(chunk);
    this.#queued += chunk.length;
    if (this.#queued >= ITERATOR_HIGH_WATER) this.#controller.pause();
    this.#notify();
  }

  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#notify();
  }

  error(err: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    // An error after cancel() is the abort we asked for; the consumer already has its own.
    if (this.#error === undefined) this.#error = err;
    this.#notify();
  }

  // ---- for consumers ----

  /**
   * Feed every chunk to `sink` as it arrives; resolves at the end of the body, rejects with the
   * transport's error or the sink's (the body is then cancelled). Call once, instead of iterating.
   */
  pipe(sink: BodySink): Promise<void> {
    if (this.#sink || this.#queued || this.#wake) throw new Error('HttpBody: consumed twice');
    this.#sink = sink;
    const done = new Promise<void>((resolve, reject) => {
      this.#wake = () => {
        if (!this.#ended) return;
        this.#wake = undefined;
        if (this.#error !== undefined) reject(this.#error);
        else resolve();
      };
    });
    this.#notify();
    if (!this.#ended) this.#controller.resume();
    return done;
  }

  /** Read and drop up to 128 KiB so the connection can be reused, else close it (like undici's dump()). */
  async dump(): Promise<void> {
    this.#discardLeft = 128 << 10;
    const done = new Promise<void>((resolve) => { this.#wake = () => { if (this.#ended) resolve(); }; });
    this.#notify();
    if (!this.#ended) this.#controller.resume();
    await done;
  }

  /** Stop reading and close the connection; a pipe in progress rejects with an abort. */
  cancel(): void {
    this.#fail(Object.assign(new Error('response body cancelled'), { name: 'AbortError' }));
  }

  /** readBoundedBody's name for cancel(). */
  destroy(): void {
    this.cancel();
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return this.#iterate(false);
  }

  /**
   * The chunks for a consumer that copies each one before it asks for the next (or stops): each is good
   * only until then, as its memory may be read into again (src/net/socket-buffers.ts readDone).
   */
  lend(): AsyncIterable<Uint8Array> {
    return { [Symbol.asyncIterator]: () => this.#iterate(true) };
  }

  #iterate(lending: boolean): AsyncIterator<Uint8Array> {
    let started = false;
    let lent: Buffer | undefined;
    const giveBack = (): void => {
      if (lent) readDone(lent);
      lent = undefined;
    };
    return {
      next: async (): Promise<IteratorResult<Uint8Array>> => {
        giveBack();
        if (!started) {
          started = true;
          if (!this.#ended) this.#controller.resume();
        }
        for (;;) {
          const chunk = this.#queue.shift();
          if (chunk) {
            this.#queued -= chunk.length;
            if (this.#queued < ITERATOR_HIGH_WATER && this.#controller.paused && !this.#ended) this.#controller.resume();
            if (lending) lent = chunk;
            return { done: false, value: chunk };
          }
          if (this.#ended) {
            if (this.#error !== undefined) throw this.#error;
            return { done: true, value: undefined };
          }
          await new Promise<void>((resolve) => { this.#wake = resolve; });
          this.#wake = undefined;
        }
      },
      return: async (): Promise<IteratorResult<Uint8Array>> => {
        giveBack();
        if (!this.#ended) this.cancel();
        return { done: true, value: undefined };
      },
    };
  }

  #fail(err: unknown): void {
    if (this.#ended) return;
    this.#cancelled = true;
    this.#error = err;
    this.#queue = [];
    this.#queued = 0;
    this.#ended = true;
    if (!this.#controller.aborted) this.#controller.abort(err instanceof Error ? err : new Error(String(err)));
    this.#notify();
  }

  #notify(): void {
    this.#wake?.();
  }
}
