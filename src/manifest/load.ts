// One entry point for every kind of manifest input a command accepts: a sourcemesh manifest (JSON),
// a live-bootstrap `sources` file, or a live-bootstrap `steps/` directory (or the checkout holding it).
// A file is read once, bounded (a FIFO such as `<(curl ...)` works, /dev/zero is refused), then its
// first character decides: `{` is JSON, anything else a sources file.
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { SourcemeshError } from '../errors.ts';
import { inputError, readBoundedFile } from '../fs/bounded-read.ts';
import { LIMITS } from '../limits.ts';
import type { Manifest } from './distfile.ts';
import { importSourcesText, importStepsDir, type ImportOptions } from './live-bootstrap.ts';
import { parseManifestJson } from './validate.ts';

export async function loadManifest(input: string, opts: ImportOptions = {}): Promise<Manifest> {
  const info = await stat(input).catch((err) => { throw inputError(err, input); });
  if (info.isDirectory()) {
    const stepsDir = await isFile(path.join(input, 'manifest')) ? input
      : await isFile(path.join(input, 'steps', 'manifest')) ? path.join(input, 'steps')
      : undefined;
    if (!stepsDir) throw new SourcemeshError('E_INPUT', `${input}: a directory but not a live-bootstrap steps/ tree (no manifest file)`, { input });
    return importStepsDir(stepsDir, opts);
  }
  const text = await readBoundedFile(input, LIMITS.manifestBytes, 'manifest', 'E_MANIFEST');
  if (text.trimStart().startsWith('{')) return parseManifestJson(text, input);
  return importSourcesText(text, input, opts);
}

async function isFile(p: string): Promise<boolean> {
  return stat(p).then((s) => s.isFile(), () => false);
}
