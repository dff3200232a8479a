"""The ``swarm`` console script: one way out for every command's errors.

SwarmSH's plain item commands are parsed by ``quick`` without importing typer (a new
process per operation is how scripts use them); everything else goes to the typer
command line in ``app``. User errors print one line on stderr and exit with SwarmSH's
codes (``orchestrator.errors.EXIT_CODES``), whichever way the command came in.
"""

from __future__ import annotations

import errno
import sys

from orchestrator import logs
from orchestrator.errors import PermissionDenied, SwarmError


def error_line(message: str) -> None:
    # Messages quote user input: escape control characters so it stays one line.
    clean = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in message)
    sys.stderr.write(f"swarm: error: {clean}\n")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        logs.configure()
        from orchestrator.cli import quick

        command = quick.parse(args)
        if command is not None:
            command()
            return 0
        from orchestrator.cli import app

        return app.run(args)
    except SwarmError as exc:
        error_line(exc.message)
        return exc.exit_code
    except KeyboardInterrupt:
        error_line("interrupted")
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:  # a file the command reads or writes (reports, span files)
        where = f" ({exc.filename})" if exc.filename else ""
        error_line(f"{exc.strerror or exc}{where}")
        return PermissionDenied.exit_code if exc.errno in (errno.EACCES, errno.EPERM) else 1
