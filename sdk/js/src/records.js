// Inventory records with defaults for every optional field, and `extra`:
// keys added to a record in the inventory Ironic stores (as IPA's hardware
// manager plugins add keys). Sizes are numbers here; the contract's u64
// fields are converted to BigInt.

function extraJson(extra) {
  if (extra === undefined || extra === null) return undefined;
  if (typeof extra === 'string') {
    JSON.parse(extra);
    return extra;
  }
  if (typeof extra !== 'object' || Array.isArray(extra)) throw new TypeError('extra must be an object');
  return JSON.stringify(extra);
}

const big = (n) => (n === undefined || n === null ? undefined : BigInt(n));

export function cpu(modelName, { frequency = '', count = 0, architecture = '', flags = [], socketCount = 0, extra } = {}) {
  return { modelName, frequency, count, architecture, flags, socketCount, extra: extraJson(extra) };
}

export function memory({ total, physicalMb, extra } = {}) {
  return { total: big(total), physicalMb: big(physicalMb), extra: extraJson(extra) };
}

export function blockDevice(name, size, o = {}) {
  return {
    name,
    size: BigInt(size),
    model: o.model,
    rotational: o.rotational ?? false,
    wwn: o.wwn,
    serial: o.serial,
    vendor: o.vendor,
    wwnWithExtension: o.wwnWithExtension,
    wwnVendorExtension: o.wwnVendorExtension,
    hctl: o.hctl,
    byPath: o.byPath,
    logicalSectors: o.logicalSectors ?? 512,
    physicalSectors: o.physicalSectors ?? 512,
    tran: o.tran,
    extra: extraJson(o.extra),
  };
}

export function systemFirmware({ vendor = '', version = '', buildDate = '' } = {}) {
  return { vendor, version, buildDate };
}

export function systemVendor({ productName = '', serialNumber = '', manufacturer = '', firmware, extra } = {}) {
  return { productName, serialNumber, manufacturer, firmware: firmware ?? systemFirmware(), extra: extraJson(extra) };
}

export function bootInfo(currentBootMode, { pxeInterface, extra } = {}) {
  return { currentBootMode, pxeInterface, extra: extraJson(extra) };
}

/** `record` with `keys` added to its `extra`. */
export function withExtra(record, keys) {
  const current = record.extra ? JSON.parse(record.extra) : {};
  return { ...record, extra: JSON.stringify({ ...current, ...keys }) };
}

/** `lldp`: [[tlvType, hexValue], ...] or undefined. */
export function networkInterface(name, macAddress, o = {}) {
  return {
    name,
    macAddress,
    ipv4Address: o.ipv4Address,
    ipv6Address: o.ipv6Address,
    hasCarrier: o.hasCarrier ?? false,
    lldp: o.lldp?.map(([tlvType, value]) => ({ tlvType, value })),
    vendor: o.vendor,
    product: o.product,
    clientId: o.clientId,
    biosdevname: o.biosdevname,
    speedMbps: big(o.speedMbps),
    pciAddress: o.pciAddress,
    driver: o.driver,
    extra: extraJson(o.extra),
  };
}
