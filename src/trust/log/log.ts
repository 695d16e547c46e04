// A running log: storage, sequencer, checkpointer and HTTP server assembled. `sourcemesh log serve` is this
// with flags parsed; tests and benchmarks start it the same way, through the CLI.

import type { Logger } from 'pino';
import { Agent } from 'undici';
import { SourcemeshError } from '../../errors.ts';
import { LIMITS, type Limits } from '../../limits.ts';
import { closeServer, listen } from './http-server.ts';
import { createSigner, createVerifier, formatVerifierKey, KEY_TYPE_COSIGNATURE_V1, KEY_TYPE_ED25519, type SignerKey } from '../note.ts';
import { Checkpointer } from './checkpoints.ts';
import { Sequencer } from './sequencer.ts';
import { createLogServer } from './server.ts';
import { LogStorage } from './storage.ts';
import { WitnessClient, type WitnessEndpoint } from './witness-client.ts';

export interface LogOptions {
  readonly root: string;
  /** The log's Ed25519 note key; its name is the checkpoint origin. */
  readonly key: SignerKey;
  readonly witnesses: readonly WitnessEndpoint[];
  /** Cosignatures a checkpoint needs before it is published (0 to witnesses.length). */
  readonly quorum: number;
  readonly checkpointIntervalMs: number;
  /** Sign early after this many new entries (0: only on the interval). */
  readonly batch: number;
  readonly host: string;
  readonly port: number;
  readonly logger: Logger;
  readonly limits?: Limits;
}

export interface RunningLog {
  readonly url: string;
  readonly vkey: string;
  readonly origin: string;
  close(): Promise<void>;
}

export async function startLog(options: LogOptions): Promise<RunningLog> {
  const limits = options.limits ?? LIMITS;
  const { key, logger } = options;
  if (key.type !== KEY_TYPE_ED25519) {
    throw new SourcemeshError('E_INPUT', `a log key must be an Ed25519 note key (type 0x01); ${key.name} is a ${key.type === KEY_TYPE_COSIGNATURE_V1 ? 'witness cosignature' : 'different'} key`);
  }
  const seen = new Set<string>();
  for (const w of options.witnesses) {
    if (w.key.type !== KEY_TYPE_COSIGNATURE_V1) throw new SourcemeshError('E_INPUT', `witness key ${w.key.name} is not a cosignature/v1 key (type 0x04)`);
    const id = formatVerifierKey(w.key);
    if (seen.has(id)) throw new SourcemeshError('E_USAGE', `witness ${w.key.name} is given twice`);
    seen.add(id);
  }
  const vkey = formatVerifierKey(key);
  const storage = await LogStorage.open(options.root, vkey, limits);
  const dispatcher = new Agent({ keepAliveTimeout: 30_000, connections: 4, connect: { timeout: limits.logWitnessTimeoutMs } });
  let checkpointer: Checkpointer | undefined;
  const sequencer = new Sequencer({ storage, limits, logger, onCommitted: (_head, added) => checkpointer?.appended(added) });
  try {
    await sequencer.start();
    checkpointer = new Checkpointer({
      storage,
      signer: createSigner(key),
      verifier: createVerifier(key),
      witnesses: options.witnesses.map((w) => new WitnessClient(w, dispatcher, limits)),
      quorum: options.quorum,
      intervalMs: options.checkpointIntervalMs,
      batch: options.batch,
      logger,
      limits,
    });
    await checkpointer.start(sequencer.head);
  } catch (err) {
    await checkpointer?.stop();
    storage.close();
    await dispatcher.close();
    throw err;
  }
  const server = createLogServer({ storage, sequencer, checkpointer, logger, limits });
  let url: string;
  try {
    url = await listen(server, options.host, options.port);
  } catch (err) {
    await checkpointer.stop();
    storage.close();
    await dispatcher.close();
    throw new SourcemeshError('E_IO', `cannot listen on ${options.host}:${options.port}: ${(err as Error).message}`, {}, { cause: err });
  }
  const cp = checkpointer;
  return {
    url,
    vkey,
    origin: key.name,
    async close() {
      const closing = closeServer(server);
      await sequencer.close();
      await cp.stop();
      await closing;
      await dispatcher.close();
      storage.close();
    },
  };
}
