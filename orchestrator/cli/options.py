"""Options several commands share, and the context every command reads."""

from __future__ import annotations

from typing import Annotated, Any, NamedTuple

import typer
from typer.core import TyperOption

from orchestrator.context import Context

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
QuietFlag = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the work id.")]
AgentIdOpt = Annotated[
    str | None,
    typer.Option(
        "--agent-id",
        envvar="AGENT_ID",
        help="Acting agent [env AGENT_ID]. Without it, item commands act as an operator"
        " (no holder check).",
    ),
]
WindowOpt = Annotated[
    str | None,
    typer.Option(
        "--window",
        "-w",
        help="Spans that ended within: 24h, 7d, all, or any number with s/m/h/d/w"
        " [default: TELEMETRY_WINDOW, else 24h].",
    ),
]


class GlobalOption(NamedTuple):
    name: str
    flags: tuple[str, ...]
    envvar: str
    metavar: str
    help: str


# The options every command takes, before or after its name (`swarm -c x.toml up` and
# `swarm up -c x.toml`). Their values become the arguments of ``Context``.
GLOBAL_OPTIONS = (
    GlobalOption(
        "store",
        ("--store",),
        "SWARM_STORE",
        "PATH|URL",
        "The store: a directory or a postgresql:// URL [default: [store] of swarm.toml,"
        " else ./agent_coordination].",
    ),
    GlobalOption(
        "config",
        ("--config", "-c"),
        "SWARM_CONFIG",
        "FILE",
        "swarm.toml to read [default: the nearest swarm.toml, here or in a folder above].",
    ),
)
_GIVEN = "swarm.global_options"


def _remember(ctx: typer.Context, param: Any, value: str | None) -> None:
    # The root parses first, then the command: a value given after the command name
    # overrides one given before it (or taken from the environment).
    if value is not None:
        ctx.meta.setdefault(_GIVEN, {})[param.name] = value


def global_options(*, root: bool) -> list[Any]:
    """Click options for ``GLOBAL_OPTIONS``: at the root they also read the environment;
    on a command they do not, or the environment would override the root's value."""
    return [
        TyperOption(
            param_decls=[option.name, *option.flags],
            type=str,
            default=None,
            metavar=option.metavar,
            envvar=option.envvar if root else None,
            show_envvar=root,
            help=option.help if root else f"{option.help}  [env var: {option.envvar}]",
            callback=_remember,
            expose_value=False,
        )
        for option in GLOBAL_OPTIONS
    ]


def context_of(ctx: typer.Context) -> Context:
    """The ``Context`` the global options resolve to, made on first use (once every
    option is parsed) and closed with the command line's root context."""
    root = ctx.find_root()
    if root.obj is None:
        context = root.obj = Context(**root.meta.get(_GIVEN, {}))
        root.call_on_close(context.close)
    assert isinstance(root.obj, Context)
    return root.obj
