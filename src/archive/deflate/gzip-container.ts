// The gzip member around the deflate stream (RFC 1952), as written by `gzip -n` and by zlib's gzip
// wrapper: no name, no timestamp, Unix as the operating system.

const ID1 = 0x1f;
const ID2 = 0x8b;
const CM_DEFLATE = 8;
const OS_UNIX = 3;

/**
 * RFC 1952 2.3.1: FLG 0, MTIME 0 (`-n`, and zlib without a header struct), XFL 4 ("fastest") at level 1,
 * 2 ("maximum compression") at level 9, else 0, as both GNU gzip and zlib set it.
 */
export function gzipHeader(level: number): Uint8Array {
  const xfl = level === 1 ? 4 : level === 9 ? 2 : 0;
  return Uint8Array.of(ID1, ID2, CM_DEFLATE, 0, 0, 0, 0, 0, xfl, OS_UNIX);
}

/** RFC 1952 2.3.1: CRC-32 of the uncompressed data, then its size modulo 2^32, both little-endian. */
export function gzipTrailer(crc: number, size: number): Uint8Array {
  const out = new Uint8Array(8);
  const view = new DataView(out.buffer);
  view.setUint32(0, crc >>> 0, true);
  view.setUint32(4, size % 0x1_0000_0000, true);
  return out;
}
