// `sourcemesh archive REPO REF`: the tar (or tar.gz) of a commit, byte-identical to `git archive`
// (| `gzip -n`), made by our own object reader, tar writer and deflate. Streams; a new or regular output
// file appears under its name only when complete, a device or FIFO is written through
// (src/fs/durable-file.ts), and `-o -` is stdout.
import { createHash } from 'node:crypto';
import path from 'node:path';
import { Command, Option } from 'commander';
// levels.ts alone (the flavours' names): the deflate engine is loaded only for a tar.gz, so that a plain
// tar does not pay for compiling it at start-up (docs/BENCHMARKS.md, bench:archive).
import { DEFLATE_FLAVOURS, type DeflateFlavour } from '../archive/deflate/levels.ts';
import { openArchive, type PreparedArchive } from '../archive/index.ts';
import { SourcemeshError } from '../errors.ts';
import { writeChunksToStdout, writeOutputChunks } from '../fs/durable-file.ts';
import { LIMITS } from '../limits.ts';
import { printJson, type Io } from './output.ts';

interface ArchiveFlags {
  output: string;
  prefix?: string;
  format?: 'tar' | 'tar.gz';
  compression?: DeflateFlavour;
  level?: string;
  json?: boolean;
}

export function archiveCommand(io: Io): Command {
  return new Command('archive')
    .description('write the tar or tar.gz of a commit, byte-identical to `git archive` | `gzip -n` (git 2.39, default configuration), without git or gzip')
    .argument('<repo>', 'a local repository: its work tree, its .git directory or a bare repository')
    .argument('<ref>', 'a tag, branch, HEAD, or a full or abbreviated commit or tag id')
    .requiredOption('-o, --output <file>', 'the archive to write (`-` for stdout)')
    .option('--prefix <dir/>', 'prepend this to every path, as git archive --prefix')
    .addOption(new Option('--format <format>', 'tar or tar.gz (default: from the output name, .tar.gz/.tgz else tar)').choices(['tar', 'tar.gz']))
    .addOption(new Option('--compression <flavour>', 'for tar.gz: gzip-n (GNU gzip -n) or zlib (git archive --format=tar.gz)').choices([...DEFLATE_FLAVOURS]))
    .option('--level <n>', 'for tar.gz: compression level 1 to 9 (default 6)')
    .option('--json', 'print the result as JSON')
    .action(async (repo: string, ref: string, o: ArchiveFlags) => {
      const toStdout = o.output === '-';
      const format = o.format ?? (!toStdout && /\.(tar\.gz|tgz)$/.test(o.output) ? 'tar.gz' : 'tar');
      if (format === 'tar' && (o.compression !== undefined || o.level !== undefined)) {
        throw new SourcemeshError('E_USAGE', `--compression and --level apply to --format tar.gz only (the output ${o.output} is a plain tar)`);
      }
      const level = o.level === undefined ? 6 : Number(o.level);
      if (!/^[1-9]$/.test(o.level ?? '6')) throw new SourcemeshError('E_USAGE', `--level ${o.level}: expected a whole number from 1 to 9`);
      const compression = o.compression ?? 'gzip-n';
      // A tar.gz deflates on a second thread when there is a second core (src/archive/gzip-thread.ts); the
      // thread starts here, before the repository is opened, so its start-up overlaps the reader's.
      const gzip = format === 'tar.gz'
        ? (await import('../archive/gzip-thread.ts')).startTarGzip({ flavour: compression, level, queueBytes: LIMITS.archiveDeflateQueueBytes })
        : null;
      // Resolve the ref and check the prefix before anything is written.
      // 64 KiB chunks: the event loop gets a turn often, so a pipe's reader works while the tar is made
      // (bench:archive: 1.26 s -> 1.12 s for a 215 MB tar read by another process).
      let archive: PreparedArchive;
      try {
        archive = openArchive({ repoPath: repo, ref, prefix: o.prefix, chunkBytes: 64 << 10 });
      } catch (err) {
        await gzip?.cancel();
        throw err;
      }
      // A tar.gz also reports its tarSha256 (the tar's sha256); a plain tar's is its sha256, hashed once.
      const tarHash = createHash('sha256');
      async function* tar() {
        for await (const chunk of archive.chunks()) {
          tarHash.update(chunk);
          yield chunk;
        }
      }
      const body = gzip ? gzip.run(tar(), (chunk) => archive.recycle(chunk)) : archive.chunks();
      let written: { sha256?: string; bytes: number };
      try {
        // A plain tar on stdout is hashed only for --json: whoever reads the pipe has the bytes (`| sha256sum`
        // hashes them on another core), and hashing here was 5% of the command (docs/BENCHMARKS.md).
        const hash = !(toStdout && format === 'tar' && !o.json);
        // A chunk written whole goes back to the tar writer to be filled again (plain tar only: gzip keeps none),
        // on stdout and into a file alike.
        const recycle = gzip ? undefined : (chunk: Uint8Array) => archive.recycle(chunk);
        written = toStdout ? await writeChunksToStdout(body, { hash, written: recycle }) : await writeOutputChunks(o.output, body, { written: recycle });
      } finally {
        archive.close();
        await gzip?.cancel();
      }
      const tarSha256 = format === 'tar.gz' ? tarHash.digest('hex') : written.sha256;
      const result = {
        commit: archive.commitId, output: toStdout ? '-' : path.resolve(o.output), format, prefix: o.prefix ?? '',
        ...(format === 'tar.gz' ? { compression, level } : {}), bytes: written.bytes, sha256: written.sha256, tarSha256,
      };
      if (o.json && !toStdout) printJson(io, result);
      else {
        const out = toStdout ? io.stderr : io.stdout;
        out.write(o.json ? JSON.stringify(result) + '\n' : `commit  ${result.commit}\n${result.sha256 ? `sha256  ${result.sha256}  ${toStdout ? '-' : o.output}\n` : ''}${format === 'tar.gz' ? `tar     ${tarSha256}\n` : ''}`);
      }
    });
}
