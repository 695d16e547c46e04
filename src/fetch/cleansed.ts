// A distfile with a `cleanse` recipe ({from, delete}) is made, not downloaded: its `from` tarball is
// taken from the store or fetched by its sha256 from the distfile's upstream sources, the deletions are
// applied (src/archive/cleanse.ts), and the result must hash to the distfile's pinned sha256.
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { cleanseTarball } from '../archive/cleanse.ts';
import { SourcemeshError, fromSystemError } from '../errors.ts';
import { writeFully } from '../fs/write-fully.ts';
import type { Distfile } from '../manifest/distfile.ts';
import { digestsEqual } from '../store/digest.ts';
import type { Store, StoredObject } from '../store/store.ts';

/** Apply `d.cleanse` to the stored object `from`, writing the result into the store under `d.sha256`. */
export async function cleanseIntoStore(d: Distfile, from: StoredObject, store: Store): Promise<StoredObject> {
  const recipe = d.cleanse!;
  const expected = d.sha256!;
  const partial = await store.beginPartial(expected);
  const what = `${d.name}: cleanse of ${recipe.from}`;
  try {
    async function* read(): AsyncGenerator<Uint8Array> {
      try {
        for await (const chunk of createReadStream(from.path, { highWaterMark: 1 << 20 })) yield chunk as Buffer;
      } catch (err) {
        throw fromSystemError(err, from.path);
      }
    }
    const run = cleanseTarball(read(), recipe.delete, what);
    const hash = createHash('sha256');
    const fh = await open(partial.path, 'w').catch((err) => { throw fromSystemError(err, partial.path); });
    try {
      for await (const chunk of run.chunks) {
        hash.update(chunk);
        await writeFully(fh, [chunk], null);
      }
    } finally {
      await fh.close();
    }
    const actual = hash.digest('hex');
    if (!digestsEqual(run.fromSha256(), recipe.from)) {
      // The store object changed under us: damaged store.
      throw new SourcemeshError('E_CHECKSUM', `${what}: the store object ${from.path} no longer has sha256 ${recipe.from}`);
    }
    if (!digestsEqual(actual, expected)) {
      throw new SourcemeshError('E_CHECKSUM', `${what}: deleting ${JSON.stringify(recipe.delete)} gave sha256 ${actual}, the manifest pins ${expected}`, { name: d.name, expected, actual });
    }
    return await store.commit(partial);
  } catch (err) {
    await store.discardPartial(partial);
    throw err;
  }
}
