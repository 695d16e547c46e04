// Roughtime packets on a TCP stream (RFC 10049 "Protocol Details"): over TCP the packets follow each other
// back to back, each one delimited by its own header ("ROUGHTIM", then the uint32 length of the message
// after it). Pure: the bytes are fed in whatever chunks the socket gives. Every byte is attacker-controlled,
// so the magic is checked as soon as its bytes arrive and the length before anything is kept for it: a
// peer that sends garbage or announces a frame larger than limits.roughtimePacketBytes is told so at once
// (E_FORMAT), and the caller closes the connection ("Either side SHOULD close the connection in response
// to synchronization, format ... errors").
import { SourcemeshError } from '../errors.ts';
import type { Limits } from '../limits.ts';
import { MAGIC, PACKET_HEADER_BYTES } from './wire.ts';

export class FrameReader {
  private readonly header = Buffer.alloc(PACKET_HEADER_BYTES);
  private headerFill = 0;
  /** The packet being read once its header is known and within the bound. */
  private packet: Buffer | undefined;
  private packetFill = 0;
  private readonly maxPacket: number;
  private readonly what: string;

  constructor(what: string, limits: Pick<Limits, 'roughtimePacketBytes'>) {
    this.what = what;
    this.maxPacket = limits.roughtimePacketBytes;
  }

  /** Bytes held for a frame not complete yet (at most one packet). */
  get pending(): number {
    return this.packet === undefined ? this.headerFill : this.packetFill;
  }

  /**
   * Take `chunk` and return the complete packets it finishes (each with its header, as parseRequest and
   * verifyResponse read them). E_FORMAT on a wrong magic or a frame over the bound; the stream has then
   * lost its framing and the reader must not be fed again.
   */
  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let at = 0;
    while (at < chunk.length) {
      if (this.packet === undefined) {
        const take = Math.min(PACKET_HEADER_BYTES - this.headerFill, chunk.length - at);
        chunk.copy(this.header, this.headerFill, at, at + take);
        this.headerFill += take;
        at += take;
        this.checkHeader();
        if (this.headerFill < PACKET_HEADER_BYTES) continue;
        // Allocated only now, after the announced length was checked against the bound.
        this.packet = Buffer.allocUnsafe(PACKET_HEADER_BYTES + this.header.readUInt32LE(8));
        this.header.copy(this.packet, 0);
        this.packetFill = PACKET_HEADER_BYTES;
      } else {
        const take = Math.min(this.packet.length - this.packetFill, chunk.length - at);
        chunk.copy(this.packet, this.packetFill, at, at + take);
        this.packetFill += take;
        at += take;
      }
      if (this.packet.length === this.packetFill) {
        out.push(this.packet);
        this.packet = undefined;
        this.packetFill = 0;
        this.headerFill = 0;
      }
    }
    return out;
  }

  private checkHeader(): void {
    const magic = Math.min(this.headerFill, MAGIC.length);
    if (this.header.compare(MAGIC, 0, magic, 0, magic) !== 0) {
      throw new SourcemeshError('E_FORMAT', `${this.what}: the stream does not carry ROUGHTIM packets (a frame starts with ${JSON.stringify(this.header.subarray(0, magic).toString('latin1'))})`);
    }
    if (this.headerFill === PACKET_HEADER_BYTES) {
      const length = this.header.readUInt32LE(8);
      if (length > this.maxPacket - PACKET_HEADER_BYTES) {
        throw new SourcemeshError('E_FORMAT', `${this.what}: a frame announces a ${length}-byte message; a packet is at most ${this.maxPacket} bytes`);
      }
    }
  }
}
