// The host's capabilities (contract ironic:hardware@0.3.0 imports), with
// their errors thrown as this SDK's HostError / ManagerError classes.
// Each needs its capability declared in the manifest and granted.

import * as assetsApi from 'ironic:hardware/assets@0.3.0';
import * as commandsApi from 'ironic:hardware/commands@0.3.0';
import * as fallbackApi from 'ironic:hardware/fallback@0.3.0';
import * as fetchApi from 'ironic:hardware/fetch@0.3.0';
import * as logApi from 'ironic:hardware/log@0.3.0';
import * as machineApi from 'ironic:hardware/machine@0.3.0';
import * as progressApi from 'ironic:hardware/progress@0.3.0';
import * as scratchApi from 'ironic:hardware/scratch@0.3.0';

import { fromVariant, hostError, ProcessExecutionError } from './errors.js';

const decoder = new TextDecoder();
const encoder = new TextEncoder();
/** Largest read the host answers at once. */
const MAX_READ = 16 << 20;

/** `fn(...args)`; an import's error (`e.payload`, a variant) thrown as a HostError naming `what`. */
export function call(what, fn, ...args) {
  try {
    return fn(...args);
  } catch (e) {
    const p = e && e.payload;
    if (p && typeof p.tag === 'string') throw hostError(what, p.tag, p.val);
    throw e;
  }
}

function bytes(data) {
  return typeof data === 'string' ? encoder.encode(data) : data;
}

// --- log and progress ---

export const log = {
  trace: (m) => logApi.log('trace', String(m)),
  debug: (m) => logApi.log('debug', String(m)),
  info: (m) => logApi.log('info', String(m)),
  warn: (m) => logApi.log('warn', String(m)),
  error: (m) => logApi.log('error', String(m)),
};

/** Progress of the running step (`percent` 0-100 or null). */
export function reportProgress(percent, message) {
  progressApi.report(percent == null ? undefined : Math.round(percent), String(message));
}

/** Progress of one device within the step. */
export function reportDeviceProgress(device, percent, message) {
  progressApi.reportDevice(device, percent == null ? undefined : Math.round(percent), String(message));
}

// --- machine (read-only view, absolute paths) ---

export const machine = {
  readBytes: (path) => call(path, machineApi.readFile, path),
  readText: (path) => decoder.decode(call(path, machineApi.readFile, path)),
  listDir: (path) => call(path, machineApi.listDir, path),
  readLink: (path) => call(path, machineApi.readLink, path),
  /** The kind of the entry (following links), or null when there is none. */
  kind(path) {
    try {
      return call(path, machineApi.kind, path);
    } catch (e) {
      if (e.kind === 'not-found') return null;
      throw e;
    }
  },
  exists: (path) => machine.kind(path) !== null,
  removeFile: (path) => call(path, machineApi.removeFile, path),
  networkAddresses: () => call('network-addresses', machineApi.networkAddresses),
};

/** A file's text (throws HostError: NotFound, Denied, ...). */
export function readText(path) {
  return machine.readText(path);
}

/** A file's text, trimmed; `fallback` when absent, unreadable or empty (a denied read is logged). */
export function readTrimmed(path, fallbackValue = undefined) {
  try {
    return machine.readText(path).trim() || fallbackValue;
  } catch (e) {
    if (e.kind === 'denied') log.warn(`cannot read ${path}: ${e.message}`);
    if (e.kind) return fallbackValue;
    throw e;
  }
}

// --- commands ---

/**
 * Run a program declared in the manifest and granted (IPA's
 * utils.execute): `run('vendor-tool', ['--query'], { env, inScratch,
 * stdin, timeoutMs, check })`. Returns `{ cmd, exitCode, stdout, stderr }`
 * (text). With `check` (the default) anything but exit status 0 throws
 * ProcessExecutionError carrying stdout and stderr; a program that cannot
 * run throws HostError naming the command line.
 */
export function run(program, args = [], opts = {}) {
  const argv = args.map(String);
  const cmd = [program, ...argv];
  const out = call(cmd.join(' '), commandsApi.runWith, {
    program,
    args: argv,
    stdin: opts.stdin === undefined ? undefined : bytes(opts.stdin),
    timeoutMs: opts.timeoutMs,
    env: Object.entries(opts.env ?? {}).map(([k, v]) => [String(k), String(v)]),
    inScratch: Boolean(opts.inScratch),
  });
  const done = {
    cmd,
    exitCode: out.exitCode ?? null,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
  if ((opts.check ?? true) && done.exitCode !== 0) {
    throw new ProcessExecutionError(cmd, done.exitCode, done.stdout, done.stderr);
  }
  return done;
}

// --- scratch, fetch, assets ---

function readAll(what, read, size, name) {
  const total = Number(size(name));
  const parts = [];
  let offset = 0;
  while (offset < total) {
    const chunk = call(what, read, name, BigInt(offset), Math.min(total - offset, MAX_READ));
    if (!chunk.length) break;
    parts.push(chunk);
    offset += chunk.length;
  }
  const out = new Uint8Array(offset);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** The manager's private scratch directory, wiped when the call ends. */
export const scratch = {
  path: () => call('scratch path', scratchApi.path),
  filePath: (name) => call(`scratch ${name}`, scratchApi.filePath, name),
  write: (name, data, offset = 0) => call(`scratch ${name}`, scratchApi.write, name, BigInt(offset), bytes(data)),
  size: (name) => Number(call(`scratch ${name}`, scratchApi.size, name)),
  read: (name) => readAll(`scratch ${name}`, scratchApi.read, (n) => scratch.size(n), name),
  readText: (name) => decoder.decode(scratch.read(name)),
  remove: (name) => call(`scratch ${name}`, scratchApi.remove, name),
  listFiles: () => call('scratch list', scratchApi.listFiles),
};

/**
 * HTTP(S) GET `url` (granted in [fetch] urls) into scratch file `name`.
 * With `sha256` the digest is checked before this returns (a mismatch
 * throws HostError kind `checksum-mismatch` and leaves no file). Returns
 * `{ name, size, sha256, path }`.
 */
export function fetch(url, name, { sha256, maxBytes } = {}) {
  const got = call(`fetch ${url}`, fetchApi.get, url, name, sha256, maxBytes == null ? undefined : BigInt(maxBytes));
  return { name: got.name, size: Number(got.size), sha256: got.sha256, path: scratch.filePath(got.name) };
}

/** Files shipped beside the manager, listed with digests in its manifest. */
export const assets = {
  names: () => assetsApi.names(),
  path: (name) => call(`asset ${name}`, assetsApi.path, name),
  size: (name) => Number(call(`asset ${name}`, assetsApi.size, name)),
  read: (name) => readAll(`asset ${name}`, assetsApi.read, (n) => assets.size(n), name),
  readText: (name) => decoder.decode(assets.read(name)),
};

// --- fallback: the next manager's answer (IPA's dispatch_to_managers) ---

function next(name, ...args) {
  try {
    return fallbackApi[name](...args);
  } catch (e) {
    const p = e && e.payload;
    if (p && typeof p.tag === 'string') throw fromVariant(p);
    throw e;
  }
}

/**
 * The same inventory call answered by the managers after this one in
 * support order (needs `fallback = true` in the manifest). Throws
 * Unsupported when none answers.
 */
export const fallback = {
  getCpus: () => next('getCpus'),
  getMemory: () => next('getMemory'),
  listBlockDevices: () => next('listBlockDevices'),
  listNetworkInterfaces: () => next('listNetworkInterfaces'),
  getBmcAddress: () => next('getBmcAddress'),
  getBmcV6address: () => next('getBmcV6address'),
  getBmcMac: () => next('getBmcMac'),
  getSystemVendorInfo: () => next('getSystemVendorInfo'),
  getBootInfo: () => next('getBootInfo'),
  getOsInstallDevice: (node) => next('getOsInstallDevice', node == null ? undefined : JSON.stringify(node)),
};

/** The block devices as the next manager in support order lists them. */
export function listBlockDevices() {
  return fallback.listBlockDevices();
}
