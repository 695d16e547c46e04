// The one importer of `bittorrent-protocol` (the BitTorrent v1 peer wire, BEP 3, with the BEP 10
// extension protocol): the rest of the code takes the Wire from here.
import BittorrentProtocol from 'bittorrent-protocol';

/** The parts of the library's Wire we use (it ships no types). */
export interface Wire extends NodeJS.ReadWriteStream {
  peerRequests: unknown[];
  /** Bytes of blocks sent (the library counts each `piece` it writes). */
  uploaded: number;
  extendedHandshake: Record<string, unknown>;
  handshake(infoHash: Uint8Array, peerId: Uint8Array, extensions?: { dht?: boolean; fast?: boolean }): void;
  bitfield(bits: Uint8Array): void;
  have(index: number): void;
  unchoke(): void;
  interested(): void;
  setTimeout(ms: number, unref?: boolean): void;
  choke(): void;
  destroy(): void;
  on(event: 'handshake', fn: (infoHashHex: string, peerIdHex: string, ext: Record<string, boolean>) => void): this;
  on(event: 'request', fn: (index: number, offset: number, length: number, respond: (err: Error | null, data?: Uint8Array) => void) => void): this;
  on(event: 'unknownmessage', fn: (message: Uint8Array) => void): this;
  on(event: 'interested' | 'uninterested' | 'unchoke' | 'timeout' | 'close' | 'finish' | 'end', fn: () => void): this;
  on(event: 'error', fn: (err: Error) => void): this;
  on(event: string, fn: (...args: never[]) => void): this;
}

/** A new wire for a TCP connection a peer opened (`tcpIncoming`) or we opened (`tcpOutgoing`). */
export function createWire(type: 'tcpIncoming' | 'tcpOutgoing' = 'tcpIncoming'): Wire {
  const wire = new (BittorrentProtocol as unknown as new (type: string) => Wire)(type);
  // The library builds a log line (an array and a template string) for every message sent and received,
  // before its logger decides not to print it: 4-5% of an uploading leecher's JavaScript allocation
  // (docs/BENCHMARKS.md, bench:swarm). Skipped unless DEBUG asks for the library's lines.
  if (!LIBRARY_DEBUG) (wire as unknown as { _debug: () => void })._debug = () => {};
  return wire;
}

/** DEBUG (the `debug` package's variable, read when the library loads) names the library or everything. */
const LIBRARY_DEBUG = /(^|[\s,])(\*|bittorrent-protocol\*?)($|[\s,])/.test(process.env.DEBUG ?? '');

/**
 * Send a message the library has no method for (BEP 52 ids 21-23): length, id and payload. The library's
 * own framing routine is used, so its state (encryption, a finished wire) stays in charge.
 */
export function sendMessage(wire: Wire, id: number, payload: Uint8Array): void {
  (wire as unknown as { _message(id: number, numbers: number[], data: Uint8Array): void })._message(id, [], payload);
}

/**
 * A `piece` message (BEP 3, id 7) read outside the library's parser (src/torrent/peer-wire.ts
 * PeerReader): handed to the library's own handler, which answers the matching request (same index,
 * begin and length; a block nobody asked for is dropped) and keeps its request queue and timeout. `block`
 * is good only during the call: the request's callback copies it.
 */
export function deliverPiece(wire: Wire, index: number, begin: number, block: Uint8Array): void {
  (wire as unknown as { _onPiece(index: number, begin: number, block: Uint8Array): void })._onPiece(index, begin, block);
}
