"""Programs the manager declared and the operator granted (``commands``):
no shell, an environment of ``PATH``, ``LC_ALL=C`` and the declared
variables only."""

from ._bindings import call, wit
from .errors import ProcessExecutionError


class Completed:
    """What a program did: ``exit_code`` (``None`` when killed by a signal),
    ``stdout`` and ``stderr`` as text."""

    def __init__(self, cmd, exit_code, stdout, stderr):
        self.cmd = cmd
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr

    def __repr__(self):
        return f"Completed({self.cmd!r}, exit_code={self.exit_code!r})"


def run(program, *args, env=None, in_scratch=False, stdin=None, timeout_ms=None,
        check=True):
    """Run ``program`` with ``args`` (IPA's ``utils.execute``).

    ``env``: extra environment variables (each name declared in
    ``[commands] env`` and granted); ``in_scratch``: run in the call's
    scratch space; ``stdin``: bytes or text; ``timeout_ms``: capped by the
    host at the call's remaining time.

    Returns a `Completed`. With ``check`` (the default) anything but exit
    status 0 raises `ProcessExecutionError` carrying stdout and stderr. A
    program that cannot run (denied, not installed, timed out) raises a
    `HostError` naming the command line.
    """
    w = wit()
    argv = [str(a) for a in args]
    if isinstance(stdin, str):
        stdin = stdin.encode("utf-8")
    request = w.commands.RunRequest(
        program=program,
        args=argv,
        stdin=stdin,
        timeout_ms=timeout_ms,
        env=[(str(k), str(v)) for k, v in (env or {}).items()],
        in_scratch=bool(in_scratch),
    )
    cmd = [program, *argv]
    out = call(" ".join(cmd), w.commands.run_with, request)
    done = Completed(
        cmd,
        out.exit_code,
        out.stdout.decode("utf-8", "replace"),
        out.stderr.decode("utf-8", "replace"),
    )
    if check and done.exit_code != 0:
        raise ProcessExecutionError(cmd, done.exit_code, done.stdout, done.stderr)
    return done
