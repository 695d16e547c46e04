// A TCP proxy of the stress harness, run inside a node's namespace in front of its server: the public
// address is the proxy's, the server listens on loopback behind it. The harness changes its behaviour
// mid-run over the IPC channel: added latency, a bandwidth limit, connections reset, refusal (503 to
// every request: a witness that refuses), and tampering: a mirror that starts lying. A lying proxy flips
// the byte at every file offset that is 777 modulo 64 KiB in the bodies of file responses (distfiles and
// /sha256/HEX; not piece layers or the inventory), the same lie on every range, and reports each lie it
// sent (client address, path, bytes flipped) to the harness.
//
// With `bittorrent`, it stands in front of a seed instead: a lying seed flips the first byte of the block
// of every piece message it sends (BEP 3 peer wire: the 68-byte handshake, then length-prefixed
// messages), and reports per connection how many it flipped. Those lies are never known to be read (a
// client may cancel a piece before it has all its blocks): the checker counts them and requires only
// that nothing else is blamed and no wrong byte is exported.
//
//   node test/stress/proxy.ts LISTEN_IP:PORT TARGET_IP:PORT [bittorrent]     (with an IPC channel)
import net from 'node:net';

export interface ProxyMode {
  latencyMs?: number;
  bytesPerSec?: number;
  resetPercent?: number;
  refuse?: boolean;
  tamper?: boolean;
}

/**
 * `read`: the client sent its next request on the same connection after the lying response, so it had
 * read that response to its end (HTTP/1.1 without pipelining, as our client runs). A lie not known to be
 * read (the connection closed after it, or mid-body) may have been dropped unread: a cancelled duplicate.
 */
export type ProxyMessage = { type: 'lie'; client: string; path: string; flipped: number; read: boolean } | { type: 'listening' };

const LIE_EVERY = 65536;
const LIE_AT = 777;

/** Flip the lie bytes of `chunk`, whose first byte is at file offset `offset`; returns how many were flipped. */
export function tamperChunk(chunk: Buffer, offset: number): number {
  let n = 0;
  let first = offset % LIE_EVERY <= LIE_AT ? offset - (offset % LIE_EVERY) + LIE_AT : offset - (offset % LIE_EVERY) + LIE_EVERY + LIE_AT;
  for (; first < offset + chunk.length; first += LIE_EVERY) {
    chunk[first - offset]! ^= 0x01;
    n++;
  }
  return n;
}

const HANDSHAKE = 68; // pstrlen, "BitTorrent protocol", reserved, info-hash, peer id (BEP 3)
const PIECE = 7;

/** Follows a seed's side of a peer-wire connection and flips the first block byte of each piece message. */
export class PieceTamperer {
  #skip = HANDSHAKE;
  #prefix: number[] = []; // the length prefix and id being read
  #left = 0; // payload bytes of the current message still to come
  #untilBlock = -1; // piece message: header bytes (index, begin) before its block; -1 not a piece
  flipped = 0;

  /** Tamper `chunk` in place when `tamper` (the stream is followed either way). */
  onBytes(chunk: Buffer, tamper: boolean): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, chunk.length - i);
        this.#skip -= n;
        i += n;
      } else if (this.#left === 0) {
        this.#prefix.push(chunk[i++]!);
        if (this.#prefix.length === 4) {
          const length = Buffer.from(this.#prefix).readUInt32BE(0);
          if (length === 0) this.#prefix = []; // keep-alive
        } else if (this.#prefix.length === 5) {
          const length = Buffer.from(this.#prefix).readUInt32BE(0);
          this.#untilBlock = this.#prefix[4] === PIECE ? 8 : -1;
          this.#left = length - 1;
          this.#prefix = [];
        }
      } else if (this.#untilBlock > 0) {
        const n = Math.min(this.#untilBlock, this.#left, chunk.length - i);
        this.#untilBlock -= n;
        this.#left -= n;
        i += n;
      } else {
        if (this.#untilBlock === 0) {
          if (tamper) {
            chunk[i]! ^= 0x01;
            this.flipped++;
          }
          this.#untilBlock = -1;
        }
        const n = Math.min(this.#left, chunk.length - i);
        this.#left -= n;
        i += n;
      }
    }
  }
}

function isFilePath(p: string): boolean {
  return !p.startsWith('/.well-known/') && !p.endsWith('.pieces') && p !== '/';
}

/** Follows the responses of one connection to know where bodies are and which file offset each byte has. */
class ResponseTracker {
  private head = Buffer.alloc(0);
  private remaining = 0; // body bytes left in the current response
  private offset = 0; // file offset of the next body byte
  private flips = 0;
  private path = '';
  private lying = false;
  passThrough = false;
  readonly requests: { method: string; path: string }[] = [];
  private carry = '';

  private readonly report: (path: string, flipped: number, read: boolean) => void;
  /** Lying responses sent whole, not yet known to be read. */
  private pending: { path: string; flipped: number }[] = [];

  constructor(report: (path: string, flipped: number, read: boolean) => void) {
    this.report = report;
  }

  onRequestBytes(b: Buffer): void {
    const text = this.carry + b.toString('latin1');
    for (const m of text.matchAll(/(?:^|\r\n)(GET|HEAD) (\S+) HTTP\/1\.[01]\r\n/g)) {
      this.requests.push({ method: m[1]!, path: m[2]! });
      for (const p of this.pending.splice(0)) this.report(p.path, p.flipped, true);
    }
    this.carry = text.slice(-200);
    // Requests seen in the carry again would be counted twice: keep only the part after the last line end.
    const cut = this.carry.lastIndexOf('\r\n');
    this.carry = cut >= 0 ? this.carry.slice(cut + 2) : this.carry;
  }

  /** Tamper the response bytes in place when `tamper`. */
  onResponseBytes(b: Buffer, tamper: boolean): void {
    let i = 0;
    while (i < b.length && !this.passThrough) {
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, b.length - i);
        if (this.lying && tamper) this.flips += tamperChunk(b.subarray(i, i + n), this.offset);
        this.offset += n;
        this.remaining -= n;
        i += n;
        if (this.remaining === 0) this.endResponse();
        continue;
      }
      const prev = this.head.length;
      this.head = Buffer.concat([this.head, b.subarray(i)]);
      const end = this.head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (this.head.length > 64 * 1024) this.passThrough = true;
        return;
      }
      const headers = this.head.subarray(0, end).toString('latin1');
      i += end + 4 - prev;
      this.head = Buffer.alloc(0);
      const req = this.requests.shift() ?? { method: 'GET', path: '' };
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(headers)?.[1] ?? 0);
      const length = /\r\ncontent-length: *(\d+)/i.exec(headers);
      if (/\r\ntransfer-encoding:/i.test(headers) || (!length && req.method !== 'HEAD' && status !== 304 && status !== 204)) {
        this.passThrough = true; // chunked or to-the-close body: not followed further, never tampered
        return;
      }
      this.remaining = req.method === 'HEAD' ? 0 : Number(length?.[1] ?? 0);
      const range = /\r\ncontent-range: *bytes (\d+)-/i.exec(headers);
      this.offset = range ? Number(range[1]) : 0;
      this.path = req.path;
      this.lying = (status === 200 || status === 206) && isFilePath(req.path);
      this.flips = 0;
      if (this.remaining === 0) this.endResponse();
    }
  }

  /** The connection closed: a lie already sent in a cut response is still reported. */
  close(): void {
    for (const p of this.pending.splice(0)) this.report(p.path, p.flipped, false);
    if (this.flips > 0) this.report(this.path, this.flips, false);
    this.flips = 0;
  }

  private endResponse(): void {
    if (this.flips > 0) this.pending.push({ path: this.path, flipped: this.flips });
    this.flips = 0;
    this.lying = false;
  }
}

function main(): void {
  const [listen, target, kind] = process.argv.slice(2);
  const bittorrent = kind === 'bittorrent';
  if (!listen || !target || !process.send) throw new Error('usage: node test/stress/proxy.ts LISTEN_IP:PORT TARGET_IP:PORT (with an IPC channel)');
  const [lhost, lport] = [listen.slice(0, listen.lastIndexOf(':')), Number(listen.slice(listen.lastIndexOf(':') + 1))];
  const [thost, tport] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
  let mode: ProxyMode = {};
  let seq = 0;
  process.on('message', (m: ProxyMode) => {
    mode = m;
  });
  process.on('disconnect', () => process.exit(0));
  const send = (m: ProxyMessage) => process.send?.(m);

  const server = net.createServer((client) => {
    const at = mode;
    const who = client.remoteAddress?.replace(/^::ffff:/, '') ?? '?';
    if (at.refuse && !bittorrent) {
      client.end('HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      client.on('error', () => {});
      return;
    }
    const upstream = net.connect(tport, thost);
    const tracker = new ResponseTracker((p, flipped, read) => send({ type: 'lie', client: who, path: p, flipped, read }));
    const pieces = new PieceTamperer();
    // A reset connection dies after a pseudo-random number of response bytes (a counter: no clock or randomness needed).
    const resetAfter = at.resetPercent && (seq++ * 37) % 100 < at.resetPercent ? ((seq * 7919) % 65536) + 1 : Infinity;
    let sent = 0;
    const kill = () => {
      client.resetAndDestroy();
      upstream.destroy();
    };
    const paced = (from: net.Socket, to: net.Socket, transform: (b: Buffer) => void) => {
      from.on('data', (b: Buffer) => {
        transform(b);
        const m = mode;
        const delay = (m.latencyMs ?? 0) + (m.bytesPerSec ? (b.length * 1000) / m.bytesPerSec : 0);
        if (delay <= 0) {
          if (!to.write(b)) from.pause();
          return;
        }
        from.pause();
        setTimeout(() => {
          if (to.destroyed) return;
          to.write(b);
          from.resume();
        }, delay);
      });
      to.on('drain', () => from.resume());
      from.on('end', () => to.end());
    };
    paced(client, upstream, (b) => {
      if (!bittorrent) tracker.onRequestBytes(b);
    });
    paced(upstream, client, (b) => {
      if (bittorrent) pieces.onBytes(b, mode.tamper === true);
      else tracker.onResponseBytes(b, mode.tamper === true);
      sent += b.length;
      if (sent > resetAfter) setImmediate(kill);
    });
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => {
      if (bittorrent && pieces.flipped > 0) send({ type: 'lie', client: who, path: 'pieces', flipped: pieces.flipped, read: false });
      else tracker.close();
      upstream.destroy();
    });
    upstream.on('close', () => client.destroy());
  });
  server.listen(lport, lhost, () => send({ type: 'listening' }));
}

if (process.argv[1] && import.meta.filename === process.argv[1]) main();
