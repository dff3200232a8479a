"""The agent's side of pipelines: parents' outputs filled in or given as context,
follow-ups validated; and a python planner's follow-ups run end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.backends import Outcome
from agents.pipeline import CONTEXT_CHARS, downstream, follow_ups
from orchestrator.config import AgentGroup
from orchestrator.records import WorkItem
from orchestrator.store.file import FileStore

from .test_supervisor import swarm, write_config


def parent(key: str, result: object) -> WorkItem:
    return WorkItem(
        f"work_{key}", "step", key, key=f"plan/{key}", result=result, status="completed"
    )


def test_parents_outputs_fill_argv_and_env() -> None:
    parents = [parent("a", {"exit_code": 0, "stdout": "A-out"}), parent("b", "B text")]
    child = WorkItem(
        "work_c",
        "join",
        "join {parents.plan/a.work_item_id}",
        payload={
            "argv": ["echo", "{parents.a.output}", "{parents.b.result}"],
            "env": {"X": "{parents.a.result}"},
        },
        parents=["work_a", "work_b"],
    )
    ready = downstream(child, parents, "command")
    assert ready.payload["argv"] == ["echo", "A-out", "B text"]
    assert ready.payload["env"] == {"X": '{"exit_code":0,"stdout":"A-out"}'}
    assert ready.description == "join work_a"
    assert child.payload["argv"][1] == "{parents.a.output}"  # the stored item is untouched


def test_a_placeholder_naming_no_parent_is_an_error_naming_the_parents() -> None:
    child = WorkItem("work_c", "t", "use {parents.zzz.output}", parents=["work_a"])
    with pytest.raises(
        ValueError, match=r"'zzz' is not a parent of this item \(its parents: work_a\)"
    ):
        downstream(child, [parent("a", "x")], "command")


def test_llm_items_get_their_parents_outputs_as_bounded_context() -> None:
    parents = [parent("a", "short answer"), parent("b", "y" * 50_000)]
    child = WorkItem("work_c", "t", "review both", parents=["work_a", "work_b"])
    ready = downstream(child, parents, "ollama")
    assert ready.description.startswith("Results of the work this task builds on:")
    assert "## plan/a (step)\nshort answer" in ready.description
    assert ready.description.endswith("Your task:\nreview both")
    assert CONTEXT_CHARS < len(ready.description) < CONTEXT_CHARS + 500
    prompt = WorkItem("work_d", "t", "d", payload={"prompt": "p?"}, parents=["work_a"])
    assert downstream(prompt, parents[:1], "claude").payload["prompt"].endswith("Your task:\np?")
    assert downstream(child, parents, "command") == child  # commands get no context


def test_an_invalid_plan_or_enqueue_is_a_validation_error() -> None:
    planner = AgentGroup(name="p", backend="ollama", plan=True)
    item = WorkItem("work_p", "task", "plan it")
    with pytest.raises(ValueError, match="not a JSON list of sub-tasks"):
        follow_ups(item, Outcome(True, output="Sure! Here is my plan: 1. …"), planner)
    with pytest.raises(ValueError, match=r"0\.description"):
        follow_ups(item, Outcome(True, output='[{"description": ""}]'), planner)
    fenced = '```json\n[{"description": "one", "key": "k"}]\n```'
    (child,) = follow_ups(item, Outcome(True, output=fenced), planner)
    assert (child.work_type, child.key, child.parents) == ("subtask", "work_p/k", ["work_p"])
    worker = AgentGroup(name="w", backend="python", function="m:f")
    with pytest.raises(ValueError, match="the result's enqueue is not valid"):
        follow_ups(item, Outcome(True, output={"enqueue": [{"nope": 1}]}), worker)
    with pytest.raises(ValueError, match="no follow-up has that key"):
        follow_ups(
            item, Outcome(True, output={"enqueue": [{"description": "a", "after": ["b"]}]}), worker
        )
    assert follow_ups(item, Outcome(True, output={"answer": 1}), worker) == []


def test_a_python_planner_enqueues_parts_and_a_join_that_reads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(
        tmp_path,
        '[[agents]]\nname = "py"\ncount = 2\nbackend = "python"\n'
        'function = "tests.pipeline_functions:split"\nwork_types = ["job", "part", "join"]\n\n'
        '[[agents]]\nname = "bad"\nbackend = "python"\n'
        'function = "tests.pipeline_functions:bad_enqueue"\nwork_types = ["bad"]\n',
        '[[work]]\nwork_type = "job"\ndescription = "the job"\nkey = "job"\n\n'
        '[[work]]\nwork_type = "bad"\ndescription = "bad"\nkey = "bad"\n',
    )
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent.parent))  # tests.*
    run = swarm(tmp_path, "up", "--until-drained", timeout=180)
    with FileStore(tmp_path / "agent_coordination") as store:
        items = {i.key or i.work_type: i for i in store.list_work()}
    assert items["bad"].status == "dead" and "0.description" in str(items["bad"].error)
    assert run.returncode != 0  # a dead item fails the run, as documented
    assert {items[k].status for k in ("job", "job/p0", "job/p1", "job/p2", "join")} == {"completed"}
    assert items["join"].result == "part 0 of x | part 1 of x | part 2 of x"


def test_work_tables_wait_for_every_copy_of_the_tables_they_name(tmp_path: Path) -> None:
    from orchestrator.config import load_config
    from orchestrator.workspec import configured_items

    (tmp_path / "swarm.toml").write_text(
        '[[work]]\nwork_type = "join"\ndescription = "j"\nkey = "join"\n'
        'after = ["step", "other#1"]\n\n'
        '[[work]]\nwork_type = "step"\ndescription = "s"\nkey = "step"\ncount = 3\n'
    )
    items = configured_items(load_config(tmp_path / "swarm.toml"))
    assert [i.key for i in items] == ["step", "step#2", "step#3", "join"]  # parents first
    assert items[-1].parents == ["step", "step#2", "step#3", "other#1"]
    assert all(i.parents is None for i in items[:3])


def test_a_cancelled_llm_call_is_abandoned_at_once() -> None:
    import threading
    import time

    from agents.pipeline import run_item

    release = threading.Event()

    class Slow:
        name = "slow"

        def run(self, item: WorkItem, cancel: threading.Event) -> Outcome:
            release.wait(30)  # a call that does not look at cancel
            return Outcome(True, output="late")

    abort = threading.Event()
    group = AgentGroup(name="g", backend="ollama")
    threading.Timer(0.2, abort.set).start()
    started = time.monotonic()
    outcome = run_item(Slow(), group, WorkItem("work_x", "t", "d"), [], abort, False)
    assert not outcome.ok and outcome.error == "abandoned: the item is no longer held"
    assert time.monotonic() - started < 10
    release.set()
