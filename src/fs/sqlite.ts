// The node's small SQLite databases (node:sqlite): mirror reputation, the log's tree head, a witness's and
// a client's trust state. WAL with synchronous=FULL: a transaction is on disk when COMMIT returns and a crash
// leaves the old rows or the new ones, never torn ones. BEGIN IMMEDIATE takes the write lock before the
// reads, so a check and the store that depends on it are one step, even across processes.

import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { fromSystemError } from '../errors.ts';

/**
 * Open (creating it and its directory, mode 0700) the database `file` and run `schema` (CREATE ... IF NOT
 * EXISTS). `busyMs`: how long a statement waits for another process's lock. Errors name `what`.
 */
export function openDatabase(file: string, schema: string, what: string, busyMs = 5000): DatabaseSync {
  try {
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    const db = new DatabaseSync(file);
    db.exec(`PRAGMA busy_timeout = ${Math.trunc(busyMs)}; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; ${schema}`);
    return db;
  } catch (err) {
    throw fromSystemError(err, `${file}: cannot open ${what}`);
  }
}

/** Undo the open transaction, if any (a failed statement may already have ended it). */
export function rollback(db: DatabaseSync): void {
  if (db.isTransaction) db.exec('ROLLBACK');
}

/** COMMIT; if that fails, roll back and throw a one-line error naming `what`. */
export function commit(db: DatabaseSync, what: string): void {
  try {
    db.exec('COMMIT');
  } catch (err) {
    rollback(db);
    throw fromSystemError(err, what);
  }
}

/**
 * Run `fn` in a write transaction (BEGIN IMMEDIATE): committed when it returns, rolled back when it throws
 * (its error goes on unchanged). A failed COMMIT is an error naming `what`.
 */
export function writeTransaction<T>(db: DatabaseSync, fn: () => T, what: string): T {
  db.exec('BEGIN IMMEDIATE');
  let result: T;
  try {
    result = fn();
  } catch (err) {
    rollback(db);
    throw err;
  }
  commit(db, what);
  return result;
}
