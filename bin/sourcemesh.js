#!/usr/bin/env -S node --max-semi-space-size=1
// A 1 MiB young generation: socket buffers that a download has hashed and written die young and are
// freed by cheap scavenges instead of piling up until a full mark-compact (docs/BENCHMARKS.md,
// bench:fetch: peak RSS 182 -> 124 MB, CPU -25%). The flag only works when Node starts.
// The published entry point runs the compiled CLI; `npm ci` builds it through the `prepare` script. The
// Node.js version is checked first: the CLI is imported only afterwards, since on an older Node its
// imports (node:sqlite) fail before any of its code could say why.
// The compile cache starts before anything else is imported, since only modules loaded after it benefit.
import { startCompileCache } from './compile-cache.js';
import { checkNodeVersion } from './node-version.js';

startCompileCache();
checkNodeVersion();
// libuv's thread pool carries every file write and fsync; with its default 4 threads, a few fsyncs
// waiting on the disk held up the writes of the other downloads (node clone: about 1 s of 7 in
// docs/BENCHMARKS.md, bench:node). It is sized when first used, so before the CLI loads. A value set
// by the user is kept.
process.env.UV_THREADPOOL_SIZE ??= '16';
const { main } = await import('../dist/cli/main.js');
process.exitCode = await main(process.argv.slice(2));
