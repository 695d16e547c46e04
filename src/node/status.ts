// What the node is doing, read from the files its services keep: the mirror's signed inventory and
// quarantine, each mirror's record (fetch/reputation.ts, what `mirrors status` prints), the log's latest
// checkpoint, the witness's state. Read-only; a part that cannot be read says why instead of failing
// the whole page.
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { Reputation, type MirrorRecord } from '../fetch/reputation.ts';
import { readBoundedFile } from '../fs/bounded-read.ts';
import { LIMITS } from '../limits.ts';
import { INVENTORY_PATH, parseInventory } from '../mirror/inventory.ts';
import { stateDirOf } from '../mirror/sync.ts';
import { parseCheckpoint } from '../trust/checkpoint.ts';
import { parseVerifierKey } from '../trust/note.ts';
import { SqliteWitnessStore } from '../trust/witness/state.ts';
import { nodePath, type NodeConfig } from './config.ts';
import { nodeKeyOf } from './services.ts';
import type { NodeState, SizeSample, SyncRecord } from './state.ts';

export interface MirrorStatus {
  root: string;
  files: number;
  bytes: number;
  /** When the inventory was signed. */
  generated?: string;
  quarantined: string[];
  maxBytes: number;
  lastSync?: SyncRecord;
  syncs: SyncRecord[];
  sizes: SizeSample[];
  reputation: MirrorRecord[];
  error?: string;
}

export interface LogStatus {
  root: string;
  origin?: string;
  size?: number;
  /** Signatures on the latest checkpoint: the log's own and the witnesses' cosignatures. */
  signatures?: number;
  error?: string;
}

export interface WitnessStatus {
  logs: { origin: string; size?: number; updated?: string }[];
  error?: string;
}

export interface NodeStatusReport {
  mirror: MirrorStatus;
  log: LogStatus;
  witness: WitnessStatus;
}

export async function mirrorStatus(c: NodeConfig, dir: string, state?: NodeState): Promise<MirrorStatus> {
  const root = nodePath(dir, c.services.serve.enabled || !c.services.mirrorSync.enabled ? c.services.serve.root : c.services.mirrorSync.root);
  const out: MirrorStatus = { root, files: 0, bytes: 0, quarantined: [], maxBytes: c.services.mirrorSync.maxBytes, syncs: state?.syncs() ?? [], sizes: state?.sizes() ?? [], reputation: [] };
  out.lastSync = out.syncs.at(-1);
  try {
    const inv = path.join(root, INVENTORY_PATH);
    if (existsSync(inv)) {
      const vkey = (await readBoundedFile(nodeKeyOf(dir).pub, LIMITS.keyFileBytes, 'node public key', 'E_INPUT')).trim();
      const parsed = parseInventory(await readFile(inv), vkey);
      out.files = parsed.files.length;
      out.bytes = parsed.files.reduce((n, f) => n + f.size, 0);
      out.generated = parsed.generated;
    }
    const q = path.join(stateDirOf(root), 'quarantine');
    if (existsSync(q)) out.quarantined = (await readdir(q)).filter((n) => !n.endsWith('.object')).sort();
    const store = path.join(stateDirOf(root), 'store');
    if (existsSync(store)) {
      const rep = Reputation.open(store);
      try {
        out.reputation = rep.all();
      } finally {
        rep.close();
      }
    }
  } catch (err) {
    out.error = (err as Error).message;
  }
  return out;
}

export async function logStatus(c: NodeConfig, dir: string): Promise<LogStatus> {
  const root = nodePath(dir, c.services.logServe.root);
  const out: LogStatus = { root };
  try {
    const file = path.join(root, 'checkpoint');
    if (!existsSync(file)) return out;
    const note = await readBoundedFile(file, LIMITS.noteBytes, 'log checkpoint', 'E_FORMAT');
    const split = note.indexOf('\n\n');
    const cp = parseCheckpoint(note.slice(0, split + 1));
    out.origin = cp.origin;
    out.size = Number(cp.size);
    out.signatures = note.slice(split + 2).split('\n').filter((l) => l.startsWith('\u2014 ')).length;
  } catch (err) {
    out.error = (err as Error).message;
  }
  return out;
}

export function witnessStatus(c: NodeConfig, dir: string): WitnessStatus {
  const out: WitnessStatus = { logs: [] };
  const stateDir = nodePath(dir, c.services.witnessServe.state);
  try {
    const has = existsSync(path.join(stateDir, 'witness.sqlite'));
    const store = has ? SqliteWitnessStore.open(stateDir) : undefined;
    try {
      for (const l of c.services.witnessServe.logs) {
        const origin = parseVerifierKey(l).name;
        const rec = store?.get(origin);
        out.logs.push({ origin, size: rec?.size });
      }
    } finally {
      store?.close();
    }
  } catch (err) {
    out.error = (err as Error).message;
  }
  return out;
}

export async function nodeStatus(c: NodeConfig, dir: string, state?: NodeState): Promise<NodeStatusReport> {
  return { mirror: await mirrorStatus(c, dir, state), log: await logStatus(c, dir), witness: witnessStatus(c, dir) };
}
