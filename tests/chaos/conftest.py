"""Chaos scenarios run small in `make test` (CHAOS_SCALE=ci) and full in `make chaos`
(CHAOS_SCALE=full), which also writes the report named by CHAOS_REPORT."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import RESULTS, stop_started

FULL = os.environ.get("CHAOS_SCALE", "ci") == "full"


def scale(ci: int, full: int) -> int:
    return full if FULL else ci


@pytest.fixture(autouse=True)
def _stop_what_the_test_started() -> Iterator[None]:
    yield
    stop_started()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/chaos/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.chaos)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = os.environ.get("CHAOS_REPORT")
    if not target or not RESULTS:
        return
    Path(target).write_text(render(RESULTS))


def render(results: list[dict[str, object]]) -> str:
    from .report import REPORT_HEAD, REPORT_TAIL

    rows = [
        "| scenario | items | faults | completed | lost | doubled | re-run after a fault |"
        " wrong holder | result files missing | log mismatches | run s | recover s | holds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rows.append(
            f"| {r['scenario']} | {r['items']} | {r['faults']} | {r['completed']} | {r['lost']}"
            f" | {r['doubled']} | {r['re_executed_after_fault']} | {r['wrong_holder']}"
            f" | {r['result_files_missing']} | {r['log_mismatches']} | {r['duration_s']}"
            f" | {r['recover_s'] if r['recover_s'] is not None else '-'}"
            f" | {'yes' if r['ok'] else '**no**'} |"
        )
    notes = [f"- {r['scenario']}: {n}" for r in results for n in r["notes"]]  # type: ignore[attr-defined]
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    scale_name = "full" if FULL else "ci (reduced)"
    return (
        REPORT_HEAD
        + f"\n## Figures of the last run\n\n`make chaos`, {stamp}, scale: {scale_name}.\n\n"
        + "\n".join(rows)
        + ("\n\n" + "\n".join(notes) if notes else "")
        + "\n"
        + REPORT_TAIL
    )
