// Applying a git delta (gitformat-pack, "Deltified representation").
//
// A delta is: the base size and the result size, each a little-endian base-128 varint, then instructions.
// An instruction byte with its high bit set copies from the base: bits 0-3 say which of four little-endian
// offset bytes follow, bits 4-6 which of three size bytes follow, and a size of zero means 0x10000. A byte
// 1..127 inserts that many literal bytes that follow it. Byte 0 is reserved. Every field is attacker-
// controlled: sizes are checked against the limit before allocating, and every copy against both buffers.

import { corrupt, type What } from './object-id.ts';

/** Read a delta header varint at `pos`; returns [value, next position]. */
function readSize(delta: Buffer, pos: number, what: What): [number, number] {
  let value = 0;
  let shift = 0;
  for (;;) {
    if (pos >= delta.length) throw corrupt(what, 'delta header is truncated');
    const b = delta[pos++]!;
    // 2^53 is far beyond any size we would accept; stop before the float loses integers.
    if (shift > 49) throw corrupt(what, 'delta header size is absurdly large');
    value += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if (!(b & 0x80)) return [value, pos];
  }
}

/** The result size a delta declares, read without applying it (to check limits before allocating). */
export function deltaResultSize(delta: Buffer, what: What): number {
  const [, p] = readSize(delta, 0, what);
  return readSize(delta, p, what)[0];
}

/** Apply `delta` to `base`; the result is exactly the declared size or an E_ARCHIVE error. */
export function applyDelta(base: Buffer, delta: Buffer, maxBytes: number, what: What): Buffer {
  const [baseSize, p1] = readSize(delta, 0, what);
  const [resultSize] = readSize(delta, p1, what);
  // The same checks, in the same order, as applyDeltaInto, before allocating.
  if (baseSize !== base.length) throw corrupt(what, `delta expects a base of ${baseSize} bytes, the base has ${base.length}`);
  if (resultSize > maxBytes) throw corrupt(what, `delta result of ${resultSize} bytes exceeds the limit of ${maxBytes}`);
  const out = Buffer.allocUnsafe(resultSize);
  applyDeltaInto(base, delta, out, 0, maxBytes, what);
  return out;
}

/**
 * Apply `delta` to `base`, writing the result to out[at, at + result size) (the caller sized it with
 * deltaResultSize): the last step of a chain goes straight into the tar's output buffer, with no buffer of
 * its own and no copy. Returns the result size.
 */
export function applyDeltaInto(base: Buffer, delta: Buffer, out: Buffer, at: number, maxBytes: number, what: What): number {
  const [baseSize, p1] = readSize(delta, 0, what);
  const [resultSize, p2] = readSize(delta, p1, what);
  if (baseSize !== base.length) {
    throw corrupt(what, `delta expects a base of ${baseSize} bytes, the base has ${base.length}`);
  }
  if (resultSize > maxBytes) throw corrupt(what, `delta result of ${resultSize} bytes exceeds the limit of ${maxBytes}`);
  // Checked here too, so that no instruction can write outside the caller's range whatever it sized.
  if (at + resultSize > out.length) throw corrupt(what, `delta result of ${resultSize} bytes does not fit the ${out.length - at} bytes given`);
  let pos = p2;
  let o = at;
  const stop = at + resultSize;
  const end = delta.length;
  while (pos < end) {
    const op = delta[pos++]!;
    if (op & 0x80) {
      let offset = 0;
      let size = 0;
      // Offset bytes (bits 0-3), then size bytes (bits 4-6), each present only when its bit is set.
      for (let bit = 0; bit < 4; bit++) {
        if (op & (1 << bit)) {
          if (pos >= end) throw corrupt(what, 'delta copy instruction is truncated');
          offset += delta[pos++]! * 2 ** (8 * bit);
        }
      }
      for (let bit = 0; bit < 3; bit++) {
        if (op & (0x10 << bit)) {
          if (pos >= end) throw corrupt(what, 'delta copy instruction is truncated');
          size |= delta[pos++]! << (8 * bit);
        }
      }
      if (size === 0) size = 0x10000;
      if (offset + size > base.length) {
        throw corrupt(what, `delta copies bytes ${offset}..${offset + size} out of a ${base.length}-byte base`);
      }
      if (o + size > stop) throw corrupt(what, `delta writes past its declared size of ${resultSize} bytes`);
      copyBytes(base, offset, size, out, o);
      o += size;
    } else if (op !== 0) {
      if (pos + op > end) throw corrupt(what, 'delta insert instruction runs past the end of the delta');
      if (o + op > stop) throw corrupt(what, `delta writes past its declared size of ${resultSize} bytes`);
      copyBytes(delta, pos, op, out, o);
      pos += op;
      o += op;
    } else {
      throw corrupt(what, 'delta uses the reserved instruction 0');
    }
  }
  if (o !== stop) throw corrupt(what, `delta produced ${o - at} bytes, it declares ${resultSize}`);
  return resultSize;
}

/** Copies of at most this many bytes are done byte by byte. */
const SMALL_COPY_BYTES = 32;

/**
 * src[from, from + n) to dst at `to` (ranges already checked). Most instructions of a source file's delta
 * copy or insert a few dozen bytes, where Buffer#copy's argument checks and the view it makes cost more
 * than the bytes (issue 14: 12% of the CPU of gnulib 8e128e's archive was Buffer#copy from here).
 */
function copyBytes(src: Buffer, from: number, n: number, dst: Buffer, to: number): void {
  if (n <= SMALL_COPY_BYTES) {
    for (let i = 0; i < n; i++) dst[to + i] = src[from + i]!;
  } else {
    dst.set(src.subarray(from, from + n), to);
  }
}
