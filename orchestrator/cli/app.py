"""The ``swarm`` command: SwarmSH's ``coordination_helper.sh`` commands and the swarm's own.

Thin on purpose: parse, call one function of the orchestrator or the store, render.
User errors print one line on stderr and exit with SwarmSH's codes (see
``orchestrator.errors.EXIT_CODES``).

SwarmSH users run one process per operation, so start-up is most of a command's cost:
the root group imports and builds only the command being run (``catalog`` says which
module holds it). ``swarm --help`` and shell completion import every module.
"""

from __future__ import annotations

import importlib
import sys
from typing import Annotated, Any

import typer
import typer.main
from typer.core import TyperGroup
from typer.models import CommandInfo, TyperInfo

from orchestrator import __version__
from orchestrator.cli.catalog import CATALOG, MODULES
from orchestrator.cli.entry import error_line
from orchestrator.cli.options import global_options
from orchestrator.errors import EXIT_CODES

# Typer vendors click (the module path differs between releases); its public
# BadParameter leads to the base class of every command-line usage error.
_ClickError: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
)

_EXIT_CODES = "Exit codes: " + "; ".join(
    f"{code} {meaning}" for code, meaning in EXIT_CODES.items()
)

Info = CommandInfo | TyperInfo


def _name_of(info: Info) -> str:
    if isinstance(info, CommandInfo):
        assert info.callback is not None
        return info.name or typer.main.get_command_name(info.callback.__name__)
    # A group's name may be a typer default placeholder (it has .value), given either
    # to add_typer() or to the group's own Typer().
    name = getattr(info.name, "value", info.name)
    if not name and info.typer_instance is not None:
        own = info.typer_instance.info.name
        name = getattr(own, "value", own)
    assert isinstance(name, str) and name, "a command group needs a name"
    return name


def commands_in(module_name: str) -> dict[str, Info]:
    module = importlib.import_module(f"orchestrator.cli.{module_name}")
    commands: typer.Typer = module.commands
    infos: list[Info] = [*commands.registered_commands, *commands.registered_groups]
    return {_name_of(info): info for info in infos}


def all_commands() -> dict[str, Info]:
    """Every command of every module, in the catalog's order, then any it lacks."""
    found: dict[str, Info] = {}
    for module_name in MODULES:
        found.update(commands_in(module_name))
    order = {name: i for i, name in enumerate(CATALOG)}
    return dict(sorted(found.items(), key=lambda item: order.get(item[0], len(order))))


def _finish(command: Any, path: str) -> Any:
    """Give a built command the shared options, its summary and its example, and the
    same to the commands of a group."""
    command.params.extend(global_options(root=False))
    entry = CATALOG.get(path)
    if entry is not None:
        command.short_help = entry.summary
        # \b keeps click from re-wrapping the example onto one line with the text above.
        command.epilog = f"\b\nExample: {entry.example}"
    for name, sub in getattr(command, "commands", {}).items():
        _finish(sub, f"{path} {name}")
    return command


def _build(name: str, info: Info) -> Any:
    """The click command of one typer command (or group), built on its own."""
    holder = typer.Typer(rich_markup_mode=None, pretty_exceptions_enable=False)
    if isinstance(info, CommandInfo):
        holder.registered_commands.append(info)
    else:
        holder.registered_groups.append(info)
    return _finish(typer.main.get_group(holder).commands[name], name)


class LazyGroup(TyperGroup):
    """The root group: resolves only the invoked command and imports only its module.

    (``ctx`` is click's Context, whose module path differs between typer releases.)
    """

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.params.extend(global_options(root=True))

    def list_commands(self, ctx: Any) -> list[str]:
        return list(all_commands())

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = self.commands.get(cmd_name)
        if command is not None:
            return command
        entry = CATALOG.get(cmd_name)
        info = commands_in(entry.module).get(cmd_name) if entry and entry.module else None
        if info is None:  # not in the catalog (or moved): look everywhere
            info = all_commands().get(cmd_name)
        if info is None:
            return None
        command = self.commands[cmd_name] = _build(cmd_name, info)
        return command

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        # The catalog's summaries, so that `swarm --help` builds no command it knows.
        rows = []
        for name, info in all_commands().items():
            entry = CATALOG.get(name)
            summary = entry.summary if entry else self.get_command(ctx, name).get_short_help_str()
            if not isinstance(info, CommandInfo) or not info.hidden:
                rows.append((name, summary))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"swarm {__version__}")
        raise typer.Exit()


app = typer.Typer(
    name="swarm",
    cls=LazyGroup,
    help="Coordinate a swarm of agents: claim, progress and complete work without conflicts.",
    epilog=f"{_EXIT_CODES}\n\n\b\nExample: swarm claim feature 'Implement caching layer' high",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    pass  # the options act through their callbacks


# -- entry point -------------------------------------------------------------------------


def run(argv: list[str] | None) -> int:
    """Run the typer command line; its usage errors become one line and exit 2.
    ``entry.main`` handles what every way into a command shares (``SwarmError``,
    interrupts, OS errors)."""
    try:
        result = app(args=argv, prog_name="swarm", standalone_mode=False)
    except _ClickError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # `swarm`, `swarm db`: help, as SwarmSH
            sys.stdout.write(exc.format_message() + "\n")  # type: ignore[attr-defined]
            return 0
        code = int(getattr(exc, "exit_code", 2))
        hint = " (see swarm --help)" if code == 2 else ""
        error_line(getattr(exc, "format_message", exc.__str__)() + hint)
        return code
    except typer.Abort:
        raise KeyboardInterrupt from None
    return result if isinstance(result, int) else 0
