// A child for test/node/config.test.ts: saves two configs in turn as fast as it can, as the panel does,
// saying "saved" after each, until killed.
import { loadConfig, saveConfig } from '../../src/node/config.ts';

const dir = process.argv[2]!;
const c = await loadConfig(dir);
for (let i = 0; ; i++) {
  c.services.serve.port = i % 2 ? 18080 : 8080;
  c.name = `k9-${'x'.repeat(i % 40)}`;
  await saveConfig(dir, c);
  process.stdout.write('saved\n');
}
