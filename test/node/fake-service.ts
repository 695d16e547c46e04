// A child for test/node/supervisor.test.ts, run by the Supervisor in place of our CLI with serve's
// arguments: what it does is named by the last part of its --root.
import path from 'node:path';

const args = process.argv.slice(2);
const what = path.basename(args[args.indexOf('--root') + 1] ?? '');
if (what === 'long-line') {
  process.stdout.write('listening on http://127.0.0.1:1\n');
  process.stdout.write('x'.repeat(1_000_000)); // one line of 1 MB, then more lines
  process.stdout.write('\nafter\n');
  for (let i = 0; i < 50; i++) process.stdout.write(`line ${i}\n`);
  setInterval(() => {}, 1000);
} else if (what === 'crash') {
  process.stdout.write('listening on http://127.0.0.1:2\n');
  setTimeout(() => process.exit(3), 50);
} else if (what === 'stubborn') {
  process.on('SIGTERM', () => process.stdout.write('ignoring SIGTERM\n'));
  process.stdout.write('listening on http://127.0.0.1:3\n');
  setInterval(() => {}, 1000);
}
