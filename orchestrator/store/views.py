"""SwarmSH's JSON files, kept current from the file store's state.

SwarmSH's scripts read ``work_claims.json``, ``agent_status.json`` (its README says
``agents.json``) and ``coordination_log.json`` with ``jq`` right after a command. The
store writes them in SwarmSH's words (see ``swarmsh_status``) from its state
(``state.sqlite``), atomically (temp file, rename), while holding the store lock, so a
view never goes back in time and readers never see half a file.

When: a process writes the views after an operation once they are older than
``interval_s`` and the journal moved since (``.views.json`` records the journal
position the views show and when and how fast they were written, for every process
to see). Writing costs time proportional to the items held, so the interval grows to
``COST_FACTOR`` times the last write's duration: views cost at most ~2% of the time.
``interval_s = 0`` (each CLI command) writes whenever the state changed. They are also
written at once when the last registered agent leaves (a run's end), and by a process
that closes the store while the lock is free.

They are views, never read back: the store's own snapshot is ``work_snapshot.json``
and ``agents_snapshot.json``. Stores written before views existed kept that snapshot
in ``work_claims.json``/``agents.json``; ``adopt_legacy_snapshots`` moves it to the new
names before the first view can overwrite it.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

import orjson

from orchestrator.files import write_atomic
from orchestrator.records import HELD_STATUSES, TERMINAL_STATUSES, Agent, WorkItem, WorkStatus
from orchestrator.store.sql_state import SqlState

logger = logging.getLogger(__name__)

WORK_CLAIMS = "work_claims.json"
AGENT_STATUS = "agent_status.json"  # the name SwarmSH's script writes
AGENTS = "agents.json"  # the name SwarmSH's README gives: same content
COORDINATION_LOG = "coordination_log.json"
MARKER = ".views.json"
VIEW_FILES = (WORK_CLAIMS, AGENT_STATUS, AGENTS, COORDINATION_LOG)

COST_FACTOR = 50.0

# Our statuses in SwarmSH's words. SwarmSH's `complete` always sets "completed" and
# says how it went in "result"; its claim is "active" until progress says otherwise.
_STATUS = {
    WorkStatus.PENDING: "pending",
    WorkStatus.CLAIMED: "active",
    WorkStatus.IN_PROGRESS: "in_progress",
    WorkStatus.BLOCKED: "blocked",
    WorkStatus.COMPLETED: "completed",
    WorkStatus.FAILED: "completed",
    WorkStatus.DEAD: "completed",
    WorkStatus.CANCELLED: "completed",
}


def swarmsh_status(status: str) -> str:
    return _STATUS.get(status, status)  # type: ignore[call-overload, no-any-return]


def swarmsh_result(item: WorkItem) -> str | None:
    """SwarmSH's "result" of a finished item: success, failed, blocked, dead or
    cancelled."""
    status = item.status
    if status == WorkStatus.COMPLETED:
        return "success"
    if status == WorkStatus.DEAD:
        return "dead"
    if status == WorkStatus.CANCELLED:
        return "cancelled"
    if status == WorkStatus.FAILED:
        return item.completion_status or "failed"
    return None


_ISO: dict[int, str] = {}


def iso(ts: float | None) -> str | None:
    """SwarmSH's time format, the one ``jq fromdateiso8601`` reads (whole seconds)."""
    if not ts:
        return None
    second = int(ts)
    text = _ISO.get(second)
    if text is None:
        if len(_ISO) > 65536:  # items of a busy store share seconds; keep the cache small
            _ISO.clear()
        text = _ISO[second] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
    return text


def work_claim(item: WorkItem) -> dict[str, Any]:
    """One entry of work_claims.json: SwarmSH's claim fields, then a few of ours.
    (Runs for every item the store holds each time the views are written: kept lean.)"""
    fields = item.__dict__
    status = fields["status"]
    record: dict[str, Any] = {
        "work_item_id": fields["work_item_id"],
        "agent_id": fields["agent_id"],
        "claimed_at": iso(fields["claimed_at"]),
        "work_type": fields["work_type"],
        "priority": fields["priority"],
        "description": fields["description"],
        "status": _STATUS.get(status, status),
        "team": fields["team"],
        "progress": fields["progress"],
        "last_update": iso(fields["updated_at"]),
        "completed_at": iso(fields["completed_at"]),
        "result": swarmsh_result(item) if status in TERMINAL_STATUSES else None,
        "velocity_points": fields["story_points"],
        "created_at": iso(fields["created_at"]),
        "swarm_status": status,
        "attempts": fields["attempts"],
        "error": fields["error"],
    }
    context = fields["trace_context"]
    if context:
        parts = context.get("traceparent", "").split("-")
        if len(parts) == 4:
            record["telemetry"] = {"trace_id": parts[1], "span_id": parts[2], "service": "swarmsh"}
    return record


def completion(item: WorkItem) -> dict[str, Any]:
    """One entry of coordination_log.json, as SwarmSH's `complete` appended it."""
    return {
        "work_item_id": item.work_item_id,
        "completed_at": iso(item.completed_at),
        "agent_id": item.agent_id,
        "result": swarmsh_result(item),
        "velocity_points": item.story_points or 0,
        "work_type": item.work_type,
        "team": item.team,
    }


def agent_record(agent: Agent, held: int, done: list[WorkItem]) -> dict[str, Any]:
    """One entry of agent_status.json / agents.json, SwarmSH's fields first."""
    succeeded = [i for i in done if i.status == WorkStatus.COMPLETED]
    spans = [i.completed_at - i.claimed_at for i in done if i.completed_at and i.claimed_at]
    return {
        "agent_id": agent.agent_id,
        "team": agent.team,
        "status": agent.status,
        "capacity": agent.capacity,
        "current_workload": held,
        "specialization": agent.specialization,
        "last_heartbeat": iso(agent.last_heartbeat),
        "performance_metrics": {
            "tasks_completed": len(succeeded),
            "average_completion_time": f"{round(sum(spans) / len(spans) / 60) if spans else 0}m",
            "success_rate": round(100.0 * len(succeeded) / len(done), 1) if done else 100.0,
        },
        "role": agent.role,
        "host": agent.host,
        "pid": agent.pid,
        "registered_at": iso(agent.registered_at),
    }


def render(items: Iterable[WorkItem], agents: Iterable[Agent]) -> dict[str, bytes]:
    """The content of every view file, from the store's records."""
    items = list(items)  # the store's order: as first recorded, oldest first
    held: Counter[str] = Counter()
    done: dict[str, list[WorkItem]] = {}
    for item in items:
        if item.agent_id is None:
            continue
        if item.status in HELD_STATUSES:
            held[item.agent_id] += 1
        elif item.status in TERMINAL_STATUSES:
            done.setdefault(item.agent_id, []).append(item)
    finished = sorted(
        (i for i in items if i.status in TERMINAL_STATUSES),
        key=lambda i: (i.completed_at or i.updated_at, i.work_item_id),
    )
    roster = [agent_record(a, held[a.agent_id], done.get(a.agent_id, [])) for a in agents]
    agents_json = _lines(roster)
    return {
        WORK_CLAIMS: _lines([work_claim(i) for i in items]),
        AGENT_STATUS: agents_json,
        AGENTS: agents_json,
        COORDINATION_LOG: _lines([completion(i) for i in finished]),
    }


def _lines(records: list[dict[str, Any]]) -> bytes:
    """A JSON array with one record per line: for jq, and for grep and wc -l (indenting
    would make a 100k-item file half as big again and slower to write under the lock)."""
    if not records:
        return b"[]\n"
    body = orjson.dumps(records, option=orjson.OPT_APPEND_NEWLINE)
    return body.replace(b'},{"', b'},\n{"').replace(b"[{", b"[\n{", 1)[:-2] + b"\n]\n"


class SwarmshViews:
    """Writes the views of one store directory when they are due (see the module)."""

    def __init__(self, path: str, interval_s: float) -> None:
        self.path = path
        self.interval_s = interval_s
        self._next_check = 0.0
        self._written: tuple[int, int] | None = None
        self._failed = False
        self._had_agents = False

    def _file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def _due_after(self, cost_s: float) -> float:
        return 0.0 if self.interval_s <= 0 else max(self.interval_s, COST_FACTOR * cost_s)

    def behind(self, generation: int, offset: int) -> bool:
        """Whether the journal moved since this process last wrote or saw the views."""
        return self._written != (generation, offset)

    def refresh(self, state: SqlState, generation: int, offset: int, force: bool = False) -> None:
        """Called by the lock holder after each operation; cheap unless the views are
        due (one float comparison between checks). ``force``: due now if behind."""
        # The last agent leaving (the end of a run): show the final state now.
        if state.agents:
            self._had_agents = True
        elif self._had_agents:
            self._had_agents = False
            force = True
        now = time.time()
        if now < self._next_check and not force:
            return
        cursor = (generation, offset)
        self._next_check = now + self.interval_s
        if cursor == self._written:
            return
        marker = self._read_marker()
        if marker is not None:
            if tuple(marker.get("cursor") or ()) == cursor:
                self._written = cursor
                return
            due = float(marker.get("written_at", 0.0)) + self._due_after(
                float(marker.get("cost_s", 0.0))
            )
            if now < due and not force:
                self._next_check = due
                return
        self.write(state, cursor, marker is None)

    def write(self, state: SqlState, cursor: tuple[int, int], first: bool) -> None:
        started = time.perf_counter()
        try:
            if first:
                # Marks the directory as holding views before any exists, so a view is
                # never taken for a snapshot of the old layout (adopt_legacy_snapshots).
                write_atomic(self._file(MARKER), b'{"cursor": null}', fsync=False)
            for name, data in render(state.items.values(), state.agents.values()).items():
                write_atomic(self._file(name), data, fsync=False)
            cost = time.perf_counter() - started
            marker = {"cursor": list(cursor), "written_at": time.time(), "cost_s": cost}
            write_atomic(self._file(MARKER), orjson.dumps(marker), fsync=False)
        except OSError as exc:
            # The operation is committed: a view that cannot be written costs a warning.
            if not self._failed:
                logger.warning("cannot write SwarmSH views in %s: %s", self.path, exc)
            self._failed = True
            self._next_check = time.time() + max(self.interval_s, 5.0)
            return
        self._failed = False
        self._written = cursor
        self._next_check = time.time() + self._due_after(cost)

    def _read_marker(self) -> dict[str, Any] | None:
        try:
            with open(self._file(MARKER), "rb") as fh:
                data = orjson.loads(fh.read())
        except FileNotFoundError:
            return None
        except (OSError, orjson.JSONDecodeError):
            return {}  # damaged: the views exist; rewrite them
        return data if isinstance(data, dict) else {}


def adopt_legacy_snapshots(path: str, renames: Iterable[tuple[str, str]]) -> None:
    """Move a snapshot of the old layout (``work_claims.json``, ``agents.json`` in our
    own format) to its new name. Only where no view was ever written (no marker): there
    those names can only be the old snapshot. Each file on its own, so a crash between
    the two renames is finished by the next open."""
    if os.path.exists(os.path.join(path, MARKER)):
        return
    for old, new in renames:
        source, target = os.path.join(path, old), os.path.join(path, new)
        if os.path.exists(source) and not os.path.exists(target):
            os.replace(source, target)
            logger.info("moved the snapshot %s to %s (store layout of swarmsh 0.1)", source, new)
