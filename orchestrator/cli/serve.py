"""`swarm serve`: the HTTP API and the dashboard page."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from orchestrator.cli.options import context_of
from orchestrator.errors import InvalidArgument

if TYPE_CHECKING:
    from orchestrator.web.security import Access

commands = typer.Typer()


@commands.command()
def serve(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option(help="Address to listen on; other than loopback needs a token.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port; 0 picks a free one.", min=0, max=65535)] = 8080,
) -> None:
    """Serve the HTTP API (/api/…, /metrics) and the dashboard page until Ctrl-C. Every
    change needs the token (SWARM_HTTP_TOKEN, else one printed on the terminal) in an
    'Authorization: Bearer' header; off loopback, reads need it too."""
    from orchestrator.web.security import TOKEN_ENV, is_loopback
    from orchestrator.web.server import serve as run

    # A generated token is shown only on a terminal: output going elsewhere is a file
    # or a pipe into one, which must never hold it. Off loopback nothing could be read
    # without it, so there the token must come from the environment.
    terminal = sys.stdout.isatty()
    if not terminal and not is_loopback(host) and not os.environ.get(TOKEN_ENV, "").strip():
        raise InvalidArgument(
            f"swarm serve --host {host}: set {TOKEN_ENV} (output is not a terminal, so a"
            " generated token cannot be shown without writing it down)"
        )

    def announce(url: str, access: Access) -> None:
        # The token goes to the terminal once, in the page's address fragment (never
        # sent to a server); with SWARM_HTTP_TOKEN set it is not repeated.
        shown = f"{url}#token={access.token}" if access.generated and terminal else url
        reads = "reads are open on loopback" if access.loopback else "every request needs it"
        if not access.generated:
            where = "token from SWARM_HTTP_TOKEN"
        elif terminal:
            where = "token generated for this run"
        else:
            where = f"no token shown (output is not a terminal): set {TOKEN_ENV} to allow changes"
        sys.stdout.write(f"swarm serve: {shown}\n  {where}; {reads}\n")
        sys.stdout.flush()

    run(context_of(ctx), host, port, announce)
