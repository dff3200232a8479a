"""``[supervisor] http_port``: the HTTP API on a thread of the supervisor, started with
its ``/metrics`` and stopped when the process exits. Importing this module costs
nothing; uvicorn and Starlette load only when the port is set."""

from __future__ import annotations

import atexit
import logging
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.config import SwarmConfig

logger = logging.getLogger(__name__)


def start_if_configured(config: SwarmConfig, store_target: str) -> None:
    port = config.supervisor.http_port
    if not port:
        return
    from orchestrator.context import Context
    from orchestrator.web.server import Embedded, url

    source = str(config.source) if config.source else None
    server = Embedded(Context(store=store_target, config=source), port)
    atexit.register(server.close)
    address = url("127.0.0.1", server.port)
    # The token never goes to the log (a detached supervisor's output is a file): a
    # generated one is shown only on a terminal; without one, changes are refused.
    if server.access.generated and sys.stdout.isatty():
        sys.stdout.write(f"HTTP API: {address}#token={server.access.token}\n")
        sys.stdout.flush()
        where = "generated, shown on the terminal"
    elif server.access.generated:
        where = "set SWARM_HTTP_TOKEN to allow changes"
    else:
        where = "SWARM_HTTP_TOKEN"
    logger.info("HTTP API on %s (token: %s)", address, where)
