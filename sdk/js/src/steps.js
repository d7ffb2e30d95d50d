// Steps declared once: the listing (get-steps) and the dispatch
// (execute-step) come from the same declaration, and the arguments are
// checked against argsinfo before the step runs, as Ironic checks a manual
// step's arguments (ironic/conductor/steps.py, _validate_user_step). The
// wording of the errors is the Rust and Python SDKs'.
//
// Pure JavaScript (no contract imports): tested with `node --test`.

import { InvalidArgument, Unsupported } from './errors.js';

/** The step kinds Ironic drives. */
export const KINDS = ['clean', 'deploy', 'service'];

const OPTIONS = ['name', 'kind', 'priority', 'interface', 'rebootRequested', 'abortable', 'args', 'run'];

/**
 * Declare a step:
 *
 *   step({ name: 'update_firmware', kind: ['clean', 'service'], priority: 0,
 *          interface: 'management', abortable: true,
 *          args: { version: { description: 'firmware version', required: true } },
 *          run(node, ports, { version }) { ... } })
 *
 * `kind` defaults to 'clean', `priority` to 0 (never automatic),
 * `interface` to 'deploy'. `run` is called with `this` the manager, the
 * node (an object), the ports (an array) and the checked arguments; what
 * it returns (anything JSON can hold) is the step's result.
 */
export function step(spec) {
  if (spec === null || typeof spec !== 'object') throw new TypeError('step(): pass an object');
  const unknown = Object.keys(spec).filter((k) => !OPTIONS.includes(k));
  const name = spec.name;
  if (typeof name !== 'string' || !name) throw new TypeError(`step(): name must be a non-empty string`);
  if (unknown.length) {
    throw new TypeError(`step ${name}: unknown option(s) ${unknown.join(', ')} (options: ${OPTIONS.join(', ')})`);
  }
  const kinds = spec.kind === undefined ? ['clean'] : [].concat(spec.kind);
  const bad = kinds.filter((k) => !KINDS.includes(k));
  if (bad.length || !kinds.length) {
    throw new TypeError(`step ${name}: kind must be one of ${KINDS.join(', ')}, got ${JSON.stringify(spec.kind)}`);
  }
  const priority = spec.priority ?? 0;
  if (!Number.isInteger(priority)) throw new TypeError(`step ${name}: priority must be an integer`);
  if (typeof spec.run !== 'function') throw new TypeError(`step ${name}: run must be a function`);
  let args;
  if (spec.args !== undefined) {
    if (spec.args === null || typeof spec.args !== 'object') {
      throw new TypeError(`step ${name}: args must be an object of { name: description | { description, required } }`);
    }
    args = Object.entries(spec.args).map(([arg, info]) => {
      if (typeof info === 'string') return { name: arg, description: info, required: false };
      if (info === null || typeof info !== 'object') {
        throw new TypeError(`step ${name}: argument ${arg} must be a description or { description, required }`);
      }
      const extra = Object.keys(info).filter((k) => k !== 'description' && k !== 'required');
      if (extra.length) {
        throw new TypeError(`step ${name}: argument ${arg}: unknown keys ${extra.join(', ')} (an argument has description and required)`);
      }
      const description = info.description ?? '';
      const required = info.required ?? false;
      if (typeof description !== 'string' || typeof required !== 'boolean') {
        throw new TypeError(`step ${name}: argument ${arg}: description must be a string and required a boolean`);
      }
      return { name: arg, description, required };
    });
  }
  return Object.freeze({
    name,
    kinds,
    priority,
    interface: spec.interface ?? 'deploy',
    rebootRequested: spec.rebootRequested ?? false,
    abortable: spec.abortable,
    args,
    run: spec.run,
  });
}

/** Every required argument present (not null), every argument declared. */
export function checkArgs(spec, args) {
  const declared = spec.args ?? [];
  for (const a of declared) {
    if (a.required && (args[a.name] === undefined || args[a.name] === null)) {
      throw new InvalidArgument(`step ${spec.name}: missing required argument ${a.name} (${a.description})`);
    }
  }
  const names = declared.map((a) => a.name);
  for (const key of Object.keys(args)) {
    if (!names.includes(key)) {
      throw new InvalidArgument(
        `step ${spec.name}: unknown argument ${key}; its arguments are: ${names.length ? names.join(', ') : '(none)'}`,
      );
    }
  }
}

/** The steps declared on a manager class (`static steps = [step(...), ...]`). */
export function collect(cls) {
  const list = cls.steps ?? [];
  if (!Array.isArray(list)) throw new TypeError(`${cls.name}.steps must be an array of step(...)`);
  const seen = new Set();
  for (const s of list) {
    if (!s || typeof s.run !== 'function' || !Array.isArray(s.kinds)) {
      throw new TypeError(`${cls.name}.steps: every entry must be made by step({...})`);
    }
    for (const k of s.kinds) {
      const key = `${k} ${s.name}`;
      if (seen.has(key)) throw new TypeError(`${cls.name}.steps: ${k} step ${s.name} declared twice`);
      seen.add(key);
    }
  }
  return list;
}

/** The steps of `kind`, as contract records. */
export function listing(specs, kind) {
  return specs
    .filter((s) => s.kinds.includes(kind))
    .map((s) => ({
      name: s.name,
      priority: s.priority,
      interface: s.interface,
      rebootRequested: s.rebootRequested,
      abortable: s.abortable,
      argsinfo: s.args?.map((a) => ({ ...a })),
    }));
}

export function parseJson(what, text, empty) {
  if (text == null || !text.trim()) return empty;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new InvalidArgument(`${what} is not JSON: ${e.message}`);
  }
}

/** The `args` JSON object handed to execute-step. */
export function parseArgs(text) {
  const value = parseJson('step arguments', text, {});
  if (value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidArgument(`step arguments must be a JSON object, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Run step `name` of `kind` on `manager`; returns the step's result. */
export function runStep(manager, specs, kind, name, node, ports, args) {
  const spec = specs.find((s) => s.name === name && s.kinds.includes(kind));
  if (!spec) throw new Unsupported(name);
  checkArgs(spec, args);
  return spec.run.call(manager, node, ports, args);
}
