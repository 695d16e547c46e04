// Printing conventions shared by the commands: one-line errors, --json, human sizes, colour on a TTY only.
import { styleText } from 'node:util';
import { SourcemeshError, asSourcemeshError } from '../errors.ts';

export interface Io {
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
}

export const processIo: Io = { stdout: process.stdout, stderr: process.stderr, env: process.env };

export function useColor(io: Io, stream: Io['stdout']): boolean {
  return Boolean(stream.isTTY) && !io.env.NO_COLOR && io.env.TERM !== 'dumb';
}

export function paint(io: Io, stream: Io['stdout'], style: Parameters<typeof styleText>[0], text: string): string {
  return useColor(io, stream) ? styleText(style, text, { validateStream: false }) : text;
}

export function printJson(io: Io, value: unknown): void {
  io.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/** One line with the code; for a bug (anything not in our family: E_INTERNAL), its stack after it. */
export function printError(io: Io, err: unknown): number {
  const e = asSourcemeshError(err);
  io.stderr.write(`sourcemesh: ${paint(io, io.stderr, 'red', 'error')}: ${e.message} [${e.code}]\n`);
  if (e.code === 'E_INTERNAL' && e.cause instanceof Error && e.cause.stack) io.stderr.write(`${e.cause.stack}\n`);
  return e.exitStatus;
}

// Sizes are written by src/units.ts, shared with the panel; re-exported for the commands.
export { formatBytes } from '../units.ts';

/** Columns padded to their widest cell: short, aligned human output. */
export function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + (rows.length ? '\n' : '');
}

/** Parse a positive integer flag value, or fail with E_USAGE naming the flag. */
export function positiveInt(flag: string, value: string, max = Number.MAX_SAFE_INTEGER): number {
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > max) throw new SourcemeshError('E_USAGE', `${flag} ${value}: expected a whole number from 1 to ${max}`);
  return Number(value);
}

export function nonNegativeInt(flag: string, value: string, max = Number.MAX_SAFE_INTEGER): number {
  if (!/^\d+$/.test(value) || Number(value) > max) throw new SourcemeshError('E_USAGE', `${flag} ${value}: expected a whole number from 0 to ${max}`);
  return Number(value);
}
