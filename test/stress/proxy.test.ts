// The lying seed's tamperer (proxy.ts): over a peer-wire stream (BEP 3: a 68-byte handshake, then
// length-prefixed messages) cut into chunks anywhere, it flips exactly the first block byte of every
// piece message and nothing else, and changes nothing when not tampering (fast-check).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { PieceTamperer } from './proxy.ts';

interface Msg {
  id: number;
  payload: Uint8Array;
}

function frame(msgs: Msg[]): { wire: Buffer; blockStarts: number[] } {
  const parts: Buffer[] = [Buffer.alloc(68, 0x13)];
  let at = 68;
  const blockStarts: number[] = [];
  for (const m of msgs) {
    const head = Buffer.alloc(5);
    if (m.id < 0) {
      parts.push(Buffer.alloc(4)); // keep-alive
      at += 4;
      continue;
    }
    head.writeUInt32BE(m.payload.length + 1, 0);
    head[4] = m.id;
    parts.push(head, Buffer.from(m.payload));
    if (m.id === 7 && m.payload.length > 8) blockStarts.push(at + 5 + 8);
    at += 5 + m.payload.length;
  }
  return { wire: Buffer.concat(parts), blockStarts };
}

const message = fc.oneof(
  fc.record({ id: fc.constant(7), payload: fc.uint8Array({ minLength: 8, maxLength: 300 }) }),
  fc.record({ id: fc.integer({ min: 0, max: 20 }), payload: fc.uint8Array({ maxLength: 40 }) }),
  fc.record({ id: fc.constant(-1), payload: fc.constant(new Uint8Array()) }),
);

test('the lying seed flips the first block byte of every piece message, wherever the stream is cut', () => {
  fc.assert(fc.property(fc.array(message, { maxLength: 30 }), fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 10 }), fc.boolean(), (msgs, cuts, tamper) => {
    const { wire, blockStarts } = frame(msgs);
    const sent = Buffer.from(wire);
    const t = new PieceTamperer();
    for (let off = 0, k = 0; off < sent.length; k++) {
      const n = cuts[k % cuts.length]!;
      t.onBytes(sent.subarray(off, off + n), tamper);
      off += n;
    }
    const changed = [...sent.keys()].filter((i) => sent[i] !== wire[i]);
    assert.deepEqual(changed, tamper ? blockStarts : []);
    assert.equal(t.flipped, tamper ? blockStarts.length : 0);
  }), { numRuns: 300 });
});
