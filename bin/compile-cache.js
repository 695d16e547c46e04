// Node's module compile cache (Node >= 22.1, module.enableCompileCache): V8 code for our modules is kept on
// disk, so a short command such as `archive` does not compile its ~40 modules again on every run
// (docs/BENCHMARKS.md, bench:archive start-up). It is only a cache: V8 checks each entry against the
// module's source and its own version and flags, and compiles afresh on any mismatch or unreadable file.
// Anything wrong with the directory (not writable, not a directory, no home) leaves the cache off, silently.
// NODE_COMPILE_CACHE=DIR chooses another directory and NODE_DISABLE_COMPILE_CACHE=1 turns it off (Node's own).
import * as module from 'node:module';
import { homedir } from 'node:os';
import path from 'node:path';

/**
 * $XDG_CACHE_HOME/sourcemesh/compile-cache when that is an absolute path (XDG Base Directory), else
 * ~/.cache/sourcemesh/compile-cache: a folder of its own, beside (never inside the layout of) the default store.
 */
export function compileCacheDir(env, home) {
  const xdg = env.XDG_CACHE_HOME;
  if (xdg && path.isAbsolute(xdg)) return path.join(xdg, 'sourcemesh', 'compile-cache');
  return home && path.isAbsolute(home) ? path.join(home, '.cache', 'sourcemesh', 'compile-cache') : undefined;
}

export function startCompileCache() {
  try {
    if (typeof module.enableCompileCache !== 'function') return; // an older Node: checkNodeVersion says so next
    let home;
    try { home = homedir(); } catch { home = undefined; }
    const dir = compileCacheDir(process.env, home);
    if (dir !== undefined) module.enableCompileCache(dir); // returns FAILED rather than throwing; either way we go on
  } catch {
    // A cache that cannot start costs only speed.
  }
}
