"""Steps declared once, with ``@step``: the listing (``get-steps``) and the
dispatch (``execute-step``) come from the same declaration, and the
arguments are checked against ``argsinfo`` before the step runs, as Ironic
checks a manual step's arguments (ironic/conductor/steps.py,
``_validate_user_step``). The wording of the errors is the Rust SDK's
(guest-sdk/src/steps.rs).

Pure Python: nothing here needs the component's bindings, so it is tested on
the build machine (sdk/python/tests).
"""

import inspect
import json

from .errors import InvalidArgument, Unsupported

#: The step kinds Ironic drives.
KINDS = ("clean", "deploy", "service")


class StepSpec:
    """One step as declared by ``@step``."""

    def __init__(self, func, name, kinds, priority, interface, reboot_requested,
                 abortable, args):
        self.func = func
        self.name = name
        self.kinds = kinds
        self.priority = priority
        self.interface = interface
        self.reboot_requested = reboot_requested
        self.abortable = abortable
        #: ``[(name, description, required)]`` in declaration order, or
        #: ``None`` to leave ``argsinfo`` out.
        self.args = args

    def argsinfo(self):
        return self.args

    def check_args(self, args):
        """Every required argument present (and not null), every argument
        declared; raises `InvalidArgument` naming the culprit."""
        declared = self.args or []
        for name, description, required in declared:
            if required and args.get(name) is None:
                raise InvalidArgument(
                    f"step {self.name}: missing required argument {name} ({description})"
                )
        names = [name for name, _, _ in declared]
        for key in args:
            if key not in names:
                raise InvalidArgument(
                    f"step {self.name}: unknown argument {key}; its arguments are: "
                    f"{', '.join(names) if names else '(none)'}"
                )


def _normalise_args(step_name, args):
    if args is None:
        return None
    out = []
    for name, info in args.items():
        if isinstance(info, str):
            description, required = info, False
        elif isinstance(info, dict):
            unknown = set(info) - {"description", "required"}
            if unknown:
                raise TypeError(
                    f"@step {step_name}: argument {name}: unknown keys {sorted(unknown)} "
                    "(an argument has 'description' and 'required')"
                )
            description = info.get("description", "")
            required = info.get("required", False)
        else:
            raise TypeError(
                f"@step {step_name}: argument {name} must be a description or "
                "{'description': ..., 'required': bool}"
            )
        if not isinstance(description, str) or not isinstance(required, bool):
            raise TypeError(
                f"@step {step_name}: argument {name}: description must be text and "
                "required a bool"
            )
        out.append((name, description, required))
    return out


def _check_signature(func, step_name, args):
    """The handler must accept ``(self, node, ports)`` and every declared
    argument as a keyword: caught when the module is imported (at build
    time), not on the first call."""
    params = inspect.signature(func).parameters
    positional = [
        p for p in params.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    has_var_positional = any(p.kind == p.VAR_POSITIONAL for p in params.values())
    if len(positional) < 3 and not has_var_positional:
        raise TypeError(
            f"@step {step_name}: {func.__qualname__} must take (self, node, ports, "
            "**args)"
        )
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return
    accepted = {
        p.name for p in list(params.values())[3:]
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    missing = [name for name, _, _ in (args or []) if name not in accepted]
    if missing:
        raise TypeError(
            f"@step {step_name}: {func.__qualname__} does not accept the declared "
            f"argument(s) {', '.join(missing)}"
        )


def step(kind="clean", *, name=None, priority=0, interface="deploy",
         reboot_requested=False, abortable=None, args=None):
    """Declare a method as a step.

    ``kind``: ``"clean"``, ``"deploy"``, ``"service"`` or several of them
    (a tuple). ``priority`` 0 never runs automatically. ``interface``: the
    Ironic interface owning the step (Ironic takes a manager's clean steps
    from the ``deploy`` interface). ``abortable``: ``None`` leaves the key
    out. ``args``: ``{name: description}`` or ``{name: {"description": ...,
    "required": bool}}``.

    The method is called as ``method(self, node, ports, **args)`` with the
    node (a dict), the ports (a list) and the checked arguments; its return
    value (anything JSON can hold, ``None`` for none) is the step's result.
    """
    kinds = (kind,) if isinstance(kind, str) else tuple(kind)

    def register(func):
        step_name = name or func.__name__
        bad = [k for k in kinds if k not in KINDS]
        if bad or not kinds:
            raise TypeError(
                f"@step {step_name}: kind must be one of {', '.join(KINDS)}, got {kind!r}"
            )
        if not isinstance(priority, int):
            raise TypeError(f"@step {step_name}: priority must be an int")
        normalised = _normalise_args(step_name, args)
        _check_signature(func, step_name, normalised)
        func.__ironic_step__ = StepSpec(
            func, step_name, kinds, priority, interface, reboot_requested,
            abortable, normalised,
        )
        return func

    return register


def collect(cls):
    """The steps declared on ``cls`` and its bases (a subclass's method of
    the same name replaces the base's)."""
    specs = {}
    for klass in reversed(cls.__mro__):
        for attr in vars(klass).values():
            spec = getattr(attr, "__ironic_step__", None)
            if isinstance(spec, StepSpec):
                for k in spec.kinds:
                    specs[(k, spec.name)] = spec
    return specs


def listing(specs, kind):
    """The steps of ``kind``, in declaration order."""
    return [s for (k, _), s in specs.items() if k == kind]


def parse_json(what, text, empty):
    if text is None or not text.strip():
        return empty
    try:
        return json.loads(text)
    except ValueError as e:
        raise InvalidArgument(f"{what} is not JSON: {e}") from None


def parse_args(text):
    """The ``args`` JSON object handed to ``execute-step``."""
    if text is None or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as e:
        raise InvalidArgument(f"step arguments are not JSON: {e}") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgument(
            f"step arguments must be a JSON object, got {json.dumps(value)}"
        )
    return value


def run(manager, specs, kind, name, node, ports, args):
    """Run step ``name`` of ``kind`` on ``manager`` with the parsed node,
    ports and arguments; returns the step's result."""
    spec = specs.get((kind, name))
    if spec is None:
        raise Unsupported(name)
    spec.check_args(args)
    return spec.func(manager, node, ports, **args)
