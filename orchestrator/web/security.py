"""Who may do what: the token, its check, and the Host check that keeps a loopback
server out of reach of DNS-rebinding pages.

The token is never written anywhere: not to a log, a file or a span. It is compared in
constant time.
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass

from orchestrator.errors import InvalidArgument

TOKEN_ENV = "SWARM_HTTP_TOKEN"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
_MIN_TOKEN = 16


@dataclass(frozen=True, slots=True)
class Access:
    token: str
    generated: bool  # not from SWARM_HTTP_TOKEN: print it once for the user
    loopback: bool  # bound to loopback: reads need no token, Host is checked

    def allows(self, header: str | None, query_token: str | None = None) -> bool:
        given = None
        if header and header.startswith("Bearer "):
            given = header[len("Bearer ") :].strip()
        elif query_token:
            given = query_token
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def host_ok(self, host_header: str | None) -> bool:
        """On loopback, only requests addressed to a loopback name are served."""
        if not self.loopback:
            return True
        if not host_header:
            return False
        host = host_header.rsplit(":", 1)[0] if not host_header.endswith("]") else host_header
        return host.strip("[]") in LOOPBACK


def is_loopback(host: str) -> bool:
    return host in LOOPBACK or host.startswith("127.")


def access_for(host: str) -> Access:
    """The token for a server on ``host``: SWARM_HTTP_TOKEN, else a new random one."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token and len(token) < _MIN_TOKEN:
        raise InvalidArgument(
            f"{TOKEN_ENV} is too short ({len(token)} characters): use at least {_MIN_TOKEN}"
            " (for instance: python3 -c 'import secrets; print(secrets.token_urlsafe())')"
        )
    generated = not token
    return Access(
        token=token or secrets.token_urlsafe(24),
        generated=generated,
        loopback=is_loopback(host),
    )
