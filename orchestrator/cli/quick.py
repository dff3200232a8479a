"""SwarmSH's per-operation commands without typer: ``claim``, ``add``, ``progress`` and
``complete`` in the forms scripts run them, parsed here in a few microseconds.

Scripts start one process per operation, and importing typer and building a command
is a third of such a process's life. This parser accepts only a strict subset (the
positional arguments, the global options and the few options listed in ``SPECS``)
and hands anything else, including ``--help`` and every mistake, to the typer
command line, which stays the one place that explains usage errors. Both call the
same functions in ``items.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from orchestrator.cli import items
from orchestrator.context import Context
from orchestrator.records import ClaimFilter

# Global options (the root group's, also accepted after the command) and their envvars.
_GLOBAL = {"--store": "store", "--config": "config", "-c": "config"}
_GLOBAL_ENV = {"store": "SWARM_STORE", "config": "SWARM_CONFIG"}


class Spec:
    """One command's form. A plain class, not a dataclass: building a dataclass compiles
    its methods at import, a cost every one-shot process would pay (bench/cli_bench.py)."""

    __slots__ = ("env", "flags", "integers", "positional", "required", "run", "values")

    def __init__(
        self,
        run: Callable[..., None],
        positional: tuple[str, ...],  # names, in order
        required: int,  # how many of them must be given
        *,
        integers: frozenset[str] = frozenset(),
        values: dict[str, str] | None = None,  # option -> parameter
        flags: dict[str, str] | None = None,  # flag -> parameter
        env: dict[str, str] | None = None,  # parameter -> envvar (typer's envvar)
    ) -> None:
        self.run = run
        self.positional = positional
        self.required = required
        self.integers = integers
        self.values = values or {}
        self.flags = flags or {}
        self.env = env or {}


def _claim(context: Context, next_item: bool = False, **given: Any) -> None:
    if next_item:
        items.claim_next(context, ClaimFilter(), **given)
    else:
        items.claim_new(context, **given)


_JSON = {"--json": "as_json"}
_QUIET = {"--quiet": "quiet", "-q": "quiet"}
_AGENT = {"--agent-id": "agent_id"}
_AGENT_ENV = {"agent_id": "AGENT_ID"}

SPECS: dict[str, Spec] = {
    "claim": Spec(
        _claim,
        ("work_type", "description", "priority", "team"),
        0,
        values={"--payload": "payload", **_AGENT},
        flags={"--next": "next_item", **_JSON, **_QUIET},
        env=_AGENT_ENV,
    ),
    "add": Spec(
        items.add,
        ("work_type", "description", "priority", "team"),
        2,
        values={"--payload": "payload", "--key": "key"},
        flags={**_JSON, **_QUIET},
    ),
    "progress": Spec(
        items.progress,
        ("work_id", "percent", "status"),
        2,
        integers=frozenset({"percent"}),
        values=_AGENT,
        flags=_JSON,
        env=_AGENT_ENV,
    ),
    "complete": Spec(
        items.complete,
        ("work_id", "status", "story_points"),
        1,
        integers=frozenset({"story_points"}),
        values={"--result": "result", **_AGENT},
        flags=_JSON,
        env=_AGENT_ENV,
    ),
}


# SwarmSH's names for claim (cli/swarmsh.py gives typer the same aliases).
SPECS["claim-fast"] = SPECS["claim-slow"] = SPECS["claim"]


class _Fallback(Exception):
    """Not a form this parser takes: the typer command line handles it."""


class Parsed:
    __slots__ = ("arguments", "context_args", "spec")

    def __init__(
        self, spec: Spec, context_args: dict[str, str | None], arguments: dict[str, Any]
    ) -> None:
        self.spec = spec
        self.context_args = context_args
        self.arguments = arguments

    def __call__(self) -> None:
        context = Context(**self.context_args)
        try:
            self.spec.run(context, **self.arguments)
        finally:
            context.close()


def parse(argv: list[str]) -> Parsed | None:
    """The command ``argv`` asks for when it is a form this module takes, else None."""
    try:
        return _parse(argv)
    except _Fallback:
        return None


def _parse(argv: list[str]) -> Parsed:
    globals_: dict[str, str | None] = {}
    rest = iter(argv)
    for token in rest:  # global options may come before the command's name
        name, has_value, inline = token.partition("=")
        if name not in _GLOBAL:
            break
        value = inline if has_value else next(rest, None)
        if value is None or (not has_value and value.startswith("-")):
            raise _Fallback
        globals_[_GLOBAL[name]] = value
    else:
        raise _Fallback
    spec = SPECS.get(token)
    if spec is None:
        raise _Fallback
    arguments: dict[str, Any] = {}
    positional: list[str] = []
    for token in rest:
        if not token.startswith("-") or token == "-":
            positional.append(token)
            continue
        name, has_value, inline = token.partition("=")
        if name in _GLOBAL or name in spec.values:
            value = inline if has_value else next(rest, None)
            if value is None or (not has_value and value.startswith("-")):
                raise _Fallback
            if name in _GLOBAL:
                globals_[_GLOBAL[name]] = value
            else:
                arguments[spec.values[name]] = value
        elif token in spec.flags:
            arguments[spec.flags[token]] = True
        else:
            raise _Fallback  # --help, --, -x, a negative number: typer's to answer
    if not spec.required <= len(positional) <= len(spec.positional):
        raise _Fallback
    if arguments.get("next_item") and (positional or "payload" in arguments):
        raise _Fallback  # claim --next with an item's fields: typer's message
    for name, value in zip(spec.positional, positional, strict=False):
        arguments[name] = _integer(value) if name in spec.integers else value
    for parameter, envvar in spec.env.items():
        if parameter not in arguments:
            arguments[parameter] = os.environ.get(envvar) or None
    for parameter, envvar in _GLOBAL_ENV.items():
        globals_.setdefault(parameter, os.environ.get(envvar) or None)
    return Parsed(spec, globals_, arguments)


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise _Fallback from None
