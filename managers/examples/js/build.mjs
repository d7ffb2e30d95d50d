// Build the JavaScript example manager: node build.mjs OUT.wasm
// (the SDK's build command, with this directory's app and manifest).
import { build } from 'ironic-hardware/build';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2];
if (!out) {
  console.error('usage: node build.mjs OUT.wasm');
  process.exit(2);
}
try {
  await build({ app: join(here, 'app.js'), out, manifest: join(here, 'manifest.toml') });
} catch (e) {
  console.error(`build.mjs: ${e.message}`);
  process.exit(1);
}
