"""Two designs for a file store whose cost per operation does not grow with the number
of processes, each reduced to the store benchmark's three operations and measured
before one was built (issue 20), next to the store and SQLite-WAL in the same run.

Until issue 20's third session every process kept a replica of the state and replayed
every record the others appended, a cost per operation that grew with N. ``file`` is
now the first design below as built, with the store's rules, leases and journal
position; the sketch without them bounds what it could reach:

- ``sqlite-index``: the state is a SQLite database in the store directory, changed
  only under the store's flock line, so SQLite never meets a second writer (and never
  sleeps in its busy handler); ``synchronous=OFF``, because the journal stays the
  durable log: each operation still appends its record, as today.
- ``combiner``: one process keeps a FileStore (as its only writer it never replays)
  and runs the operations the others send it over a Unix socket, one per round trip.

The measuring loop is bench.store_bench's: claim, complete, enqueue a replacement.

    python -m bench.shared_state_bench [--seconds 3] [--procs 1 10 32]
        [--sizes 1000 100000] [--write-results]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import selectors
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson

from bench.common import invocation, write_section
from bench.store_bench import (
    CLAIM_SQL,
    COMPLETE_SQL,
    INSERT_SQL,
    FileBackend,
    Result,
    SqliteBackend,
    _item,
    run_one,
)
from orchestrator.store import journal
from orchestrator.store.file import FileStore
from orchestrator.store.locking import StoreLock


class SqliteIndex(SqliteBackend):
    """SQLite as the shared state, serialised by the store's lock, the journal kept."""

    name = "sqlite-index"

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(os.path.join(path, "bench.db"), isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=OFF")
        self.lock = StoreLock(os.path.join(path, ".lock"), None)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        self.journal = os.open(os.path.join(path, "journal.jsonl"), flags, 0o644)

    @contextmanager
    def _locked(self, op: str, now: float) -> Iterator[list[Any]]:
        """One operation: under the lock, in a transaction, its record appended before
        the commit (a crash in between leaves the index behind the log, never ahead)."""
        records: list[Any] = []
        self.lock.acquire()
        try:
            self.db.execute("BEGIN")
            try:
                yield records
                if records:
                    os.write(self.journal, journal.encode({"op": op, "ts": now, "items": records}))
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
        finally:
            self.lock.release()

    def claim(self, agent: str) -> str | None:
        now = time.time()
        with self._locked("claim", now) as records:
            row = self.db.execute(CLAIM_SQL, (agent, now, now + 60)).fetchone()
            if row is None:
                return None
            claimed = {"status": "claimed", "agent_id": agent, "claimed_at": now}
            records.append({"work_item_id": row[0], **claimed, "lease_expires_at": now + 60})
            return str(row[0])

    def complete(self, work_id: str, agent: str) -> None:
        now = time.time()
        with self._locked("complete", now) as records:
            cur = self.db.execute(COMPLETE_SQL, (work_id, agent))
            assert cur.rowcount == 1
            records.append({"work_item_id": work_id, "status": "completed", "completed_at": now})

    def add(self, n: int) -> None:
        now = time.time()
        with self._locked("add", now) as records:
            self.db.execute(INSERT_SQL, (f"w{n:09d}", n % 4, now))
            records.append(_item(n).evolve(created_at=now, updated_at=now))  # orjson: whole


# -- the combiner -------------------------------------------------------------------------


def _socket_path(path: str) -> str:
    return os.path.join(path, "combiner.sock")


def _serve(path: str, ready: Any) -> None:
    """The combiner: runs every operation its clients send, one FileStore, one thread."""
    store = FileStore(path)
    store.list_work()  # loads the state before the clients start
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(_socket_path(path))
    server.listen(128)
    selector = selectors.DefaultSelector()
    selector.register(server, selectors.EVENT_READ)
    pending: dict[socket.socket, bytes] = {}
    ready.set()
    while True:
        for key, _ in selector.select():
            conn: Any = key.fileobj
            if conn is server:
                client, _ = server.accept()
                selector.register(client, selectors.EVENT_READ)
                pending[client] = b""
                continue
            data = conn.recv(65536)
            if not data:
                selector.unregister(conn)
                conn.close()
                continue
            buffer, answers = pending[conn] + data, []
            while (end := buffer.find(b"\n")) >= 0:
                op, arg, agent = orjson.loads(buffer[:end])
                buffer = buffer[end + 1 :]
                answer = None
                if op == "claim":
                    item = store.claim(agent)
                    answer = item.work_item_id if item else None
                elif op == "complete":
                    store.complete(arg, "success", agent_id=agent)
                else:
                    store.add_work(_item(arg))
                answers.append(orjson.dumps(answer) + b"\n")
            pending[conn] = buffer
            conn.sendall(b"".join(answers))


class Combined:
    """A client of the combiner: each operation is one round trip."""

    name = "combiner"

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(_socket_path(path))
        self.answers = self.sock.makefile("rb")

    @staticmethod
    def prefill(path: str, size: int) -> None:
        FileBackend.prefill(path, size)

    @staticmethod
    @contextmanager
    def serving(path: str) -> Iterator[None]:
        ctx = multiprocessing.get_context("spawn")
        ready = ctx.Event()
        server = ctx.Process(target=_serve, args=(path, ready), daemon=True)
        server.start()
        try:
            if not ready.wait(600):
                raise RuntimeError("the combiner did not start")
            yield
        finally:
            server.kill()
            server.join()

    def _call(self, op: str, arg: Any, agent: str | None) -> Any:
        self.sock.sendall(orjson.dumps((op, arg, agent)) + b"\n")
        return orjson.loads(self.answers.readline())

    def claim(self, agent: str) -> str | None:
        answer = self._call("claim", None, agent)
        return str(answer) if answer is not None else None

    def complete(self, work_id: str, agent: str) -> None:
        self._call("complete", work_id, agent)

    def add(self, n: int) -> None:
        self._call("add", n, None)


DESIGNS: list[str | type] = ["file", SqliteIndex, Combined, "sqlite-wal"]


def _name(backend: str | type) -> str:
    return backend if isinstance(backend, str) else str(backend.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measured time per run")
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 10, 32])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 100_000])
    parser.add_argument("--write-results", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args()

    results: dict[tuple[str, int, int], Result] = {}
    for size in args.sizes:
        for procs in args.procs:
            for backend in DESIGNS:
                r = run_one(backend, procs, size, args.seconds)
                results[(_name(backend), procs, size)] = r
                print(
                    f"{_name(backend):12} N={procs:<3} items={size:<7}"
                    f" {r.cycles_per_s:9.0f} cycles/s  claim p99 {r.p99_ms:.3f} ms",
                    flush=True,
                )
    names = [_name(b) for b in DESIGNS[:-1]]
    lines = [
        "| N | items | SQLite-WAL cycles/s | "
        + " | ".join(f"{n} cycles/s (/SQLite) | {n} p99 ms" for n in names)
        + " |",
        "|---|---|---|" + "---|---|" * len(names),
    ]
    for size in args.sizes:
        for procs in args.procs:
            base = results[("sqlite-wal", procs, size)]
            cells = [f"{procs}", f"{size:,}", f"{base.cycles_per_s:,.0f}"]
            for n in names:
                r = results[(n, procs, size)]
                cells.append(f"{r.cycles_per_s:,.0f} ({r.cycles_per_s / base.cycles_per_s:.2f}x)")
                cells.append(f"{r.p99_ms:.2f}")
            lines.append("| " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    if args.write_results:
        write_section(
            "shared_state_bench",
            "## Store: designs that share the state instead of replaying it\n\n"
            f"Command: `{invocation()}` (via `make bench`), {time.strftime('%Y-%m-%d')},"
            f" {os.cpu_count()} cores, SQLite {sqlite3.sqlite_version}. A cycle is claim +"
            " complete + enqueue a replacement (bench.store_bench's loop); `sqlite-index` is"
            " SQLite under the store's flock line with the journal kept, `combiner` one"
            " process running every other's operations over a Unix socket. Sketches of the"
            " operations, not stores: they bound what each design can reach. `file` is the"
            " store, which since issue 20's third session is the `sqlite-index` design with"
            " the store's rules.\n\n" + table + "\n",
        )


if __name__ == "__main__":
    main()
