// sourcemesh key generate NAME -o KEYFILE [--type note|cosignature] [--force] [--json]
// An Ed25519 key from node:crypto's randomness: the signer key text in KEYFILE (mode 0600), the vkey in
// KEYFILE.pub and on stdout. Also the readers `log serve` and `witness serve` use for key flags.
import { Command } from 'commander';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, rm } from 'node:fs/promises';
import path from 'node:path';
import { SourcemeshError } from '../errors.ts';
import { writeOutputFile } from '../fs/durable-file.ts';
import { readVerifierKeyFile } from '../trust/key-file.ts';
import {
  formatSignerKey, formatVerifierKey, isValidKeyName, KEY_TYPE_COSIGNATURE_V1, KEY_TYPE_ED25519, parseVerifierKey,
  signerKeyFromSeed, type SignerKey, type VerifierKey,
} from '../trust/note.ts';
import { printJson, type Io } from './output.ts';

interface GenerateFlags {
  output: string;
  type: string;
  force?: boolean;
  json?: boolean;
}

const TYPES: Record<string, number> = { note: KEY_TYPE_ED25519, cosignature: KEY_TYPE_COSIGNATURE_V1 };

export function keyCommand(io: Io): Command {
  const cmd = new Command('key').description('make signing keys for logs, witnesses and releases');
  cmd.command('generate')
    .description('generate an Ed25519 key: the private key in KEYFILE (mode 0600), its vkey in KEYFILE.pub and on stdout')
    .argument('<name>', 'the key name (for a log: its origin, e.g. log.example.org/main)')
    .requiredOption('-o, --output <keyfile>', 'where to write the private key')
    .option('--type <type>', 'note (logs, release signers) or cosignature (witnesses, cosignature/v1)', 'note')
    .option('--force', 'replace KEYFILE and KEYFILE.pub if they exist')
    .option('--json', 'print the name, type, vkey and file names as JSON')
    .action(async (name: string, o: GenerateFlags) => {
      const type = TYPES[o.type];
      if (type === undefined) throw new SourcemeshError('E_USAGE', `--type ${o.type}: expected note or cosignature`);
      if (!isValidKeyName(name)) throw new SourcemeshError('E_USAGE', `key name ${JSON.stringify(name)}: it must be non-empty, at most 256 bytes, with no spaces, control characters or +`);
      const key = signerKeyFromSeed(name, type, randomBytes(32));
      const vkey = formatVerifierKey(key);
      const keyFile = path.resolve(o.output);
      const pubFile = `${keyFile}.pub`;
      if (!o.force) {
        for (const f of [keyFile, pubFile]) {
          if (await lstat(f).then(() => true, () => false)) throw new SourcemeshError('E_INPUT', `${f} exists; refusing to overwrite a key (use --force to replace it)`, { file: f });
        }
      }
      // A key must be readable again beside its .pub: a device or FIFO is refused. Without --force the
      // final step is link(2), which fails if a racing writer got there first.
      const keyOpts = { exclusive: !o.force, regularOnly: true, what: 'cannot write the key' };
      await writeOutputFile(keyFile, `${formatSignerKey(key)}\n`, { ...keyOpts, mode: 0o600 });
      try {
        await writeOutputFile(pubFile, `${vkey}\n`, { ...keyOpts, mode: 0o644 });
      } catch (err) {
        if (!o.force) await rm(keyFile, { force: true });
        throw err;
      }
      if (o.json) printJson(io, { name, type: o.type, vkey, keyFile, publicKeyFile: pubFile });
      else io.stdout.write(`${vkey}\n`);
    });
  return cmd;
}

/** A verifier key given on the command line: the vkey text itself, or a file holding it (KEYFILE.pub). */
export async function readVerifierKeyArg(value: string): Promise<VerifierKey> {
  if (value.includes('+')) return parseVerifierKey(value.trim());
  if (!existsSync(value)) throw new SourcemeshError('E_USAGE', `${value} is neither a vkey (name+id+key) nor a file`);
  return readVerifierKeyFile(value);
}
