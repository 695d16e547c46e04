// write(2) and writev(2) may write fewer bytes than asked (a disk filling up, a signal), and Node's
// FileHandle.write/writev report that count without retrying. A writer that ignored it would leave a hole
// in a file whose bytes it had already hashed: so every positioned write of ours goes through here.
import type { FileHandle } from 'node:fs/promises';

/** Write all of `buffers` at `position` (null: at the current offset), retrying after short writes. */
export async function writeFully(fh: FileHandle, buffers: readonly Uint8Array[], position: number | null): Promise<void> {
  let rest = buffers.filter((b) => b.length > 0);
  let at = position;
  while (rest.length > 0) {
    const { bytesWritten } = rest.length === 1 ? await fh.write(rest[0]!, 0, rest[0]!.length, at) : await fh.writev(rest as Uint8Array[], at ?? undefined);
    if (at !== null) at += bytesWritten;
    let skip = bytesWritten;
    while (rest.length > 0 && skip >= rest[0]!.length) skip -= rest.shift()!.length;
    if (skip > 0) rest = [rest[0]!.subarray(skip), ...rest.slice(1)];
  }
}
