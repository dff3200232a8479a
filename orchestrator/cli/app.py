"""The ``swarm`` command: SwarmSH's ``coordination_helper.sh`` commands and the swarm's own.

Thin on purpose: parse, call one function of the orchestrator or the store, render.
User errors print one line on stderr and exit with SwarmSH's codes (see
``orchestrator.errors.EXIT_CODES``).
"""

from __future__ import annotations

import errno
import sys
from typing import Annotated

import typer

from orchestrator import logs
from orchestrator.cli import control, observe, run, work
from orchestrator.context import Context
from orchestrator.errors import EXIT_CODES, PermissionDenied, SwarmError

# Typer vendors click (the module path differs between releases); its public
# BadParameter leads to the base class of every command-line usage error.
_ClickError: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
)

_EPILOG = "Exit codes: " + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items())

app = typer.Typer(
    name="swarm",
    help="Coordinate a swarm of agents: claim, progress and complete work without conflicts.",
    epilog=_EPILOG,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _global(
    ctx: typer.Context,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            envvar="SWARM_STORE",
            help="The store: a directory or a postgresql:// URL [default: [store] of"
            " swarm.toml, else ./agent_coordination].",
        ),
    ] = None,
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            "-c",
            envvar="SWARM_CONFIG",
            help="swarm.toml to read [default ./swarm.toml].",
        ),
    ] = None,
) -> None:
    ctx.obj = Context(store, config)
    ctx.call_on_close(ctx.obj.close)


for _module in (work, run, control, observe):
    app.registered_commands.extend(_module.commands.registered_commands)
    app.registered_groups.extend(_module.commands.registered_groups)


# -- entry point -------------------------------------------------------------------------


def _error(message: str) -> None:
    # Messages quote user input: escape control characters so it stays one line.
    clean = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in message)
    sys.stderr.write(f"swarm: error: {clean}\n")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    logs.configure()
    try:
        result = app(args=argv, prog_name="swarm", standalone_mode=False)
    except SwarmError as exc:
        _error(exc.message)
        return exc.exit_code
    except _ClickError as exc:
        code = int(getattr(exc, "exit_code", 2))
        hint = " (see swarm --help)" if code == 2 else ""
        _error(getattr(exc, "format_message", exc.__str__)() + hint)
        return code
    except (typer.Abort, KeyboardInterrupt):
        _error("interrupted")
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:  # a file the command reads or writes (reports, span files)
        where = f" ({exc.filename})" if exc.filename else ""
        _error(f"{exc.strerror or exc}{where}")
        return PermissionDenied.exit_code if exc.errno in (errno.EACCES, errno.EPERM) else 1
    return result if isinstance(result, int) else 0
