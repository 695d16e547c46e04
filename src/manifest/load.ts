// One entry point for every kind of manifest input a command accepts: a sourcemesh manifest (JSON),
// a live-bootstrap `sources` file, or a live-bootstrap `steps/` directory (or the checkout holding it).
import { open, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { SourcemeshError, fromSystemError } from '../errors.ts';
import { LIMITS } from '../limits.ts';
import type { Manifest } from './distfile.ts';
import { importSourcesFile, importStepsDir, type ImportOptions } from './live-bootstrap.ts';
import { parseManifestJson } from './validate.ts';

export async function loadManifest(input: string, opts: ImportOptions = {}): Promise<Manifest> {
  const info = await stat(input).catch((err) => { throw asInputError(err, input); });
  if (info.isDirectory()) {
    const stepsDir = await isFile(path.join(input, 'manifest')) ? input
      : await isFile(path.join(input, 'steps', 'manifest')) ? path.join(input, 'steps')
      : undefined;
    if (!stepsDir) throw new SourcemeshError('E_INPUT', `${input}: a directory but not a live-bootstrap steps/ tree (no manifest file)`, { input });
    return importStepsDir(stepsDir, opts);
  }
  if (info.size > LIMITS.manifestBytes) throw new SourcemeshError('E_MANIFEST', `${input}: larger than ${LIMITS.manifestBytes} bytes`, { input });
  if (await startsWithBrace(input)) {
    return parseManifestJson(await readFile(input, 'utf8'), input);
  }
  return importSourcesFile(input, opts);
}

function asInputError(err: unknown, input: string): SourcemeshError {
  const e = fromSystemError(err, input);
  return e.code === 'E_IO' ? new SourcemeshError('E_INPUT', e.message, e.details) : e;
}

async function isFile(p: string): Promise<boolean> {
  return stat(p).then((s) => s.isFile(), () => false);
}

async function startsWithBrace(file: string): Promise<boolean> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(64);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    return buf.subarray(0, bytesRead).toString('utf8').trimStart().startsWith('{');
  } finally {
    await fh.close();
  }
}
