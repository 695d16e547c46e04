// Seeded randomness for tests: every random choice a test makes comes from a Prng, so a failing run can be
// repeated exactly. `withSeed` picks the seed (SOURCEMESH_TEST_SEED, or a fresh one), reports it, and puts
// it into the message of any failure, with the command line that repeats the run.
import { randomInt } from 'node:crypto';

/** Small fast PRNG (xorshift32 seeded through a splitmix step): deterministic across platforms. */
export class Prng {
  private s: number;

  constructor(seed: number) {
    let z = (seed + 0x9e3779b9) | 0;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    this.s = (z ^ (z >>> 16)) | 1;
  }

  next(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x;
    return x >>> 0;
  }

  /** Integer in [0, n). */
  below(n: number): number {
    return Math.floor((this.next() / 0x1_0000_0000) * n);
  }

  /** Integer in [min, max]. */
  between(min: number, max: number): number {
    return min + this.below(max - min + 1);
  }

  fill(out: Uint8Array, start = 0, end = out.length): void {
    let i = start;
    for (; i + 4 <= end; i += 4) {
      const v = this.next();
      out[i] = v;
      out[i + 1] = v >>> 8;
      out[i + 2] = v >>> 16;
      out[i + 3] = v >>> 24;
    }
    for (; i < end; i++) out[i] = this.next();
  }
}

export const SEED_ENV = 'SOURCEMESH_TEST_SEED';

/** The seed for this run: $SOURCEMESH_TEST_SEED when set (to repeat a failure), else a fresh one. */
export function testSeed(env: NodeJS.ProcessEnv = process.env): number {
  const given = env[SEED_ENV];
  if (given === undefined || given === '') return randomInt(0, 2 ** 31);
  const seed = Number(given);
  if (!Number.isSafeInteger(seed) || seed < 0 || seed >= 2 ** 31) throw new Error(`${SEED_ENV}=${given}: not an integer in [0, 2^31)`);
  return seed;
}

/**
 * Run `fn` with a Prng from `testSeed()`. The seed goes to the test's diagnostics, and a failure's message
 * ends with it, so that `SOURCEMESH_TEST_SEED=N npx node --test FILE` repeats the same choices.
 */
export async function withSeed<T>(t: { diagnostic(message: string): void }, fn: (rng: Prng, seed: number) => Promise<T> | T): Promise<T> {
  const seed = testSeed();
  t.diagnostic(`seed ${seed}`);
  try {
    return await fn(new Prng(seed), seed);
  } catch (err) {
    const note = ` (seed ${seed}: repeat with ${SEED_ENV}=${seed})`;
    if (err instanceof Error) {
      err.message += note;
      throw err;
    }
    throw new Error(`${String(err)}${note}`);
  }
}
