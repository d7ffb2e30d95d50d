// An example vendor hardware manager written in JavaScript.
//
// It is the kind of manager a hardware vendor ships next to the generic one:
//
// * it claims the machine (support 3, "service provider") only when the DMI
//   system vendor is the vendor's, and is not used at all otherwise;
// * it overrides one inventory call, get-system-vendor-info, reporting the
//   firmware version the vendor's own tool (`vendor-fw-update --query`) sees
//   instead of the one DMI carries; every other inventory call answers
//   `unsupported` so the generic manager answers it;
// * it offers a clean (and service) step `update_firmware` that runs the
//   vendor tool with the requested version, reports progress and returns a
//   JSON result.
//
// Everything the manager touches goes through the host's capabilities
// (machine, commands, progress, log), each declared in manifest.toml and
// granted by the operator.

import { readFile } from 'ironic:hardware/machine@0.1.0';
import { run } from 'ironic:hardware/commands@0.1.0';
import { log } from 'ironic:hardware/log@0.1.0';
import { report } from 'ironic:hardware/progress@0.1.0';

// The vendor this manager is for: DMI's sys_vendor (the default simulated
// machine's manufacturer).
const VENDOR = 'Dell Inc.';
// The vendor's firmware tool; declared in manifest.toml, granted by the operator.
const TOOL = 'vendor-fw-update';
const TOOL_TIMEOUT_MS = 30 * 60 * 1000;

const SUPPORT_NONE = 0;
const SUPPORT_SERVICE_PROVIDER = 3;

// A `result<_, manager-error>` export answers its error case by throwing the
// variant value itself.
const unsupported = (what) => ({ tag: 'unsupported', val: what });
const invalid = (why) => ({ tag: 'invalid-argument', val: why });
const failed = (details, errorType) => ({ tag: 'failed', val: { errorType, details } });

const decoder = new TextDecoder();

// An import returning `result<T, E>` throws on `err`; the variant is `e.payload`.
function describe(e) {
  const p = e && e.payload;
  return p ? `${p.tag}: ${p.val}` : String(e);
}

// A DMI attribute, trimmed; '' when absent or not readable.
function dmi(name) {
  try {
    return decoder.decode(readFile(`/sys/class/dmi/id/${name}`)).trim();
  } catch (e) {
    if (e && e.payload && e.payload.tag === 'denied') {
      // Forgotten grant: say so, or the manager just looks unused.
      log('warn', `cannot read DMI ${name}: ${describe(e)}`);
    }
    return '';
  }
}

// Run the vendor tool: { code, stdout, stderr }, or throw a `failed` error.
function runTool(args, timeoutMs = TOOL_TIMEOUT_MS) {
  let out;
  try {
    out = run(TOOL, args, undefined, timeoutMs);
  } catch (e) {
    throw failed(`${TOOL} ${args.join(' ')}: ${describe(e)}`);
  }
  return {
    code: out.exitCode,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
}

// The firmware version the vendor tool reports (`current-version: X`).
function queryVersion() {
  const { code, stdout, stderr } = runTool(['--query'], 60_000);
  if (code !== 0) {
    throw failed(`${TOOL} --query exited with ${code}: ${stderr.trim()}`);
  }
  for (const line of stdout.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0 && line.slice(0, i).trim() === 'current-version' && line.slice(i + 1).trim()) {
      return line.slice(i + 1).trim();
    }
  }
  throw failed(`${TOOL} --query printed no current-version line`);
}

function updateFirmware(argsJson) {
  let args;
  try {
    args = argsJson ? JSON.parse(argsJson) : {};
  } catch (e) {
    throw invalid(`update_firmware: arguments are not JSON: ${e.message}`);
  }
  const version = args && typeof args === 'object' ? args.version : undefined;
  if (typeof version !== 'string' || !version.trim()) {
    throw invalid('update_firmware: missing required argument version');
  }
  if (version.startsWith('-') || /\s/.test(version)) {
    throw invalid(`update_firmware: invalid version ${JSON.stringify(version)}`);
  }

  report(0, 'checking the installed firmware');
  const previous = queryVersion();
  if (previous === version) {
    report(100, `firmware ${version} already installed`);
    return JSON.stringify({ updated: false, version, previous_version: previous });
  }

  report(10, `installing firmware ${version} (was ${previous})`);
  log('info', `update_firmware: ${previous} -> ${version}`);
  const { code, stdout, stderr } = runTool([
    '--install', version, '--component', 'bios', '--non-interactive',
  ]);
  if (code !== 0) {
    throw failed(`${TOOL} exited with ${code}: ${stderr.trim() || stdout.trim()}`);
  }
  report(100, `firmware ${version} installed`);
  return JSON.stringify({
    updated: true,
    version,
    previous_version: previous,
    tool_output: stdout.trim(),
  });
}

// The `ironic:hardware/manager` interface: one function per WIT function,
// names in camelCase.
export const manager = {
  info() {
    return { id: 'ExampleVendorJsManager', name: 'example_vendor_js', version: '1.0' };
  },

  evaluateHardwareSupport() {
    if (dmi('sys_vendor') === VENDOR) {
      log('info', `${VENDOR} hardware: support level 3`);
      return SUPPORT_SERVICE_PROVIDER;
    }
    return SUPPORT_NONE;
  },

  // --- inventory: one override, the rest is the generic manager's ---

  getSystemVendorInfo() {
    let version;
    try {
      version = queryVersion();
    } catch (e) {
      // No vendor tool (or it failed): let the next manager answer.
      log('warn', `vendor firmware version unknown (${(e && e.val && e.val.details) || e}); deferring`);
      throw unsupported('get-system-vendor-info: vendor tool unavailable');
    }
    return {
      productName: dmi('product_name'),
      serialNumber: dmi('product_serial'),
      manufacturer: dmi('sys_vendor'),
      firmware: { vendor: dmi('bios_vendor'), version, buildDate: dmi('bios_date') },
    };
  },

  getCpus() { throw unsupported('get-cpus'); },
  getMemory() { throw unsupported('get-memory'); },
  listBlockDevices() { throw unsupported('list-block-devices'); },
  listNetworkInterfaces() { throw unsupported('list-network-interfaces'); },
  getBmcAddress() { throw unsupported('get-bmc-address'); },
  getBmcV6address() { throw unsupported('get-bmc-v6address'); },
  getBmcMac() { throw unsupported('get-bmc-mac'); },
  getBootInfo() { throw unsupported('get-boot-info'); },
  getOsInstallDevice(_node) { throw unsupported('get-os-install-device'); },

  // --- steps ---

  getSteps(kind, _node, _ports) {
    if (kind !== 'clean' && kind !== 'service') {
      return [];
    }
    return [{
      name: 'update_firmware',
      priority: 0, // never runs automatically: only when asked for
      interface: 'management',
      rebootRequested: false,
      abortable: true,
      argsinfo: [
        { name: 'version', description: 'firmware version to install, e.g. 2.19.0', required: true },
      ],
    }];
  },

  executeStep(_kind, name, _node, _ports, args) {
    if (name !== 'update_firmware') {
      throw unsupported(name);
    }
    return updateFirmware(args);
  },
};
