// Types for the two discovery packages that ship none, limited to what src/discovery uses. Each is
// imported by one module only: bittorrent-dht by dht.ts, multicast-dns by mdns.ts.

declare module 'bittorrent-dht' {
  import type { EventEmitter } from 'node:events';
  import type { Socket } from 'node:dgram';

  interface DhtPeer { host: string; port: number }
  interface DhtOptions {
    bootstrap?: DhtPeer[] | string[] | false;
    nodeId?: Buffer;
    socket?: Socket;
    host?: string | false;
    timeout?: number;
    maxValues?: number;
    maxPeers?: number;
    maxTables?: number;
    verify?: (signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array) => boolean;
  }
  interface MutableReply { v: Buffer; k: Buffer; sig: Buffer; seq: number; salt?: Buffer; id: Buffer }
  interface PutOptions {
    v: Buffer; k: Buffer; seq: number; salt?: Buffer; cas?: number;
    /** One of the two: sign here, or the publisher's signature of an item put again. */
    sign?: (message: Buffer) => Buffer;
    sig?: Buffer;
  }
  export default class DHT extends EventEmitter {
    constructor(options?: DhtOptions);
    nodeId: Buffer;
    listening: boolean;
    ready: boolean;
    destroyed: boolean;
    nodes: { toArray(): { host: string; port: number; id: Buffer }[]; count(): number };
    listen(port: number, host: string, cb?: () => void): void;
    address(): { address: string; port: number; family: string };
    addNode(node: DhtPeer): void;
    announce(infoHash: Buffer, port: number, cb: (err: Error | null) => void): void;
    lookup(infoHash: Buffer, cb: (err: Error | null, visited: number) => void): () => void;
    put(options: PutOptions, cb: (err: Error | null, target: Buffer, nodes: number) => void): Buffer;
    get(target: Buffer, options: { salt?: Buffer; cache?: boolean; verify?: DhtOptions['verify'] }, cb: (err: Error | null, value: MutableReply | null) => void): void;
    toJSON(): { nodes: DhtPeer[] };
    destroy(cb?: () => void): void;
  }
}

declare module 'multicast-dns' {
  import type { EventEmitter } from 'node:events';
  import type { Socket } from 'node:dgram';

  interface MdnsOptions {
    port?: number; ip?: string; ttl?: number; loopback?: boolean; reuseAddr?: boolean; type?: 'udp4' | 'udp6';
    interface?: string; bind?: string | false; multicast?: boolean; socket?: Socket;
  }
  interface Instance extends EventEmitter {
    query(q: { questions: { name: string; type: string; class?: string }[] }, cb?: (err: Error | null) => void): void;
    respond(r: { answers: unknown[]; additionals?: unknown[] }, rinfo?: { port: number; address: string }, cb?: (err: Error | null) => void): void;
    update(): void;
    destroy(cb?: () => void): void;
  }
  export default function mdns(options?: MdnsOptions): Instance;
}
