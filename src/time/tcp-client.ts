// Roughtime over TCP, the client side (RFC 10049 "Protocol Details"): one connection per server for a whole
// measurement, one request at a time on it, each answer read as a ROUGHTIM frame (src/time/frames.ts,
// bounded by limits.roughtimePacketBytes). The server is hostile: garbage, an oversized frame, an answer
// that does not verify, a close or silence past limits.roughtimeTimeoutMs end the connection ("Either
// side SHOULD close the connection in response to synchronization, format, implementation-defined
// timeouts, or other errors") and the attempt; the next attempt connects again.
import net from 'node:net';
import type { Limits } from '../limits.ts';
import { FrameReader } from './frames.ts';
import type { VerifiedResponse } from './protocol.ts';

/** Opens a TCP connection some other way than directly (a SOCKS5 proxy); a reason when it cannot. */
export type Dialer = (host: string, port: number, timeoutMs: number) => Promise<net.Socket | { reason: string }>;

export type Answer = { response: Buffer; verified: VerifiedResponse } | { reason: string };

export class RoughtimeTcpConnection {
  private readonly frames: Buffer[] = [];
  private failure: string | undefined;
  private wake: (() => void) | undefined;
  private readonly socket: net.Socket;

  private constructor(socket: net.Socket, limits: Limits, what: string) {
    this.socket = socket;
    const reader = new FrameReader(what, limits);
    socket.on('data', (chunk: Buffer) => {
      try {
        this.frames.push(...reader.push(chunk));
      } catch (err) {
        this.fail((err as Error).message);
      }
      this.wake?.();
    });
    socket.on('error', (err) => this.fail(`connection failed: ${err.message}`));
    socket.on('end', () => this.fail('the server closed the connection'));
    socket.on('close', () => this.fail('the connection closed'));
  }

  /**
   * Connect within limits.roughtimeTimeoutMs (directly, or with `dial`: through a SOCKS5 proxy under
   * --tor, src/net/socks.ts); a reason when that fails.
   */
  static async connect(host: string, port: number, limits: Limits, dial?: Dialer): Promise<RoughtimeTcpConnection | { reason: string }> {
    const what = `Roughtime response from ${host}:${port} over TCP`;
    if (dial !== undefined) {
      const socket = await dial(host, port, limits.roughtimeTimeoutMs);
      if ('reason' in socket) return socket;
      return new RoughtimeTcpConnection(socket, limits, `${what} through the proxy`);
    }
    return new Promise((resolve) => {
      const socket = net.connect({ host, port, noDelay: true });
      const timer = setTimeout(() => {
        socket.destroy();
        resolve({ reason: `cannot connect over TCP within ${limits.roughtimeTimeoutMs} ms` });
      }, limits.roughtimeTimeoutMs);
      socket.once('error', (err) => {
        clearTimeout(timer);
        resolve({ reason: `cannot connect over TCP: ${err.message}` });
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new RoughtimeTcpConnection(socket, limits, what));
      });
    });
  }

  get usable(): boolean {
    return this.failure === undefined;
  }

  /** Send `request` and read the next frame as its answer, checked by `verify`. Any failure closes the connection. */
  async exchange(request: Buffer, limits: Limits, verify: (response: Buffer) => VerifiedResponse): Promise<Answer> {
    if (this.failure !== undefined) return { reason: this.failure };
    this.socket.write(request);
    const deadline = Date.now() + limits.roughtimeTimeoutMs;
    while (this.frames.length === 0 && this.failure === undefined) {
      const left = deadline - Date.now();
      if (left <= 0) {
        this.fail(`no answer over TCP within ${limits.roughtimeTimeoutMs} ms`);
        break;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
    const response = this.frames.shift();
    if (response === undefined) return { reason: this.failure! };
    // One request is outstanding at a time: a second frame is not an answer to anything.
    if (this.frames.length > 0) {
      this.fail('the server sent more than one answer to one request');
      return { reason: this.failure! };
    }
    try {
      return { response, verified: verify(response) };
    } catch (err) {
      this.fail(`the answer was refused: ${(err as Error).message}`);
      return { reason: this.failure! };
    }
  }

  close(): void {
    this.failure ??= 'closed';
    this.socket.destroy();
  }

  private fail(reason: string): void {
    this.failure ??= reason;
    this.socket.destroy();
    this.wake?.();
  }
}
