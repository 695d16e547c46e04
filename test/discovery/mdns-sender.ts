// A hostile mDNS announcer for the discovery tests, run inside a network namespace: it multicasts
// hand-made DNS-SD responses from SOURCE:5353, in bursts, every 300 ms until killed. Packets are encoded
// here byte by byte (RFC 1035 §4.1, no name compression) so that names and TXT strings may be any bytes,
// valid UTF-8 or not.
//
//   node test/discovery/mdns-sender.ts '{"source":"10.0.0.3","burst":[...records...]}'
//   node test/discovery/mdns-sender.ts '{"source":"10.0.0.3","flood":{"count":10000,"vkey":"..."}}'
//
// A record: {"name": TEXT or {"hex": HEX}, "type": "PTR"|"SRV"|"TXT"|"A", "data": ...}: PTR data a name,
// SRV {"port", "target"}, TXT a list of TEXT or {"hex"}, A an IPv4 address.
import dgram from 'node:dgram';

type Bytes = string | { hex: string };
interface Rec {
  name: Bytes;
  type: 'PTR' | 'SRV' | 'TXT' | 'A';
  data: Bytes | { port: number; target: Bytes } | Bytes[] | string;
}

const bytes = (b: Bytes): Buffer => (typeof b === 'string' ? Buffer.from(b, 'utf8') : Buffer.from(b.hex, 'hex'));

/** A name as labels: split on dots of the text; a hex name is one label before `._sourcemesh._tcp.local`. */
function encodeName(n: Bytes): Buffer {
  const labels = typeof n === 'string' ? n.split('.').filter((l) => l !== '').map((l) => Buffer.from(l, 'utf8')) : [bytes(n), ...['_sourcemesh', '_tcp', 'local'].map((l) => Buffer.from(l))];
  return Buffer.concat([...labels.flatMap((l) => [Buffer.of(l.length), l]), Buffer.of(0)]);
}

const TYPES = { A: 1, PTR: 12, TXT: 16, SRV: 33 } as const;

function encodeRecord(r: Rec): Buffer {
  let rdata: Buffer;
  if (r.type === 'PTR') rdata = encodeName(r.data as Bytes);
  else if (r.type === 'SRV') {
    const d = r.data as { port: number; target: Bytes };
    const head = Buffer.alloc(6);
    head.writeUInt16BE(d.port, 4);
    rdata = Buffer.concat([head, encodeName(d.target)]);
  } else if (r.type === 'TXT') rdata = Buffer.concat((r.data as Bytes[]).map(bytes).flatMap((s) => [Buffer.of(s.length), s]));
  else rdata = Buffer.from((r.data as string).split('.').map(Number));
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(TYPES[r.type], 0);
  fixed.writeUInt16BE(r.type === 'PTR' ? 1 : 0x8001, 2); // class IN, cache-flush on unique records
  fixed.writeUInt32BE(120, 4);
  fixed.writeUInt16BE(rdata.length, 8);
  return Buffer.concat([encodeName(r.name), fixed, rdata]);
}

function encodeResponse(records: Rec[]): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(0x8400, 2); // response, authoritative
  header.writeUInt16BE(records.length, 6);
  return Buffer.concat([header, ...records.map(encodeRecord)]);
}

function floodPackets(count: number, vkey: string, source: string): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const inst = `flood-${i}._sourcemesh._tcp.local`;
    out.push(encodeResponse([
      { name: '_sourcemesh._tcp.local', type: 'PTR', data: inst },
      { name: inst, type: 'SRV', data: { port: 10_000 + (i % 50_000), target: `flood-${i}.local` } },
      { name: inst, type: 'TXT', data: ['txtvers=1', `key=${vkey}`, 'roles=mirror'] },
      { name: `flood-${i}.local`, type: 'A', data: source },
    ]));
  }
  return out;
}

const args = JSON.parse(process.argv[2]!) as { source: string; burst?: Rec[]; flood?: { count: number; vkey: string } };
const packets = args.flood ? floodPackets(args.flood.count, args.flood.vkey, args.source) : [encodeResponse(args.burst!)];
const socket = dgram.createSocket({ type: 'udp4', reuseAddr: true });
socket.bind(5353, args.source, () => {
  socket.setMulticastInterface(args.source);
  socket.setMulticastTTL(255);
  let sent = 0;
  const burst = async () => {
    for (const p of packets) {
      await new Promise<void>((resolve) => socket.send(p, 5353, '224.0.0.251', () => resolve()));
      sent++;
    }
    process.stderr.write(`sent ${sent}\n`);
    setTimeout(burst, 300);
  };
  void burst();
});
