"""Running the app on uvicorn: in the foreground for ``swarm serve``, or on a thread of
the supervisor for ``[supervisor] http_port``."""

from __future__ import annotations

import errno
import logging
import socket
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any

import uvicorn

from orchestrator.errors import Conflict, InvalidArgument
from orchestrator.web.app import create_app
from orchestrator.web.queries import Sources
from orchestrator.web.security import access_for

if TYPE_CHECKING:
    from orchestrator.context import Context

logger = logging.getLogger(__name__)


def bind(host: str, port: int, what: str, off: str = "") -> socket.socket:
    """The listening socket, bound now so that a port in use is a one-line error (and
    port 0 gives the port chosen before anything is printed)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Inherited by each connection: without it a kept-alive connection waits ~40 ms on
    # every response (Nagle's algorithm meeting the client's delayed ACK).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except socket.gaierror as exc:
        sock.close()
        raise InvalidArgument(
            f"{what}: unknown address {host!r} ({exc.strerror}); use an address of this"
            " machine, such as 127.0.0.1 or 0.0.0.0"
        ) from None
    except OSError as exc:
        sock.close()
        hint = "choose a free port" if exc.errno == errno.EADDRINUSE else "choose another"
        hint += off
        raise Conflict(
            f"{what}: cannot listen on {host}:{port} ({exc.strerror or exc}); {hint}"
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, which first ends the event streams when asked to stop (they
    would otherwise hold the graceful shutdown until its timeout)."""

    def __init__(self, config: uvicorn.Config, sources: Sources) -> None:
        super().__init__(config)
        self.sources = sources

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.sources.stopping.set()
        super().handle_exit(sig, frame)


def _config(app: Any) -> uvicorn.Config:
    # No access log: a query string may carry the token (EventSource).
    return uvicorn.Config(
        app, access_log=False, log_level="warning", lifespan="on", timeout_graceful_shutdown=2
    )


def url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


class Embedded:
    """The server on a thread of another process (the supervisor)."""

    def __init__(self, context: Context, port: int) -> None:
        self.access = access_for("127.0.0.1")
        self.sock = bind(
            "127.0.0.1", port, f"[supervisor] http_port = {port}", ", or 0 to turn it off"
        )
        self.port = int(self.sock.getsockname()[1])
        self.sources = Sources(context)
        self.server = _Server(_config(create_app(self.sources, self.access)), self.sources)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, name="http", daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.sources.stopping.set()
        self.server.should_exit = True
        self.thread.join(timeout=5)
        self.sock.close()


def serve(context: Context, host: str, port: int, announce: Any) -> None:
    """``swarm serve``: run until interrupted. ``announce(url, access)`` tells the user
    where it is (and the token, once, when it was generated)."""
    from orchestrator.telemetry import tracing

    access = access_for(host)
    sock = bind(host, port, "swarm serve")
    sources = Sources(context)
    server = _Server(_config(create_app(sources, access)), sources)
    # Changes made through the API are spans, as the CLI's are (reads record none),
    # each written as it ends: an item's page shows its trace at once.
    tracing.configure("web", context.telemetry, short_lived=True)
    announce(url(host, int(sock.getsockname()[1])), access)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        tracing.shutdown()
