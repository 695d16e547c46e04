// Every bound on attacker-controlled input, and every timeout, lives here so that reviewers find them
// in one place. Checks happen before allocation. Callers may pass a partial override (tests do).

const KiB = 1024;
const MiB = 1024 * KiB;

export const LIMITS = {
  // manifests and live-bootstrap sources files
  manifestBytes: 64 * MiB,
  manifestDistfiles: 200_000,
  sourcesLineBytes: 8 * KiB,
  urlBytes: 4 * KiB,
  nameBytes: 255,
  urlsPerDistfile: 64,

  // HTTP client
  maxRedirects: 10,
  connectTimeoutMs: 30_000,
  headersTimeoutMs: 30_000,
  /** No byte for this long on an open body: the source is stalled. */
  idleTimeoutMs: 30_000,
  attemptsPerSource: 4,
  backoffBaseMs: 250,
  backoffMaxMs: 15_000,
  maxHeaderBytes: 64 * KiB,
  /** A source may send at most this much for a distfile whose size the manifest does not pin. */
  maxDistfileBytes: 64 * 1024 * MiB,

  // store
  lockPollMs: 100,
  lockWaitMs: 24 * 60 * 60 * 1000,

  // trust
  /** A signed note (checkpoint, release statement, witness response) as a whole. */
  noteBytes: 256 * KiB,
  /** Signature lines in one note; C2SP signed-note asks verifiers to accept at least 16. */
  noteSignatures: 64,
  /** A key name (for a checkpoint, also its origin line). */
  noteKeyNameBytes: 256,
  checkpointExtensionLines: 16,
  /** Hashes in one inclusion or consistency proof; 64 covers any tree of up to 2^63 leaves. */
  proofHashes: 64,
  /** One log entry; C2SP tlog-tiles entry bundles prefix each entry with a uint16 length. */
  logEntryBytes: 65_535,
  tilePathBytes: 128,
} as const;

export type Limits = { -readonly [K in keyof typeof LIMITS]: (typeof LIMITS)[K] extends number ? number : (typeof LIMITS)[K] };

export function limitsWith(overrides: Partial<Limits> = {}): Limits {
  return { ...LIMITS, ...overrides };
}
