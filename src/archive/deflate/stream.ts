// Streaming and one-shot gzip compression over the deflate engine.

import { Transform, type TransformCallback } from 'node:stream';
import { crc32 } from 'node:zlib';
import { SourcemeshError } from '../../errors.ts';
import { gzipHeader, gzipTrailer } from './gzip-container.ts';
import { DEFAULT_LEVEL, deflateParameters, type DeflateFlavour, type DeflateParameters } from './levels.ts';
import { DeflateEngine } from './lz77.ts';

export interface DeflateOptions {
  /** `gzip-n`: GNU gzip 1.12 `gzip -n`; `zlib`: canonical zlib 1.2.13 at memLevel 8 (git archive). */
  flavour: DeflateFlavour;
  /** 1 to 9; default 6. */
  level?: number;
}

function parameters(opts: DeflateOptions): DeflateParameters {
  if (opts === null || typeof opts !== 'object') {
    throw new SourcemeshError('E_USAGE', 'deflate: options must be an object with a flavour');
  }
  return deflateParameters(opts.flavour, opts.level ?? DEFAULT_LEVEL);
}

/** Gzip compression as a stream: byte-identical to the chosen compressor whatever the chunking. */
export class DeflateStream extends Transform {
  private readonly params: DeflateParameters;
  private readonly engine: DeflateEngine;
  private crc = 0;
  private size = 0;
  private headerSent = false;

  constructor(opts: DeflateOptions) {
    super();
    this.params = parameters(opts);
    this.engine = new DeflateEngine(this.params, (bytes) => {
      this.push(bytes);
    });
  }

  private sendHeader(): void {
    if (this.headerSent) return;
    this.headerSent = true;
    this.push(gzipHeader(this.params.level));
  }

  // Not in object mode: Node hands every chunk over as a Buffer (strings are encoded first).
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.sendHeader();
      this.crc = crc32(chunk, this.crc);
      this.size += chunk.length;
      this.engine.write(chunk);
      callback();
    } catch (err) {
      callback(err as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.sendHeader();
      this.engine.end();
      this.push(gzipTrailer(this.crc, this.size));
      callback();
    } catch (err) {
      callback(err as Error);
    }
  }
}

export function createDeflateStream(opts: DeflateOptions): DeflateStream {
  return new DeflateStream(opts);
}

/** Compress a whole buffer to a gzip member (tests and small inputs). */
export function deflateSync(input: Uint8Array, opts: DeflateOptions): Buffer {
  const params = parameters(opts);
  const parts: Uint8Array[] = [gzipHeader(params.level)];
  const engine = new DeflateEngine(params, (bytes) => parts.push(bytes));
  engine.write(input);
  engine.end();
  parts.push(gzipTrailer(crc32(input), input.length));
  return Buffer.concat(parts);
}
