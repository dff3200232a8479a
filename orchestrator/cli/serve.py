"""`swarm serve`: the HTTP API and the dashboard page."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from orchestrator.cli.options import context_of

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
    change needs the token (SWARM_HTTP_TOKEN, else one printed at start) in an
    'Authorization: Bearer' header; off loopback, reads need it too."""
    from orchestrator.web.server import serve as run

    def announce(url: str, access: Access) -> None:
        # The token goes to the terminal once, in the page's address fragment (never
        # sent to a server); with SWARM_HTTP_TOKEN set it is not repeated.
        shown = f"{url}#token={access.token}" if access.generated else url
        reads = "reads are open on loopback" if access.loopback else "every request needs it"
        where = "generated for this run" if access.generated else "from SWARM_HTTP_TOKEN"
        sys.stdout.write(f"swarm serve: {shown}\n  token {where}; {reads}\n")
        sys.stdout.flush()

    run(context_of(ctx), host, port, announce)
