// A BitTorrent peer written down to the bytes (BEP 3 framing), for tests that must see exactly what a
// seeder sends: every message kept as it arrived, the connection's end noticed.
import { once } from 'node:events';
import net from 'node:net';
import { waitFor } from '../helpers/run.ts';

export const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

/** One message: length prefix, id, then 32-bit numbers and byte strings as given. */
export const msg = (id: number, ...parts: (number | Buffer)[]): Buffer => {
  const body = Buffer.concat([Buffer.from([id]), ...parts.map((p) => (typeof p === 'number' ? u32(p) : p))]);
  return Buffer.concat([u32(body.length), body]);
};

export class RawPeer {
  readonly socket: net.Socket;
  private buf = Buffer.alloc(0);
  handshake?: Buffer;
  /** Messages after the handshake (keep-alives left out), each without its length prefix. */
  readonly messages: Buffer[] = [];
  closed = false;

  constructor(host: string, port: number, from = '127.0.0.1') {
    this.socket = net.connect({ host, port, localAddress: from });
    this.socket.on('data', (d: Buffer) => this.take(d));
    this.socket.on('close', () => (this.closed = true));
    this.socket.on('error', () => {});
  }

  private take(d: Buffer): void {
    this.buf = Buffer.concat([this.buf, d]);
    if (!this.handshake && this.buf.length >= 68) {
      this.handshake = this.buf.subarray(0, 68);
      this.buf = this.buf.subarray(68);
    }
    while (this.handshake && this.buf.length >= 4 && this.buf.length >= 4 + this.buf.readUInt32BE(0)) {
      const len = this.buf.readUInt32BE(0);
      if (len > 0) this.messages.push(this.buf.subarray(4, 4 + len));
      this.buf = this.buf.subarray(4 + len);
    }
  }

  async connected(): Promise<void> {
    if (this.socket.connecting) await once(this.socket, 'connect');
  }

  send(b: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(b);
  }

  greet(infoHash: string): void {
    this.send(Buffer.concat([Buffer.from([19]), Buffer.from('BitTorrent protocol'), Buffer.alloc(8), Buffer.from(infoHash, 'hex'), Buffer.from('-XX0001-rawtestpeer!')]));
  }

  /** Greet, say interested, wait for the bitfield and the unchoke. */
  async open(infoHash: string): Promise<void> {
    await this.connected();
    this.greet(infoHash);
    await this.waitMessage((m) => m[0] === 5, 'the bitfield');
    this.send(msg(2));
    await this.waitMessage((m) => m[0] === 1, 'the unchoke');
  }

  async waitMessage(match: (m: Buffer) => boolean, what: string): Promise<Buffer> {
    let found: Buffer | undefined;
    await waitFor(what, () => {
      found = this.messages.find(match);
      if (!found && this.closed) throw new Error(`closed while waiting for ${what}`);
      return found !== undefined;
    }, { timeoutMs: 20_000 });
    return found!;
  }

  /** The first message with this id (BEP 3), waited for. */
  message(id: number, what: string): Promise<Buffer> {
    return this.waitMessage((m) => m[0] === id, what);
  }

  /** The `piece` messages received (BEP 3 id 7): index, offset and bytes. */
  pieces(): { index: number; offset: number; data: Buffer }[] {
    return this.messages.filter((m) => m[0] === 7).map((m) => ({ index: m.readUInt32BE(1), offset: m.readUInt32BE(5), data: m.subarray(9) }));
  }

  /** Ask for a block and wait for it (or throw when the connection ends first). */
  async block(index: number, offset: number, length: number): Promise<Buffer> {
    this.send(msg(6, index, offset, length));
    const m = await this.waitMessage((x) => x[0] === 7 && x.readUInt32BE(1) === index && x.readUInt32BE(5) === offset, `piece ${index} offset ${offset}`);
    return m.subarray(9);
  }

  async closedByPeer(what: string): Promise<void> {
    await waitFor(what, () => this.closed, { timeoutMs: 20_000 });
  }
}
