// Write an Ironic hardware manager in JavaScript, as a WebAssembly
// component for ironic-wasm-agent (contract ironic:hardware@0.3.0).
//
//   import { HardwareManager, step, run, readTrimmed, SUPPORT_NONE,
//            SUPPORT_SERVICE_PROVIDER } from 'ironic-hardware';
//
//   export default class Vendor extends HardwareManager {
//     static id = 'VendorHardwareManager';
//     static managerName = 'vendor_hardware_manager';
//     static version = '1.0';
//     static steps = [
//       step({ name: 'update_firmware', interface: 'management', abortable: true,
//              args: { version: { description: 'firmware version', required: true } },
//              run(node, ports, { version }) {
//                run('vendor-flash', ['--version', version]); // throws on a non-zero exit
//                return { installed: version };
//              } }),
//     ];
//     evaluateHardwareSupport() {
//       return readTrimmed('/sys/class/dmi/id/sys_vendor') === 'Example Corp'
//         ? SUPPORT_SERVICE_PROVIDER : SUPPORT_NONE;
//     }
//   }
//
// Build it (componentize-js with the bundled contract, manifest embedded):
//   npx ironic-hardware-build app.js -o vendor.wasm --manifest manifest.toml
//
// The guide: docs/managers/javascript.md in the ironic-wasm-agent repository.

export * from './errors.js';
export { step, KINDS } from './steps.js';
export * from './manager.js';
export * as records from './records.js';
export {
  assets,
  fallback,
  fetch,
  listBlockDevices,
  log,
  machine,
  readText,
  readTrimmed,
  reportDeviceProgress,
  reportProgress,
  run,
  scratch,
} from './host.js';

/** The contract version this SDK builds components for. */
export const CONTRACT_VERSION = '0.3.0';

/** The node's root device hints (properties.root_device), {} when none. */
export function rootDeviceHints(node) {
  const hints = node?.properties?.root_device;
  return hints && typeof hints === 'object' && !Array.isArray(hints) ? hints : {};
}

/** The MAC addresses of Ironic's ports (lower case), in order. */
export function portMacs(ports) {
  return (Array.isArray(ports) ? ports : [])
    .filter((p) => p && typeof p === 'object')
    .map((p) => String(p.address ?? '').toLowerCase());
}
