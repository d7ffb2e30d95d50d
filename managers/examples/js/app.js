// An example vendor hardware manager written in JavaScript with the
// ironic-hardware SDK (sdk/js).
//
// It is the kind of manager a hardware vendor ships next to the generic one:
//
// * it claims the machine (support 3, "service provider") only when the DMI
//   system vendor is the vendor's, and is not used at all otherwise;
// * it overrides one inventory call, get-system-vendor-info, reporting the
//   firmware version the vendor's own tool (`vendor-fw-update --query`) sees
//   instead of the one DMI carries; every other inventory call is the SDK's
//   default `unsupported`, so the generic manager answers it;
// * it offers a clean (and service) step `update_firmware` that runs the
//   vendor tool with the requested version, reports progress and returns a
//   JSON result.
//
// Everything the manager touches goes through the host's capabilities
// (machine, commands, progress, log), each declared in manifest.toml and
// granted by the operator.

import {
  Failed,
  HardwareManager,
  HostError,
  InvalidArgument,
  SUPPORT_NONE,
  SUPPORT_SERVICE_PROVIDER,
  Unsupported,
  log,
  readTrimmed,
  records,
  reportProgress,
  run,
  step,
} from 'ironic-hardware';

// The vendor this manager is for: DMI's sys_vendor (the default simulated
// machine's manufacturer).
const VENDOR = 'Dell Inc.';
// The vendor's firmware tool; declared in manifest.toml, granted by the operator.
const TOOL = 'vendor-fw-update';
const TOOL_TIMEOUT_MS = 30 * 60 * 1000;

// A DMI attribute, trimmed; '' when absent or not readable.
const dmi = (name) => readTrimmed(`/sys/class/dmi/id/${name}`, '');

// The firmware version the vendor tool reports (`current-version: X`).
function queryVersion() {
  const { stdout } = run(TOOL, ['--query'], { timeoutMs: 60_000 });
  for (const line of stdout.split('\n')) {
    const [key, ...rest] = line.split(':');
    const value = rest.join(':').trim();
    if (key.trim() === 'current-version' && value) return value;
  }
  throw new Failed(`${TOOL} --query printed no current-version line`);
}

export default class ExampleVendor extends HardwareManager {
  static id = 'ExampleVendorJsManager';
  static managerName = 'example_vendor_js';
  static version = '1.0';

  evaluateHardwareSupport() {
    if (dmi('sys_vendor') === VENDOR) {
      log.info(`${VENDOR} hardware: support level 3`);
      return SUPPORT_SERVICE_PROVIDER;
    }
    return SUPPORT_NONE;
  }

  // --- inventory: one override, the rest is the generic manager's ---

  getSystemVendorInfo() {
    let version;
    try {
      version = queryVersion();
    } catch (e) {
      if (!(e instanceof HostError || e instanceof Failed)) throw e;
      // No vendor tool (or it failed): let the next manager answer.
      log.warn(`vendor firmware version unknown (${e.message}); deferring`);
      throw new Unsupported('get-system-vendor-info: vendor tool unavailable');
    }
    return records.systemVendor({
      productName: dmi('product_name'),
      serialNumber: dmi('product_serial'),
      manufacturer: dmi('sys_vendor'),
      firmware: records.systemFirmware({ vendor: dmi('bios_vendor'), version, buildDate: dmi('bios_date') }),
    });
  }

  // --- steps ---

  static steps = [
    step({
      name: 'update_firmware',
      kind: ['clean', 'service'],
      priority: 0, // never runs automatically: only when asked for
      interface: 'management',
      abortable: true,
      args: { version: { description: 'firmware version to install, e.g. 2.19.0', required: true } },
      run(node, ports, { version }) {
        if (typeof version !== 'string' || !version.trim()) {
          throw new InvalidArgument(
            `update_firmware: missing required argument version (text, got ${JSON.stringify(version)})`,
          );
        }
        if (version.startsWith('-') || /\s/.test(version)) {
          throw new InvalidArgument(`update_firmware: invalid version ${JSON.stringify(version)}`);
        }

        reportProgress(0, 'checking the installed firmware');
        const previous = queryVersion();
        if (previous === version) {
          reportProgress(100, `firmware ${version} already installed`);
          return { updated: false, version, previous_version: previous };
        }

        reportProgress(10, `installing firmware ${version} (was ${previous})`);
        log.info(`update_firmware: ${previous} -> ${version}`);
        const out = run(TOOL, ['--install', version, '--component', 'bios', '--non-interactive'], {
          timeoutMs: TOOL_TIMEOUT_MS,
        });
        reportProgress(100, `firmware ${version} installed`);
        return { updated: true, version, previous_version: previous, tool_output: out.stdout.trim() };
      },
    }),
  ];
}
