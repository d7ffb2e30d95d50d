// @NAME@: a hardware manager for ironic-wasm-agent (contract
// ironic:hardware@0.3.0). Every method not written here answers
// `unsupported`, so the agent asks the next manager in support order.

import {
  HardwareManager,
  SUPPORT_NONE,
  SUPPORT_SERVICE_PROVIDER,
  log,
  readTrimmed,
  reportProgress,
  step,
} from 'ironic-hardware';

// DMI sys_vendor of the machines this manager is for; null claims every machine.
const VENDOR = null;

export default class Manager extends HardwareManager {
  static id = '@ID@';
  static managerName = '@MANAGER_NAME@';
  static version = '1.0';

  static steps = [
    step({
      name: 'example_step',
      kind: 'clean',
      priority: 0,
      interface: 'deploy',
      args: { message: { description: 'text to log and return', required: true } },
      run(node, ports, { message }) {
        reportProgress(50, `example_step: ${message}`);
        log.info(`example_step: ${message}`);
        return { message, sys_vendor: readTrimmed('/sys/class/dmi/id/sys_vendor', '') };
      },
    }),
  ];

  evaluateHardwareSupport() {
    const vendor = readTrimmed('/sys/class/dmi/id/sys_vendor', '');
    return VENDOR !== null && vendor !== VENDOR ? SUPPORT_NONE : SUPPORT_SERVICE_PROVIDER;
  }
}
