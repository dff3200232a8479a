"""Pages of the work listing (``store.base.page_work``, the HTTP API's ``GET /api/work``):
PostgreSQL answers them in SQL, and its pages are the file store's listing, item for
item: the same filters, the same include-finished rule, list-work's order (ties on the
creation time broken by the id in code-point order), the same offsets and totals."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest

from orchestrator.records import WorkFilter, WorkItem, list_order
from orchestrator.store.base import (
    children_of,
    finished_of,
    finished_since,
    holdings,
    holdings_of,
    page_work,
    run_counts,
    run_counts_of,
    work_counts,
)
from orchestrator.store.file import FileStore
from orchestrator.store.pg_pages import page_sql
from orchestrator.store.postgres import PostgresStore
from orchestrator.telemetry.traced_store import TracedStore

# (id, priority, type, team, created_at): the ids of the first eight tie on their time
# and priority and are enqueued out of code-point order, so neither the order of
# insertion nor a language's collation (case, punctuation ignored) gives list-work's.
ITEMS = [
    ("b", "medium", "build", "core", 1000.0),
    ("a-2", "medium", "test", None, 1000.0),
    ("a_1", "medium", "docs", "web", 1000.0),
    ("a.3", "medium", "build", "core", 1000.0),
    ("B9", "medium", "test", "web", 1000.0),
    ("Z", "medium", "docs", None, 1000.0),
    ("9z", "medium", "build", "core", 1000.0),
    ("aa", "medium", "test", "core", 1000.0),
    ("old-low", "low", "build", None, 10.0),
    ("new-crit", "critical", "docs", "core", 5000.0),
    ("old-crit", "critical", "test", "web", 20.0),
    ("mid-high", "high", "build", "web", 2000.0),
    ("late-high", "high", "docs", None, 3000.0),
    ("early-high", "high", "test", "core", 900.0),
]
TIED = ["9z", "B9", "Z", "a-2", "a.3", "a_1", "aa", "b"]  # code-point order
CANCELLED = ["Z", "late-high"]
CLAIMED = ["a_1", "old-crit"]
COMPLETED = "new-crit"

FILTERS = [
    WorkFilter(),
    WorkFilter(include_all=True),
    WorkFilter(statuses=frozenset({"pending"})),
    WorkFilter(statuses=frozenset({"claimed", "cancelled"})),  # names a finished status
    WorkFilter(statuses=frozenset({"completed"})),
    WorkFilter(statuses=frozenset({"dead"})),
    WorkFilter(work_types=frozenset({"build", "docs"})),
    WorkFilter(teams=frozenset({"core"})),
    WorkFilter(priorities=frozenset({"high", "low"})),
    WorkFilter(statuses=frozenset({"pending"}), teams=frozenset({"web", "core"})),
    WorkFilter(work_types=frozenset({"docs"}), include_all=True),
    WorkFilter(teams=frozenset({"nobody"})),
]
PAGES = [(0, 100), (0, 1), (0, 3), (2, 3), (5, 4), (13, 5), (50, 10)]


def _work_items() -> list[WorkItem]:
    return [
        WorkItem(
            work_item_id=work_id,
            work_type=work_type,
            description=f"item {work_id}",
            priority=priority,
            team=team,
            created_at=created,
        )
        for work_id, priority, work_type, team, created in ITEMS
    ]


def _same_operations(store: Any) -> None:
    for work_id in CANCELLED:
        store.cancel(work_id, "not needed")
    for work_id in [*CLAIMED, COMPLETED]:
        assert store.claim_id("agent_1", work_id) is not None
    store.complete(COMPLETED, agent_id="agent_1")


@pytest.fixture
def both(tmp_path: Path, pg_dsn: str, pg_schema: str) -> Any:
    """The same items, in the same states, in a file store and in PostgreSQL."""
    files = FileStore(tmp_path / "store")
    files.add_many(_work_items())
    pg = PostgresStore(pg_dsn, schema=pg_schema)
    pg.add_many(_work_items())
    # PostgreSQL stamps items with its own clock: give them the file store's times.
    with psycopg.connect(pg_dsn, options=f"-c search_path={pg_schema}", autocommit=True) as conn:
        for work_id, _priority, _type, _team, created in ITEMS:
            conn.execute(
                "UPDATE work_items SET created_at = %s WHERE work_item_id = %s", (created, work_id)
            )
    for store in (files, pg):
        _same_operations(store)
    yield files, pg
    files.close()
    pg.close()


def _ids(items: list[WorkItem]) -> list[str]:
    return [i.work_item_id for i in items]


def test_postgresql_pages_are_the_file_store_s_listing(both: Any) -> None:
    files, pg = both
    # The file store's list order is records.list_order; PostgreSQL's list_work too.
    assert _ids(files.list_work()) == _ids(sorted(files.list_work(), key=list_order))
    assert _ids(pg.list_work()) == _ids(files.list_work())
    assert _ids(pg.list_work(include_terminal=False)) == _ids(files.list_work(False))
    for filters in FILTERS:
        for offset, limit in PAGES:
            expected = page_work(files, filters, offset, limit)  # filters the full list
            got = pg.page_work(filters, offset, limit)
            assert (_ids(got.items), got.total) == (_ids(expected.items), expected.total), (
                filters,
                offset,
                limit,
            )
            by_id = {i.work_item_id: i for i in pg.list_work()}
            assert all(item == by_id[item.work_item_id] for item in got.items)


def test_the_file_store_s_pages_and_summaries_in_sql_are_its_listing_s(both: Any) -> None:
    """The file store answers them in state.sqlite: the same as filtering its listing."""
    files, _pg = both
    everything = files.list_work()
    for filters in FILTERS:
        listed = [i for i in files.list_work(filters.include_terminal) if filters.accepts(i)]
        for offset, limit in PAGES:
            got = files.page_work(filters, offset, limit)
            assert (got.items, got.total) == (listed[offset : offset + limit], len(listed)), (
                filters,
                offset,
                limit,
            )
    assert files.work_counts() == Counter(str(i.status) for i in everything)
    assert files.holdings() == {a: sorted(ids) for a, ids in holdings_of(everything).items()}
    assert sorted(files.finished_since(0.0)) == sorted(finished_of(everything, 0.0))


def test_a_page_follows_list_work_s_order_and_rules(both: Any) -> None:
    _files, pg = both
    live = pg.page_work(WorkFilter(), 0, 100)
    assert live.total == len(ITEMS) - 3 == len(live.items)
    tied_live = [i for i in TIED if i not in CANCELLED]
    assert _ids(live.items) == ["old-crit", "early-high", "mid-high", *tied_live, "old-low"]
    everything = pg.page_work(WorkFilter(include_all=True), 0, 100)
    assert _ids(everything.items)[:2] == ["old-crit", "new-crit"]
    assert everything.total == len(ITEMS)
    # A filter naming a finished status lists finished items, as `list-work cancelled`.
    named = pg.page_work(WorkFilter(statuses=frozenset({"cancelled", "claimed"})), 0, 100)
    assert _ids(named.items) == ["old-crit", "late-high", "Z", "a_1"]
    assert pg.page_work(WorkFilter(statuses=frozenset({"completed"})), 0, 5).total == 1
    # Each field narrows; the sets are any-of.
    typed = pg.page_work(WorkFilter(work_types=frozenset({"docs"}), teams=frozenset({"web"})), 0, 9)
    assert _ids(typed.items) == ["a_1"] and typed.total == 1
    high = pg.page_work(WorkFilter(priorities=frozenset({"high"})), 0, 100)
    assert _ids(high.items) == ["early-high", "mid-high"]
    # Pages: the total is the whole listing's; past the end, no items and the total.
    second = pg.page_work(WorkFilter(), 3, 4)
    assert _ids(second.items) == _ids(live.items)[3:7] and second.total == live.total
    beyond = pg.page_work(WorkFilter(), 500, 10)
    assert beyond.items == [] and beyond.total == live.total
    assert pg.page_work(WorkFilter(teams=frozenset({"nobody"})), 0, 10) == ([], 0)


def test_the_traced_store_and_the_api_s_sources_use_the_sql_page(
    both: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.web.queries import Sources

    _files, pg = both
    expected = pg.page_work(WorkFilter(), 1, 3)

    def listed(*args: Any) -> Any:
        raise AssertionError("the whole store was listed")

    monkeypatch.setattr(pg, "list_work", listed)
    assert page_work(TracedStore(pg, "postgres"), WorkFilter(), 1, 3) == expected
    sources = Sources(context=None)  # type: ignore[arg-type]  # the store is set below
    sources._store = TracedStore(pg, "postgres")
    assert sources.work(WorkFilter(), 1, 3) == expected


def test_the_dashboard_s_page_reads_an_index_not_the_table(pg_dsn: str, pg_schema: str) -> None:
    store = PostgresStore(pg_dsn, schema=pg_schema)
    try:
        for start in range(0, 20_000, 5000):
            store.add_many(
                [
                    WorkItem(work_item_id=f"w{n}", work_type="t", description="d")
                    for n in range(start, start + 5000)
                ]
            )
    finally:
        store.close()
    with psycopg.connect(pg_dsn, options=f"-c search_path={pg_schema}", autocommit=True) as conn:
        conn.execute("UPDATE work_items SET status = 'completed' WHERE seq % 2 = 0")
        conn.execute("VACUUM ANALYZE work_items")
        for filters, index in [
            (WorkFilter(), "work_items_live_order"),
            (WorkFilter(statuses=frozenset({"pending", "in_progress"})), "work_items_live_order"),
            (WorkFilter(include_all=True), "work_items_order"),
        ]:
            sql, params = page_sql(filters)
            plan = conn.execute(
                f"EXPLAIN (FORMAT JSON) {sql}", params | {"offset": 0, "limit": 100}
            ).fetchone()
            assert plan is not None
            # The page's rows come from the index, in order: no sort of the table.
            limit = _node(plan[0][0]["Plan"], "Limit")
            assert [(n["Node Type"], n.get("Index Name")) for n in limit["Plans"]] == [
                ("Index Scan", index)
            ], (filters, json.dumps(plan[0], indent=1))


def _node(plan: dict[str, Any], kind: str) -> dict[str, Any]:
    if plan["Node Type"] == kind:
        return plan
    for child in plan.get("Plans", []):
        try:
            return _node(child, kind)
        except LookupError:
            continue
    raise LookupError(kind)


def test_postgresql_summaries_are_the_file_store_s_without_listing_it(
    both: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    files, pg = both

    def listed(*args: Any) -> Any:
        raise AssertionError("the summaries aggregate in SQL, not from list_work")

    monkeypatch.setattr(pg, "list_work", listed)
    expected = Counter(
        pending=len(ITEMS) - len(CANCELLED) - len(CLAIMED) - 1,
        cancelled=len(CANCELLED),
        claimed=len(CLAIMED),
        completed=1,
    )
    for store in (files, pg, TracedStore(pg, "postgres")):
        assert work_counts(store) == expected
        assert {a: sorted(ids) for a, ids in holdings(store).items()} == {
            "agent_1": sorted(CLAIMED)
        }
        (finished,) = finished_since(store, 0.0)
        assert finished[1] == "completed" and finished[0] > 0
        assert finished_since(store, finished[0] + 1) == []


def test_an_item_s_children_come_from_the_edges_on_postgresql(
    tmp_path: Path, pg_dsn: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    family = [
        WorkItem("p", "t", "parent"),
        WorkItem("c2", "t", "second child", parents=["p"]),
        WorkItem("c1", "t", "first child", parents=["p", "q"]),
        WorkItem("q", "t", "another parent"),
    ]
    files = FileStore(tmp_path / "store")
    pg = PostgresStore(pg_dsn, schema=pg_schema)
    try:
        for store in (files, pg):
            store.add_many(family)
        monkeypatch.setattr(pg, "list_work", lambda *a: pytest.fail("listed the store"))
        for store in (files, pg, TracedStore(pg, "postgres")):
            assert sorted(_ids(children_of(store, "p"))) == ["c1", "c2"]
            assert _ids(children_of(store, "q")) == ["c1"]
            assert children_of(store, "c1") == []
    finally:
        files.close()
        pg.close()


def test_a_run_s_counts_in_the_file_store_are_its_listing_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The live view's progress: a run's items and those that wait for them, counted
    by status from the stored text, not by decoding every item."""
    files = FileStore(tmp_path / "store")
    files.add_many(
        [
            WorkItem("p1", "t", "a run's item"),
            WorkItem("p2", "t", "another", priority="high"),
            WorkItem("x1", "t", "not the run's"),
            WorkItem("c1", "t", "waits for p1", parents=["p1"]),
            WorkItem("g1", "t", "waits for c1", parents=["c1"]),
            WorkItem("c2", "t", "waits for p2 and x1", parents=["p2", "x1"]),
            WorkItem("y1", "t", "waits for x1", parents=["x1"]),
        ]
    )
    assert files.claim_id("agent_1", "p1") is not None
    files.complete("p1", agent_id="agent_1")
    listing = files.list_work()
    monkeypatch.setattr(files, "list_work", lambda *a: pytest.fail("listed the store"))
    for run in (["p1", "p2"], ["p1"], ["x1"], [], ["gone"]):
        for store in (files, TracedStore(files, "file")):
            assert run_counts(store, run) == run_counts_of(listing, run), run
    assert run_counts(files, ["p1"]) == Counter(completed=1, pending=1, blocked=1)
    files.close()
