// The history of a stress run: every operation and fault as one JSON line, appended as it happens (the
// file is the record a failing run leaves behind; the checker reads it back).
import { appendFileSync, readFileSync } from 'node:fs';
import type { Fault } from './schedule.ts';

export interface Exported {
  name: string;
  sha256: string;
}

export interface FileReport {
  name: string;
  status: string;
  source?: string;
  size?: number;
  ms?: number;
  contributors?: { source: string; bytes: number }[];
  rejected: { source: string; code: string }[];
}

/** How a client fetched: the mirrors given (`mirrors`), those plus BitTorrent seeds, or the mirrors it discovered. */
export type Transport = 'mirrors' | 'bittorrent' | 'discover';

/** `attest verify`'s verdict on one git snapshot, builders and liars as node names. */
export interface AttestedSnapshot {
  name: string;
  accepted: boolean;
  sha256?: string;
  builders: string[];
  liars: string[];
}

export type Entry =
  | { type: 'run'; seed: number; durationMs: number; nodes: Record<string, string>; mirrors: string[]; clients: string[]; faults: Fault[]; pins: Record<string, Record<string, string>>; broken?: string }
  | { type: 'fault'; kind: Fault['kind']; target: string; phase: 'start' | 'end'; param?: number | string }
  | { type: 'lie'; mirror: string; client: string; path: string; flipped: number; read: boolean }
  | { type: 'fetch'; op: number; client: string; start: number; exit: number | null; version: string; exported: Exported[]; files: FileReport[]; broken?: boolean; transport?: Transport }
  | { type: 'sync'; mirror: string; version: string; exit: number | null; start: number }
  | { type: 'mirror-files'; mirror: string; files: Exported[] }
  | { type: 'release'; version: string; exit: number | null; index?: number }
  | { type: 'release-verify'; client: string; version: string; exit: number | null }
  | { type: 'checkpoint'; size: number; root: string; cosigners: string[]; from?: string }
  | { type: 'time'; client: string; start: number; exit: number | null; agreed: string[]; liars: string[]; failed: string[] }
  | { type: 'attest'; client: string; start: number; version: string; exit: number | null; bogus?: string; honestBuilders: number; threshold: number; snapshots: AttestedSnapshot[] }
  | { type: 'entry-check'; version: string; index: number; exit: number | null }
  | { type: 'role-failed'; role: string; node: string; message: string }
  | { type: 'end' };

export type Rec = Entry & { t: number };

export class History {
  readonly file: string;
  readonly #t0: number;

  constructor(file: string, t0: number) {
    this.file = file;
    this.#t0 = t0;
  }

  now(): number {
    return Math.round(performance.now() - this.#t0);
  }

  add(e: Entry, t = this.now()): void {
    appendFileSync(this.file, `${JSON.stringify({ t, ...e })}\n`);
  }
}

export function readHistory(file: string): Rec[] {
  return readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Rec);
}
