// Command-line flags of a benchmark: node:util's parseArgs with a one-line usage error (exit 2).
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';

export function benchArgs<const O extends ParseArgsOptionsConfig>(bench: string, options: O) {
  /** Print `bench:NAME: message` and exit 2. */
  const usage = (message: string): never => {
    console.error(`bench:${bench}: ${message}`);
    process.exit(2);
  };
  const parse = () => parseArgs({ options, strict: true, allowPositionals: false }).values;
  let values: ReturnType<typeof parse>;
  try {
    values = parse();
  } catch (err) {
    return usage((err as Error).message);
  }
  /** A flag's value as a positive integer, or a usage error naming it. */
  const count = (name: string, value: string): number => {
    if (!/^\d+$/.test(value) || Number(value) < 1) usage(`--${name} ${value}: expected a positive integer`);
    return Number(value);
  };
  return { values, usage, count };
}
