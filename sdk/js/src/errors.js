// Errors a manager throws, and errors the host's capabilities throw.
//
// A manager never builds the contract's `manager-error` variant: it throws
// one of the ManagerError classes below (or lets a HostError propagate) and
// the SDK turns it into the variant, with the contract's exact case names
// (`invalid-argument`, not `invalidArgument`, which would make the agent
// see a trap instead of a 400).
//
// Pure JavaScript (no contract imports): tested with `node --test`.

export class ManagerError extends Error {
  /** The contract's variant case. */
  static variantCase = '';

  get variantCase() {
    return this.constructor.variantCase;
  }
}

/** This manager does not implement the call: the next manager answers. */
export class Unsupported extends ManagerError {
  static variantCase = 'unsupported';
}

/** Implemented, but not for this hardware: the next manager answers. */
export class Incompatible extends ManagerError {
  static variantCase = 'incompatible';
}

/** The arguments are wrong; reported as IPA's InvalidCommandParamsError. */
export class InvalidArgument extends ManagerError {
  static variantCase = 'invalid-argument';
}

/** The call failed; `errorType` is the IPA error class to report (optional). */
export class Failed extends ManagerError {
  static variantCase = 'failed';

  constructor(details, errorType = undefined) {
    super(details);
    this.errorType = errorType;
  }
}

/** A program exited with a status other than 0 (IPA's ProcessExecutionError). */
export class ProcessExecutionError extends Failed {
  constructor(cmd, exitCode, stdout, stderr) {
    const status = exitCode == null ? 'was killed by a signal' : `exited with ${exitCode}`;
    super(`${cmd.join(' ')} ${status}; stdout: ${stdout.trim()}; stderr: ${stderr.trim()}`);
    this.cmd = cmd;
    this.exitCode = exitCode;
    this.stdout = stdout;
    this.stderr = stderr;
  }
}

/**
 * A capability call the host refused or that failed. `kind` is the
 * contract's error case (`denied`, `not-found`, `checksum-mismatch`, ...),
 * `detail` the host's message, `what` the call. Uncaught, it fails the
 * manager call with "<what>: <kind>: <detail>".
 */
export class HostError extends Error {
  constructor(what, kind, detail) {
    super(`${what}: ${kind}: ${detail}`);
    this.what = what;
    this.kind = kind;
    this.detail = detail;
  }
}

/** Not both declared in the manifest and granted by the operator. */
export class Denied extends HostError {}

/** No such file, program, device, asset or scratch file. */
export class NotFound extends HostError {}

/** The HostError (subclass) for a capability error case. */
export function hostError(what, kind, detail) {
  const cls = { denied: Denied, 'not-found': NotFound }[kind] ?? HostError;
  return new cls(what, kind, detail);
}

/** An error thrown by a manager method as the contract's manager-error value. */
export function toVariant(call, e) {
  if (e instanceof Failed) {
    return { tag: 'failed', val: { errorType: e.errorType ?? undefined, details: e.message } };
  }
  if (e instanceof ManagerError) {
    return { tag: e.variantCase, val: e.message };
  }
  if (e instanceof HostError) {
    return { tag: 'failed', val: { errorType: undefined, details: e.message } };
  }
  // A bug in the manager: a clear failure instead of a trap.
  const what = e instanceof Error ? `${e.name}: ${e.message}` : `threw ${JSON.stringify(e)}`;
  return { tag: 'failed', val: { errorType: undefined, details: `${call}: ${what}` } };
}

/** A manager-error value (from `fallback`) as this SDK's exception. */
export function fromVariant(v) {
  switch (v.tag) {
    case 'unsupported':
      return new Unsupported(v.val);
    case 'incompatible':
      return new Incompatible(v.val);
    case 'invalid-argument':
      return new InvalidArgument(v.val);
    case 'failed':
      return new Failed(v.val.details, v.val.errorType ?? undefined);
    default:
      return new Failed(`unknown manager-error case ${v.tag}`);
  }
}
