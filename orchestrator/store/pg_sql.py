"""The SQL of the PostgreSQL store: column lists and statement builders (the claims and
lease expiry themselves live in the schema: migrations 0002, 0009 and 0010)."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from psycopg.types.json import Jsonb

from orchestrator.records import PRIORITIES, TERMINAL_STATUSES, WorkItem
from orchestrator.store.state import prepared

COLS = (
    "work_item_id, work_type, description, priority, team, status, agent_id, progress,"
    " payload, result, completion_status, story_points, error, attempts, max_attempts,"
    " created_at, updated_at, claimed_at, completed_at, lease_expires_at, trace_context, key,"
    " parents"
)
W_COLS = ", ".join(f"w.{c.strip()}" for c in COLS.split(","))
AGENT_COLS = (
    "agent_id, capacity, status, specialization, team, role, host, pid, registered_at,"
    " last_heartbeat"
)
HELD = "('claimed', 'in_progress', 'blocked')"
LIVE = "('pending', 'claimed', 'in_progress', 'blocked')"  # as in migration 0011's index
SCHEMA_RE = re.compile(r"[a-z_][a-z0-9_]{0,62}")
MIGRATION_LOCK = 0x5157_4D53  # advisory lock keys: "SWMS"
SWEEP_LOCK = 0x5157_4D54
# One sweeper per schema, not per database: (class, a hash of the schema's name) in the
# two-int4 key space, so swarms in other schemas of the database sweep their own leases.
SWEEP_TRY_LOCK = "SELECT pg_try_advisory_lock(%s, hashtext(current_schema()))"
SWEEP_UNLOCK = "SELECT pg_advisory_unlock(%s, hashtext(current_schema()))"
# Work keys are locked in the two-int4 advisory key space (separate from the bigint one
# above): (this class, a 32-bit hash of the key).
KEY_LOCK_CLASS = 0x5157_4B59


def list_order(table: str = "") -> str:
    """list-work's order (``records.list_order``) over ``table``'s columns; migration
    0011 indexes it for the live items."""
    at = f"{table}." if table else ""
    return f'{at}priority_rank, {at}created_at, {at}work_item_id COLLATE "C"'


LIST_ORDER = list_order()


def logged(update: str, op: str) -> str:
    """Wrap an ``UPDATE work_items w … `` so each changed row is also an event."""
    return (
        f"WITH changed AS ({update} RETURNING {W_COLS}),"
        f" logged AS (INSERT INTO events (ts, op, by_agent, work_item_id, agent_id, status)"
        f" SELECT swarm_now(), '{op}', %(by)s, work_item_id, agent_id, status FROM changed)"
        f" SELECT {COLS} FROM changed"
    )


def returned(error_sql: str) -> str:
    """SET clause: back to the queue counting an attempt, or dead when none is left.

    ``dead`` mirrors ``records.out_of_attempts`` (as does migration 0002's lease
    expiry); the contract suite checks the two agree."""
    dead = "w.attempts + 1 >= w.max_attempts"
    return (
        f"attempts = w.attempts + 1,"
        f" status = CASE WHEN {dead} THEN 'dead' ELSE 'pending' END,"
        f" error = CASE WHEN {dead} THEN {error_sql} || '; gave up after '"
        f" || (w.attempts + 1) || ' attempts' ELSE {error_sql} END,"
        f" agent_id = CASE WHEN {dead} THEN w.agent_id END,"
        f" progress = CASE WHEN {dead} THEN w.progress ELSE 0 END,"
        f" claimed_at = CASE WHEN {dead} THEN w.claimed_at END,"
        f" completed_at = CASE WHEN {dead} THEN swarm_now() END,"
        f" updated_at = swarm_now(), lease_expires_at = NULL"
    )


# They live in the schema (migrations 0002, 0009, 0010): one round trip each.
EXPIRE = f"SELECT {COLS} FROM swarm_expire()"
CLAIM = f"SELECT {COLS} FROM swarm_claim(%(by)s, %(lease)s, %(types)s, %(teams)s)"
CLAIM_MANY = (
    f"SELECT {COLS} FROM swarm_claim_many(%(by)s, %(lease)s, %(types)s, %(teams)s, %(count)s)"
)

CLAIM_ID = logged(
    "UPDATE work_items w SET status = 'claimed', agent_id = %(by)s, progress = 0,"
    " claimed_at = swarm_now(), updated_at = swarm_now(),"
    " lease_expires_at = swarm_now() + %(lease)s"
    " WHERE w.work_item_id = %(id)s AND w.status = 'pending'",
    "claim",
)

REPRIORITIZE = logged(
    "UPDATE work_items w SET priority = %(p)s, priority_rank = %(rank)s,"
    " updated_at = swarm_now() WHERE w.work_item_id = %(id)s"
    f" AND w.status NOT IN ({', '.join(repr(str(s)) for s in sorted(TERMINAL_STATUSES))})",
    "reprioritize",
)

HOLDER = (
    f" WHERE w.work_item_id = %(id)s AND w.status IN {HELD} AND w.agent_id IS NOT NULL"
    " AND (%(by)s::text IS NULL OR w.agent_id = %(by)s)"
)

INSERT = (
    f"INSERT INTO work_items ({COLS}, priority_rank, open_parents) VALUES (%(work_item_id)s,"
    " %(work_type)s, %(description)s, %(priority)s, %(team)s, %(status)s, %(agent_id)s, 0,"
    " %(payload)s, NULL, NULL, NULL, %(error)s, 0, %(max_attempts)s, swarm_now(), swarm_now(),"
    " %(claimed_at)s, CASE WHEN %(status)s = 'cancelled' THEN swarm_now() END,"
    " %(lease_expires_at)s, %(trace_context)s, %(key)s, %(parents)s, %(rank)s, %(open_parents)s)"
)

# Locks taken in the order given (unnest keeps it), released at commit.
LOCK_KEYS = f"SELECT pg_advisory_xact_lock({KEY_LOCK_CLASS}, k) FROM unnest(%s::integer[]) AS k"
KEY_HOLDERS = "SELECT key, work_item_id FROM work_items WHERE key = ANY(%s)"


def key_locks(keys: list[str]) -> list[int]:
    """The advisory lock numbers of ``keys``, distinct and sorted: every transaction
    takes them in this one order, so two enqueuers of overlapping keys cannot
    deadlock. A hash shared by two keys only makes their enqueuers wait for each other."""
    return sorted(
        {
            int.from_bytes(hashlib.blake2b(k.encode(), digest_size=4).digest(), "big", signed=True)
            for k in keys
        }
    )


def insert_params(
    item: WorkItem, status: str, agent_id: str | None, max_attempts: int
) -> dict[str, Any]:
    """The parameters of ``INSERT`` for a new item (checked first, as every backend does)."""
    item = prepared(item)
    return {
        "work_item_id": item.work_item_id,
        "work_type": item.work_type,
        "description": item.description,
        "priority": item.priority,
        "rank": PRIORITIES[item.priority],
        "team": item.team,
        "status": status,
        "agent_id": agent_id,
        "payload": None if item.payload is None else Jsonb(item.payload),
        "max_attempts": item.max_attempts if item.max_attempts > 0 else max_attempts,
        "claimed_at": None,
        "lease_expires_at": None,
        "trace_context": None if item.trace_context is None else Jsonb(item.trace_context),
        "key": item.key,
        "parents": item.parents,  # references until pg_pipeline.link makes them ids
        "error": None,
        "open_parents": 0,
    }
