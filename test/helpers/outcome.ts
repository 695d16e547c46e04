// For fuzz tests: a parser or verifier given hostile input may return, or refuse with one of the
// expected SourcemeshError codes. Anything else (a TypeError, another code) fails the test.
import { isSourcemeshError, type ErrorCode } from '../../src/errors.ts';

/** Run `fn`; it may return, or throw a SourcemeshError with one of `codes` (then undefined). */
export function outcome<T>(fn: () => T, codes: readonly ErrorCode[]): T | undefined {
  try {
    return fn();
  } catch (err) {
    if (isSourcemeshError(err) && codes.includes(err.code)) return undefined;
    throw err;
  }
}

/** `outcome` for async work. */
export async function outcomeAsync<T>(fn: () => Promise<T>, codes: readonly ErrorCode[]): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    if (isSourcemeshError(err) && codes.includes(err.code)) return undefined;
    throw err;
  }
}
