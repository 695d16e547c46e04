// Pure-TypeScript gzip compression, byte-identical to GNU gzip 1.12 (`gzip -n -LEVEL`) or to canonical
// zlib 1.2.13 (what `git archive --format=tar.gz` writes), from one deflate engine.

export { createDeflateStream, deflateSync, DeflateStream, type DeflateOptions } from './stream.ts';
export { DEFAULT_LEVEL, DEFLATE_FLAVOURS, type DeflateFlavour } from './levels.ts';
