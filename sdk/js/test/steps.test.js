// The SDK's pure parts (no contract imports), run by `node --test` from
// tests/tests/sdk_unit.rs: step declarations, argument checks, error variants.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Failed, InvalidArgument, ProcessExecutionError, Unsupported, fromVariant, toVariant } from '../src/errors.js';
import { collect, listing, parseArgs, runStep, step } from '../src/steps.js';

class Vendor {
  static steps = [
    step({
      name: 'flash',
      kind: ['clean', 'service'],
      interface: 'management',
      abortable: true,
      args: { version: { description: 'version', required: true }, force: 'skip checks' },
      run(node, ports, args) {
        return { self: this.constructor.name, node, args };
      },
    }),
  ];
}

test('listing carries argsinfo in declaration order, per kind', () => {
  const specs = collect(Vendor);
  assert.deepEqual(listing(specs, 'clean'), [
    {
      name: 'flash',
      priority: 0,
      interface: 'management',
      rebootRequested: false,
      abortable: true,
      argsinfo: [
        { name: 'version', description: 'version', required: true },
        { name: 'force', description: 'skip checks', required: false },
      ],
    },
  ]);
  assert.deepEqual(listing(specs, 'deploy'), []);
});

test('dispatch checks arguments before running, with this bound', () => {
  const specs = collect(Vendor);
  const m = new Vendor();
  assert.deepEqual(runStep(m, specs, 'service', 'flash', { uuid: 'n' }, [], { version: '2' }), {
    self: 'Vendor',
    node: { uuid: 'n' },
    args: { version: '2' },
  });
  assert.throws(() => runStep(m, specs, 'clean', 'flash', {}, [], {}), (e) =>
    e instanceof InvalidArgument && /missing required argument version/.test(e.message));
  assert.throws(() => runStep(m, specs, 'clean', 'flash', {}, [], { version: '2', bogus: 1 }), (e) =>
    e instanceof InvalidArgument && /unknown argument bogus; its arguments are: version, force/.test(e.message));
  assert.throws(() => runStep(m, specs, 'deploy', 'flash', {}, [], {}), Unsupported);
});

test('bad declarations fail when the module loads, naming the step', () => {
  assert.throws(() => step({ name: 'x', kind: 'cleaning', run() {} }), /step x: kind must be one of/);
  assert.throws(() => step({ name: 'x', run() {}, argsinfo: {} }), /unknown option\(s\) argsinfo/);
  assert.throws(() => step({ name: 'x' }), /run must be a function/);
});

test('errors become variants with the contract case names', () => {
  assert.deepEqual(toVariant('c', new InvalidArgument('bad')), { tag: 'invalid-argument', val: 'bad' });
  assert.deepEqual(toVariant('c', new Unsupported('get-cpus')), { tag: 'unsupported', val: 'get-cpus' });
  assert.deepEqual(toVariant('c', new Failed('boom', 'CleaningError')), {
    tag: 'failed',
    val: { errorType: 'CleaningError', details: 'boom' },
  });
  const p = new ProcessExecutionError(['tool', '-x'], 3, 'out\n', 'err\n');
  assert.equal(p.message, 'tool -x exited with 3; stdout: out; stderr: err');
  assert.deepEqual(toVariant('execute-step s', new TypeError('nope')), {
    tag: 'failed',
    val: { errorType: undefined, details: 'execute-step s: TypeError: nope' },
  });
  assert.ok(fromVariant({ tag: 'incompatible', val: 'x' }).constructor.variantCase === 'incompatible');
  assert.deepEqual(parseArgs(''), {});
  assert.throws(() => parseArgs('[1]'), InvalidArgument);
});
