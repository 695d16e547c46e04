// The one logger interface of every server (`serve`, `log serve`, `witness serve`): structured fields
// first, then a message, as pino takes them, so a pino Logger is one, and so is a test's recorder.
// Records are JSON lines; which fields each server writes is in docs/OPERATIONS.md.

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(fields: LogFields, msg: string): void;
  info(fields: LogFields, msg: string): void;
  warn(fields: LogFields, msg: string): void;
  error(fields: LogFields, msg: string): void;
}

/** A logger that drops everything. */
export const SILENT: Logger = { debug() {}, info() {}, warn() {}, error() {} };
