// The base class of a manager and its export as the component's
// ironic:hardware/manager interface.

import { Failed, Unsupported, toVariant } from './errors.js';
import { collect, listing, parseArgs, parseJson, runStep } from './steps.js';

/** Support levels (IPA's HardwareSupport). */
export const SUPPORT_NONE = 0;
export const SUPPORT_GENERIC = 1;
export const SUPPORT_MAINLINE = 2;
export const SUPPORT_SERVICE_PROVIDER = 3;

/**
 * Subclass it, set `static id`, `static managerName` and `static version`,
 * implement evaluateHardwareSupport(), declare `static steps = [step(...)]`
 * and override the inventory methods your hardware needs. Every other
 * method throws Unsupported, so the agent asks the next manager.
 *
 * `id` plays the role of IPA's class name (it keys step maps);
 * `managerName` and `version` are what Ironic sees in
 * hardware_manager_version.
 */
export class HardwareManager {
  evaluateHardwareSupport() {
    throw new Failed(`${this.constructor.name} does not implement evaluateHardwareSupport()`);
  }
  getCpus() {
    throw new Unsupported('get-cpus');
  }
  getMemory() {
    throw new Unsupported('get-memory');
  }
  listBlockDevices() {
    throw new Unsupported('list-block-devices');
  }
  listNetworkInterfaces() {
    throw new Unsupported('list-network-interfaces');
  }
  getBmcAddress() {
    throw new Unsupported('get-bmc-address');
  }
  getBmcV6address() {
    throw new Unsupported('get-bmc-v6address');
  }
  getBmcMac() {
    throw new Unsupported('get-bmc-mac');
  }
  getSystemVendorInfo() {
    throw new Unsupported('get-system-vendor-info');
  }
  getBootInfo() {
    throw new Unsupported('get-boot-info');
  }
  /** `node`: the node Ironic sent (an object) or null. */
  getOsInstallDevice(node) {
    throw new Unsupported('get-os-install-device');
  }
  /** The steps of `kind`: by default those in `static steps`. An override may filter by node. */
  getSteps(kind, node, ports) {
    return listing(collect(this.constructor), kind);
  }
  /** Run a declared step, its arguments checked first. */
  executeStep(kind, name, node, ports, args) {
    return runStep(this, collect(this.constructor), kind, name, node, ports, args);
  }
}

function guard(call, fn) {
  try {
    return fn();
  } catch (e) {
    // Thrown plain: the bindings pass a thrown non-Error value as the err case.
    throw toVariant(call, e);
  }
}

/** Checks `cls` (at build time, naming what is missing) and returns the `manager` export. */
export function exportManager(cls) {
  if (typeof cls !== 'function' || !(cls.prototype instanceof HardwareManager)) {
    throw new TypeError(`the default export must be a subclass of HardwareManager, got ${String(cls)}`);
  }
  const examples = { id: 'VendorHardwareManager', managerName: 'vendor_hardware_manager', version: '1.0' };
  for (const attr of ['id', 'managerName', 'version']) {
    const v = cls[attr];
    if (typeof v !== 'string' || !v.trim()) {
      throw new TypeError(`${cls.name}: static ${attr} must be a non-empty string (e.g. '${examples[attr]}')`);
    }
  }
  if (cls.prototype.evaluateHardwareSupport === HardwareManager.prototype.evaluateHardwareSupport) {
    throw new TypeError(`${cls.name} must implement evaluateHardwareSupport()`);
  }
  collect(cls);

  let instance;
  const me = () => (instance ??= new cls());
  const simple = (call, method) => () => guard(call, () => me()[method]());
  return {
    info: () => guard('info', () => ({ id: cls.id, name: cls.managerName, version: cls.version })),
    evaluateHardwareSupport: () =>
      guard('evaluate-hardware-support', () => {
        const level = me().evaluateHardwareSupport();
        if (!Number.isInteger(level) || level < 0) {
          throw new TypeError(`support level must be an integer >= 0, got ${JSON.stringify(level)}`);
        }
        return level;
      }),
    getCpus: simple('get-cpus', 'getCpus'),
    getMemory: simple('get-memory', 'getMemory'),
    listBlockDevices: simple('list-block-devices', 'listBlockDevices'),
    listNetworkInterfaces: simple('list-network-interfaces', 'listNetworkInterfaces'),
    getBmcAddress: simple('get-bmc-address', 'getBmcAddress'),
    getBmcV6address: simple('get-bmc-v6address', 'getBmcV6address'),
    getBmcMac: simple('get-bmc-mac', 'getBmcMac'),
    getSystemVendorInfo: simple('get-system-vendor-info', 'getSystemVendorInfo'),
    getBootInfo: simple('get-boot-info', 'getBootInfo'),
    getOsInstallDevice: (node) =>
      guard('get-os-install-device', () =>
        me().getOsInstallDevice(node == null ? null : parseJson('node', node, null)),
      ),
    getSteps: (kind, node, ports) =>
      guard('get-steps', () => me().getSteps(kind, parseJson('node', node, {}), parseJson('ports', ports, []))),
    executeStep: (kind, name, node, ports, args) =>
      guard(`execute-step ${name}`, () => {
        const result = me().executeStep(
          kind,
          name,
          parseJson('node', node, {}),
          parseJson('ports', ports, []),
          parseArgs(args),
        );
        const text = JSON.stringify(result === undefined ? null : result);
        if (text === undefined) throw new Failed(`step ${name}: result is not JSON-serialisable`);
        return text;
      }),
  };
}
