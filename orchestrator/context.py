"""What every command works on, resolved once: the config, the store, the agent id.

The command line's global options (``--config``/``SWARM_CONFIG``, ``--store``/
``SWARM_STORE``) and the defaults (the nearest swarm.toml, else
``./agent_coordination``) are turned into one ``Context`` here, so that each rule of
where things are lives in one place. swarm.toml is read only when a command needs it.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING

from orchestrator import compat, logs
from orchestrator.errors import InvalidArgument, NotFound
from orchestrator.ids import check_id, new_agent_id
from orchestrator.locations import DEFAULT_AGENTS_DIR, DEFAULT_CONFIG, DEFAULT_STORE_DIR, is_url

if TYPE_CHECKING:
    from pathlib import Path

    from orchestrator.config import StoreConfig, SwarmConfig
    from orchestrator.store.base import Store
    from orchestrator.telemetry.settings import TelemetrySettings


class Context:
    """The resolved global options. Stores it opens are closed by ``close()``."""

    def __init__(self, store: str | None = None, config: str | None = None) -> None:
        logs.level()  # LOG_LEVEL=loud: refused before the command runs, as a user error
        compat.check_coordination_mode()
        # COORDINATION_DIR is SwarmSH's default place, not a store named on purpose: a
        # read there before anything was written shows an empty queue (exit 0), as in
        # SwarmSH; a --store/SWARM_STORE that holds nothing is taken for a typo (exit 6).
        self.store_named = bool(store)
        self.store_arg = store or compat.coordination_dir()
        self.config_arg = config
        self._store: Store | None = None
        self._read_store: Store | None = None
        self._traced = False

    # -- swarm.toml -------------------------------------------------------------------

    @functools.cached_property
    def config_path(self) -> str | None:
        """The config file to read: the one given, else the nearest swarm.toml found by
        ``find_config`` (None when there is none)."""
        if self.config_arg:
            return self.config_arg
        return find_config(os.getcwd())

    @functools.cached_property
    def config(self) -> SwarmConfig | None:
        """swarm.toml with ``--store`` applied, or None when there is none."""
        if self.config_path is None:
            return None
        from orchestrator.config import load_config

        config = load_config(self.config_path)
        return config.with_store(self.store_arg) if self.store_arg else config

    def require_config(self) -> SwarmConfig:
        """The config, for commands that run a swarm: they cannot do without one."""
        if self.config is None:
            raise InvalidArgument(
                f"{DEFAULT_CONFIG}: no such file in {os.getcwd()} or the folders above it"
                " (run where swarm.toml is, or pass -c FILE)"
            )
        return self.config

    # -- where things are -------------------------------------------------------------

    @functools.cached_property
    def store_target(self) -> str:
        """A PostgreSQL URL, or the file store's directory as an absolute path."""
        if self.store_arg:
            return self.store_arg if is_url(self.store_arg) else os.path.realpath(self.store_arg)
        if self.config is not None:
            return self.config.store_target()
        return os.path.realpath(DEFAULT_STORE_DIR)

    @property
    def store_settings(self) -> StoreConfig | None:
        return self.config.store if self.config is not None else None

    @functools.cached_property
    def agents_dir(self) -> Path:
        if self.config is not None:
            return self.config.resolve(self.config.supervisor.agents_dir)
        from pathlib import Path  # not at the top: the item commands never need it

        return Path(DEFAULT_AGENTS_DIR).resolve()

    @functools.cached_property
    def telemetry(self) -> TelemetrySettings:
        from orchestrator.telemetry.settings import resolve_settings

        return resolve_settings(self.config)

    def window(self, option: str | None) -> tuple[str, float | None]:
        """A span window (``--window``, else TELEMETRY_WINDOW): its label and seconds."""
        from orchestrator.telemetry.settings import parse_window

        label = (option or self.telemetry.window).strip().lower()
        return label, parse_window(label)

    # -- the acting agent ---------------------------------------------------------------

    @staticmethod
    def agent_id(given: str | None) -> str:
        """The acting agent (``--agent-id``/``AGENT_ID``), or a new id when none is set."""
        return check_id(given, "agent id") if given else new_agent_id()

    # -- stores --------------------------------------------------------------------------

    def store(self) -> Store:
        """The store for a coordination command, opened on first use; its operations are
        recorded as spans of the ``cli`` service."""
        if self._store is None:
            from orchestrator.telemetry import tracing
            from orchestrator.wiring import open_store

            target, settings = self.store_target, self.store_settings
            tracing.configure("cli", self.telemetry, short_lived=True)
            self._traced = True
            self._store = open_store(target, settings, one_shot=True)
        return self._store

    def existing_store(self) -> Store | None:
        """The store for a command that only reads it (list-work, agent-status,
        dashboard, status), or None when the file store was never created: looking must
        not create an empty store wherever the command happens to run. No spans are
        configured (reads record none). Closed by ``close()``. A store named with
        ``--store``/``SWARM_STORE`` that does not exist is a typo: NotFound."""
        if self._read_store is None:
            self._read_store = self.observed_store(one_shot=True)
            if self._read_store is None and self.store_named:
                raise NotFound(
                    f"no store at {self.store_target} (check --store/SWARM_STORE;"
                    " a command that writes, such as swarm add, creates one)"
                )
        return self._read_store

    def observed_store(self, *, one_shot: bool = False) -> Store | None:
        """The store for an observing command (no spans are configured), or None when the
        file store was never created: there is nothing to see, and looking must not
        create it. The caller closes it."""
        from orchestrator.store.integrity import is_store
        from orchestrator.wiring import open_store

        settings = self.store_settings  # a broken swarm.toml is reported, store or not
        if not is_url(self.store_target) and not is_store(self.store_target):
            return None
        return open_store(self.store_target, settings, one_shot=one_shot)

    def close(self) -> None:
        """After the command: close the store and flush the spans it recorded."""
        for store in (self._store, self._read_store):
            if store is not None:
                store.close()
        self._store = self._read_store = None
        if self._traced:
            from orchestrator.telemetry import tracing

            tracing.shutdown()
            self._traced = False


def find_config(start: str) -> str | None:
    """The nearest swarm.toml: in ``start``, else in the closest folder above it, as git
    finds ``.git``. The search stops at $HOME when ``start`` is inside it (a stray
    ~/../swarm.toml of another user or of the system must not steer one's commands),
    else at the filesystem root. (os.path, not pathlib: every command runs this, and
    the item commands import nothing else of pathlib.)"""
    home = os.path.realpath(os.path.expanduser("~"))
    folder = os.path.realpath(start)
    inside = folder == home or folder.startswith(home.rstrip(os.sep) + os.sep)
    ceiling = home if inside else None
    while True:
        candidate = os.path.join(folder, DEFAULT_CONFIG)
        if os.path.isfile(candidate):
            return candidate
        parent = os.path.dirname(folder)
        if folder == ceiling or parent == folder:
            return None
        folder = parent
