// A send timeout measured by progress: a response is cut when the kernel has taken none of its bytes
// for `timeoutMs`, however large the write it is stuck in. A slow client that keeps reading is never
// cut, even when one 1 MiB write takes it a minute; a client that stopped reading gives back what it
// held (buffers, a connection) after `timeoutMs` instead of holding it until some idle timeout.
//
// Progress is read from libuv's write queue (the bytes handed to a TCP handle that the kernel has not
// taken yet): Node keeps it live on the handle as `writeQueueSize`. Under TLS the queue that moves is
// the one of the TCP socket beneath (the TLS layer hands it whole records).
import type { Socket } from 'node:net';

interface Entry {
  socket: Socket;
  queued: number;
  dispatched: number;
  /** Clock (ms) of the last progress seen. */
  movedAt: number;
  onStall: () => void;
}

/** Bytes handed to `socket` that the kernel has not taken yet (0 when unknown or gone), and bytes handed in all. */
export function sendProgress(socket: Socket): { queued: number; dispatched: number } {
  const raw = (Reflect.get(socket, '_parent') as Socket | null | undefined) ?? socket;
  const handle = Reflect.get(raw, '_handle') as { writeQueueSize?: number } | null | undefined;
  return { queued: typeof handle?.writeQueueSize === 'number' ? handle.writeQueueSize : 0, dispatched: raw.bytesWritten ?? 0 };
}

type Progress = { queued: number; dispatched: number };

/**
 * The pure decision: given the progress at the last look and now, whether the send moved (nothing is
 * queued: we are the slow side; the queue changed: the kernel took bytes; or more was handed to the
 * socket, which happens only after the previous write completed) and whether it has stalled for good.
 */
export function sendState(before: Progress, after: Progress, movedAt: number, now: number, timeoutMs: number): 'moved' | 'waiting' | 'stalled' {
  if (after.queued === 0 || after.queued !== before.queued || after.dispatched !== before.dispatched) return 'moved';
  return now - movedAt >= timeoutMs ? 'stalled' : 'waiting';
}

export class SendWatch {
  private readonly entries = new Set<Entry>();
  readonly timeoutMs: number;

  constructor(timeoutMs: number) {
    this.timeoutMs = timeoutMs;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Watch `socket` from `now` until the returned function is called; `onStall` runs at most once. */
  watch(socket: Socket, now: number, onStall: () => void): () => void {
    const e: Entry = { socket, ...sendProgress(socket), movedAt: now, onStall };
    this.entries.add(e);
    return () => this.entries.delete(e);
  }

  /** Look at every watched send (every second or so). Sends that moved get their socket's idle timer reset. */
  tick(now: number): void {
    if (this.timeoutMs <= 0) return;
    for (const e of this.entries) {
      const p = sendProgress(e.socket);
      const state = sendState(e, p, e.movedAt, now, this.timeoutMs);
      e.queued = p.queued;
      e.dispatched = p.dispatched;
      if (state === 'moved') {
        e.movedAt = now;
        // Bytes are flowing: the socket is not idle, even if no write completed (a large one takes a
        // slow reader long). Re-arming the socket's own timeout says so.
        if (p.queued > 0 && e.socket.timeout) e.socket.setTimeout(e.socket.timeout);
      } else if (state === 'stalled') {
        this.entries.delete(e);
        e.onStall();
      }
    }
  }
}
