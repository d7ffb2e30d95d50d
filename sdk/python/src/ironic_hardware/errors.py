"""Errors a manager raises, and errors the host's capabilities raise.

A manager never builds the contract's `manager-error` variant itself: it
raises one of the `ManagerError` subclasses below (or lets a `HostError`
propagate) and the SDK turns it into the right variant when the call
returns to the agent.

* `Unsupported` / `Incompatible`: the agent asks the next manager in support
  order (IPA's ``IncompatibleHardwareMethodError``).
* `InvalidArgument`: the caller gets the message (IPA's
  ``InvalidCommandParamsError``).
* `Failed`: the call fails with the message; ``error_type`` names the IPA
  error class to report (``None`` lets the agent pick the one for the call,
  e.g. ``CleaningError`` for a clean step).

Any other exception escaping a manager method becomes `Failed` with the
exception's type and message, so a bug shows up as a clear failure instead
of a trap.
"""


class ManagerError(Exception):
    """Base of the errors a manager method raises to answer with an error."""

    #: The contract's variant case (``unsupported``, ``invalid-argument``, ...).
    case = ""

    def __init__(self, message):
        super().__init__(message)
        self.message = str(message)


class Unsupported(ManagerError):
    """This manager does not implement the call: the next manager answers."""

    case = "unsupported"


class Incompatible(ManagerError):
    """Implemented, but not for this hardware: the next manager answers."""

    case = "incompatible"


class InvalidArgument(ManagerError):
    """The arguments are wrong; reported as ``InvalidCommandParamsError``."""

    case = "invalid-argument"


class Failed(ManagerError):
    """The call failed; ``error_type`` is the IPA error class to report."""

    case = "failed"

    def __init__(self, details, error_type=None):
        super().__init__(details)
        self.error_type = error_type


class ProcessExecutionError(Failed):
    """A program exited with a status other than 0 (IPA's
    ``processutils.ProcessExecutionError``); carries what it printed."""

    def __init__(self, cmd, exit_code, stdout, stderr):
        status = "was killed by a signal" if exit_code is None else f"exited with {exit_code}"
        super().__init__(
            f"{' '.join(cmd)} {status}; "
            f"stdout: {stdout.strip()}; stderr: {stderr.strip()}"
        )
        self.cmd = list(cmd)
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr


class HostError(Exception):
    """A capability call the host refused or that failed.

    ``kind`` is the contract's error case (``denied``, ``not-found``,
    ``timed-out``, ``checksum-mismatch``, ...), ``detail`` the host's
    message and ``what`` the call (e.g. ``vendor-tool --query``). Uncaught,
    it fails the manager call with ``"<what>: <kind>: <detail>"``.
    """

    def __init__(self, what, kind, detail):
        super().__init__(f"{what}: {kind}: {detail}")
        self.what = what
        self.kind = kind
        self.detail = detail


class Denied(HostError):
    """Not both declared in the manifest and granted by the operator."""


class NotFound(HostError):
    """No such file, program, device, asset or scratch file."""


_HOST_ERROR_CLASSES = {"denied": Denied, "not-found": NotFound}


def host_error(what, kind, detail):
    """The `HostError` (subclass) for a capability error case."""
    return _HOST_ERROR_CLASSES.get(kind, HostError)(what, kind, detail)
