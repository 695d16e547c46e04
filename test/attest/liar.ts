// A lying rebuilder for the attestation tests: it derives a snapshot as ours does, from the real
// repository, but flips one byte of the first "int main" in the tar before compressing it.
import { compressChunks } from '../../src/archive/compress.ts';
import { openArchive } from '../../src/archive/index.ts';
import type { Derivation } from '../../src/attest/rebuild.ts';
import type { Distfile } from '../../src/manifest/distfile.ts';
import { ensureRepo } from '../../src/mirror/git-repo.ts';

/** A `derive` for rebuildManifest whose clones live in `stateDir`. */
export function flippingDerive(stateDir: string): (d: Distfile) => Promise<Derivation> {
  return async (d) => {
    const { dir, commit } = await ensureRepo(d.git!.repo, d.git!.ref, stateDir);
    const archive = openArchive({ repoPath: dir, ref: commit, prefix: d.git!.prefix });
    const flipped = (async function* () {
      for await (const chunk of archive.chunks()) {
        const b = Buffer.from(chunk);
        const at = b.indexOf('int main');
        if (at >= 0) b[at] ^= 0x20;
        yield b;
      }
      archive.close();
    })();
    return { commit, chunks: compressChunks(flipped, 'gzip-n', 6) };
  };
}
