// Build the JavaScript example manager: node build.mjs OUT.wasm
//
// componentize-js compiles app.js into a component for the
// `hardware-manager` world, then the manifest is appended as the custom
// section `ironic:manifest` (so the .wasm is all there is to deploy).
import { componentize } from '@bytecodealliance/componentize-js';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2];
if (!out) {
  console.error('usage: node build.mjs OUT.wasm');
  process.exit(2);
}

const { component } = await componentize({
  sourcePath: join(here, 'app.js'),
  witPath: join(here, '../../../wit/ironic-hardware-0.1.0'),
  worldName: 'hardware-manager',
  // The agent provides no wasi:http: without this the component imports it
  // (for fetch()) and the agent refuses to load it.
  disableFeatures: ['http', 'fetch-event'],
});

// A custom section: id 0, size, name, data (sizes as unsigned LEB128).
function leb128(n) {
  const bytes = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    bytes.push(b);
  } while (n);
  return Buffer.from(bytes);
}
function customSection(name, data) {
  const nameBytes = Buffer.from(name, 'utf8');
  const payload = Buffer.concat([leb128(nameBytes.length), nameBytes, data]);
  return Buffer.concat([Buffer.from([0]), leb128(payload.length), payload]);
}

const manifest = await readFile(join(here, 'manifest.toml'));
await mkdir(dirname(out), { recursive: true });
await writeFile(`${out}.tmp`, Buffer.concat([component, customSection('ironic:manifest', manifest)]));
await rename(`${out}.tmp`, out);
console.log(`built ${out} (${component.length} bytes)`);
