// `sourcemesh cleanse IN --delete GLOB... -o OUT`: the deletion-only cleansing step. Reads a tarball
// (gzip, xz, bzip2 or plain), drops the entries the globs match, writes a deterministic tar.gz (our
// gzip -n -6) and optionally the recipe {from, delete, result} that replays to the same bytes.
import { createReadStream } from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { CLEANSE_RECIPE_FORMAT, cleanseTarball, type CleanseRecipe } from '../archive/cleanse.ts';
import { fromSystemError } from '../errors.ts';
import { writeOutputChunks, writeOutputFile } from '../fs/durable-file.ts';
import { printJson, type Io } from './output.ts';

interface CleanseFlags {
  delete: string[];
  output: string;
  recipe?: string;
  json?: boolean;
}

export function cleanseCommand(io: Io): Command {
  return new Command('cleanse')
    .description('delete entries from a tarball: a deterministic tar.gz keeping every other entry byte for byte, and a replayable recipe')
    .argument('<in>', 'the tarball (.tar.gz, .tar.xz, .tar.bz2 or .tar)')
    .requiredOption('--delete <glob...>', 'delete entries whose path (or a parent directory) matches; gitignore-style: * and ? stay within a directory, ** spans directories')
    .requiredOption('-o, --output <file>', 'the cleansed .tar.gz to write')
    .option('--recipe <file>', 'also write the recipe {from, delete, result} as JSON')
    .option('--json', 'print the result as JSON')
    .action(async (input: string, o: CleanseFlags) => {
      async function* read(): AsyncGenerator<Uint8Array> {
        try {
          for await (const chunk of createReadStream(input, { highWaterMark: 1 << 20 })) yield chunk as Buffer;
        } catch (err) {
          throw fromSystemError(err, input);
        }
      }
      const run = cleanseTarball(read(), o.delete, input);
      const written = await writeOutputChunks(o.output, run.chunks);
      const recipe: CleanseRecipe = { format: CLEANSE_RECIPE_FORMAT, from: run.fromSha256(), delete: o.delete, result: written.sha256 };
      if (o.recipe) await writeOutputFile(o.recipe, JSON.stringify(recipe, null, 2) + '\n');
      for (const p of run.report.unused) io.stderr.write(`sourcemesh: warning: --delete ${p} matched nothing\n`);
      if (o.json) {
        printJson(io, { ...recipe, output: path.resolve(o.output), bytes: written.bytes, kept: run.report.kept, deleted: run.report.deleted, unused: run.report.unused, ...(o.recipe ? { recipe: path.resolve(o.recipe) } : {}) });
      } else {
        io.stdout.write(`from    ${recipe.from}  ${input}\nresult  ${recipe.result}  ${o.output}\ndeleted ${run.report.deleted.length} entries, kept ${run.report.kept}\n`);
      }
    });
}
