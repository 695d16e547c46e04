// Key files as `key generate` writes them (and Go's note.GenerateKey): the signer key text
// (`PRIVATE+KEY+NAME+ID+KEY`) in KEYFILE and the vkey in KEYFILE.pub; docs/FORMATS.md, "Keys". Read
// bounded (limits.keyFileBytes), whoever asks: a node key, `--key` of log, witness and release.
import { SourcemeshError } from '../errors.ts';
import { readBoundedFile } from '../fs/bounded-read.ts';
import { LIMITS } from '../limits.ts';
import { parseSignerKey, parseVerifierKey, type SignerKey, type VerifierKey } from './note.ts';

/** The signer key in `file`; `what` names it in errors ("node key", "key"). */
export function readSignerKeyFile(file: string, what = 'key'): Promise<SignerKey> {
  return readKeyFile(file, what, parseSignerKey);
}

/** The vkey in `file` (KEYFILE.pub). */
export function readVerifierKeyFile(file: string): Promise<VerifierKey> {
  return readKeyFile(file, 'vkey', parseVerifierKey);
}

async function readKeyFile<K>(file: string, what: string, parse: (text: string) => K): Promise<K> {
  const text = await readBoundedFile(file, LIMITS.keyFileBytes, what, 'E_INPUT');
  try {
    return parse(text.trim());
  } catch (err) {
    throw new SourcemeshError('E_INPUT', `${file}: ${(err as Error).message}`, { file }, { cause: err });
  }
}
