// A running log: storage, entry index, gate (admission, verifier threads, quotas), sequencer, checkpointer
// and HTTP server assembled. `sourcemesh log serve` is this
// with flags parsed; tests and benchmarks start it the same way, through the CLI.

import type { Logger } from '../../logger.ts';
import { Agent } from '../../net/undici.ts';
import { SourcemeshError } from '../../errors.ts';
import { HTTP1_ONLY } from '../../fetch/http.ts';
import { LIMITS, type Limits } from '../../limits.ts';
import { closeServer, listen } from './http-server.ts';
import { createSigner, createVerifier, formatVerifierKey, KEY_TYPE_COSIGNATURE_V1, KEY_TYPE_ED25519, type SignerKey } from '../note.ts';
import type { ChainPosition } from '../rotation.ts';
import type { AdmissionPolicy } from './admission.ts';
import { Checkpointer } from './checkpoints.ts';
import { EntryIndex } from './entry-index.ts';
import { Gate, type EntryMeta } from './gate.ts';
import type { QuotaLimits } from './quota.ts';
import { Sequencer } from './sequencer.ts';
import { createLogServer } from './server.ts';
import { LogStorage } from './storage.ts';
import { EntryVerifier } from './verifier.ts';
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
  /** Who may write (admission.ts). */
  readonly admission: AdmissionPolicy;
  readonly quota: QuotaLimits;
  /** POST /add per client address: sustained per second (0: no limit) and burst. */
  readonly addRate: { readonly perSecond: number; readonly burst: number };
  /** Signature verification threads (default: one per core but one, at least one; 0: on the main thread). */
  readonly verifyThreads?: number;
}

export interface RunningLog {
  readonly url: string;
  readonly vkey: string;
  readonly origin: string;
  readonly verifyThreads: number;
  /** Replace the admission policy (SIGHUP); applies to every entry not yet sequenced. */
  reload(policy: AdmissionPolicy): void;
  /** The current position of each admitted project's rotation chain. */
  positions(): ReadonlyMap<string, ChainPosition>;
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
  let index: EntryIndex;
  try {
    index = await EntryIndex.open(storage);
  } catch (err) {
    storage.close();
    throw err;
  }
  const verifier = new EntryVerifier({ limits, threads: options.admission.mode === 'unsigned' ? 0 : options.verifyThreads });
  const gate = new Gate({ index, verifier, policy: options.admission, quota: options.quota, logger, limits });
  // HTTP/1.1 to witnesses, as every client of ours (fetch/http.ts HTTP1_ONLY).
  const dispatcher = new Agent({ ...HTTP1_ONLY, keepAliveTimeout: 30_000, connections: 4, connect: { timeout: limits.logWitnessTimeoutMs } });
  let checkpointer: Checkpointer | undefined;
  const sequencer = new Sequencer<EntryMeta>({ storage, limits, logger, gate, onCommitted: (_head, added) => checkpointer?.appended(added) });
  gate.attach(sequencer);
  const release = async () => {
    await checkpointer?.stop();
    await verifier.close();
    index.close();
    storage.close();
    await dispatcher.close();
  };
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
    await release();
    throw err;
  }
  const server = createLogServer({ storage, sequencer, gate, checkpointer, logger, limits, addRate: options.addRate, index });
  let url: string;
  try {
    url = await listen(server, options.host, options.port);
  } catch (err) {
    await release();
    throw new SourcemeshError('E_IO', `cannot listen on ${options.host}:${options.port}: ${(err as Error).message}`, {}, { cause: err });
  }
  return {
    url,
    vkey,
    origin: key.name,
    verifyThreads: verifier.threads,
    reload: (policy) => gate.reload(policy),
    positions: () => gate.positions(),
    async close() {
      const closing = closeServer(server);
      await sequencer.close();
      await closing;
      await release();
    },
  };
}
