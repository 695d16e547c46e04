// Where a mirror root keeps what it never serves (clones, quarantine, the node key): in a module of its
// own so that `serve` finds its key without loading `mirror sync` and the fetch stack behind it.
import path from 'node:path';

/** Private state under the root: never served. */
export function stateDirOf(root: string): string {
  return path.join(root, '.sourcemesh');
}
