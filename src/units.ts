// Human-readable quantities shared by every output (the CLI's lines, the panel's pages): one way to write
// a size, whatever prints it.

/** Bytes in powers of 1024: `512 B`, `1.50 KiB`, `12.3 GiB`. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}
