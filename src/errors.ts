// One error family with stable codes. Codes are documented in docs/ERRORS.md and never reused for
// another meaning; tests assert codes, not wording. The CLI maps each code to an exit status.

/** Exit statuses (docs/ERRORS.md): 1 operational failure, 2 bad usage or input, 3 verification failure. */
export const EXIT = { ok: 0, operational: 1, input: 2, verification: 3 } as const;

export const ERROR_CODES = {
  E_USAGE: EXIT.input, // the command line is wrong
  E_INPUT: EXIT.input, // an input file or argument is unreadable or of the wrong kind
  E_MANIFEST: EXIT.input, // a manifest, sources file or steps tree is malformed
  E_FORMAT: EXIT.input, // a note, checkpoint, proof, tile or other structured input is malformed
  E_ARCHIVE: EXIT.input, // a repository, pack, tarball or compressed stream is malformed or hostile
  E_UNSUPPORTED: EXIT.input, // well-formed input asking for something we refuse to do
  E_CONFIG: EXIT.input, // a node config (node.json, or a change from the panel) is malformed: the field is named
  E_REFUSED: EXIT.input, // a log refused a submission: not a statement it takes, a bad signature, a key it does not admit
  E_CHECKSUM: EXIT.verification, // bytes did not hash to the pinned digest
  E_SIZE: EXIT.verification, // a source sent more or fewer bytes than the pinned size
  E_SIGNATURE: EXIT.verification, // a signature is missing, unknown or invalid
  E_PROOF: EXIT.verification, // an inclusion or consistency proof does not verify
  E_POLICY: EXIT.verification, // a trust policy refused (quorum, age, rollback, fork)
  E_VERIFY: EXIT.verification, // a distfiles directory or store does not match its manifest
  E_NETWORK: EXIT.operational, // connection refused, reset, timed out, DNS failure
  E_HTTP: EXIT.operational, // the server answered with an error status
  E_REDIRECT: EXIT.operational, // too many redirects, or a redirect to a scheme we refuse
  E_NO_SOURCE: EXIT.operational, // every source of a distfile failed
  E_DISK_FULL: EXIT.operational, // ENOSPC or a configured byte cap
  E_PERMISSION: EXIT.operational, // EACCES / EPERM
  E_IO: EXIT.operational, // any other local I/O failure
  E_LOCKED: EXIT.operational, // another process holds a lock we need and did not release in time
  E_RUNTIME: EXIT.operational, // the Node.js running us is older than package.json's engines.node (bin/node-version.js)
  E_INTERNAL: EXIT.operational, // a bug: please report it
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class SourcemeshError extends Error {
  readonly code: ErrorCode;
  /** Structured evidence for --json output (source URL, expected and actual digests, ...). */
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}, options?: ErrorOptions) {
    super(message, options);
    this.name = 'SourcemeshError';
    this.code = code;
    this.details = details;
  }

  get exitStatus(): number {
    return ERROR_CODES[this.code];
  }
}

export function isSourcemeshError(err: unknown, code?: ErrorCode): err is SourcemeshError {
  return err instanceof SourcemeshError && (code === undefined || err.code === code);
}

/**
 * Anything thrown that is not in our family is a bug: E_INTERNAL, on one line like every other error,
 * with the original kept as the cause (its stack is what a bug report needs).
 */
export function asSourcemeshError(err: unknown): SourcemeshError {
  if (err instanceof SourcemeshError) return err;
  const e = err as Error | undefined;
  const what = e instanceof Error ? `${e.name}: ${e.message}` : String(err);
  return new SourcemeshError('E_INTERNAL', `internal error (a bug in sourcemesh: please report it): ${what.split('\n')[0]}`, {}, { cause: err });
}

/**
 * Only ENOENT and ENOTDIR say that a path is not there. Any other failure (EACCES, EIO, ELOOP, EISDIR...)
 * is a fault to report as what it is, never to take for "not found".
 */
export function isNotFound(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** Turn a Node system error about `path` into our family, naming the path and the cause. */
export function fromSystemError(err: unknown, what: string): SourcemeshError {
  if (err instanceof SourcemeshError) return err;
  const e = err as NodeJS.ErrnoException;
  const cause = e?.code ? `${e.code}: ${systemReason(e.code)}` : String(e?.message ?? err);
  const code: ErrorCode =
    e?.code === 'ENOSPC' || e?.code === 'EDQUOT' ? 'E_DISK_FULL'
    : e?.code === 'EACCES' || e?.code === 'EPERM' || e?.code === 'EROFS' ? 'E_PERMISSION'
    : 'E_IO';
  return new SourcemeshError(code, `${what}: ${cause}`, { syscall: e?.syscall, errno: e?.code }, { cause: err });
}

function systemReason(code: string): string {
  switch (code) {
    case 'ENOENT': return 'no such file or directory';
    case 'ENOSPC': return 'no space left on device';
    case 'EDQUOT': return 'disk quota exceeded';
    case 'EACCES': case 'EPERM': return 'permission denied';
    case 'EROFS': return 'read-only file system';
    case 'ENOTDIR': return 'not a directory';
    case 'EISDIR': return 'is a directory';
    case 'ELOOP': return 'too many levels of symbolic links';
    case 'EIO': return 'input/output error';
    case 'EEXIST': return 'already exists';
    case 'EMFILE': case 'ENFILE': return 'too many open files';
    default: return 'system error';
  }
}
