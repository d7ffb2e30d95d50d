"""Messages in the agent's log, tagged with the manager's name (``log``)."""

from ._bindings import wit


def _log(level, message):
    w = wit()
    w.log.log(getattr(w.log.Level, level), str(message))


def trace(message):
    _log("TRACE", message)


def debug(message):
    _log("DEBUG", message)


def info(message):
    _log("INFO", message)


def warn(message):
    _log("WARN", message)


warning = warn


def error(message):
    _log("ERROR", message)
