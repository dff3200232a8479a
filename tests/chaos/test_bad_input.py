"""Bad input never yields a traceback: always a documented exit code and one line,
and ids can never name a path outside the store and results folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.cli import main
from orchestrator.config import load_config
from orchestrator.errors import ConfigError, InvalidArgument, StoreError
from orchestrator.ids import check_id
from orchestrator.store.file import FileStore

EXIT_CODES = {0, 1, 2, 3, 4, 5, 6}
COMMANDS = [
    "register",
    "deregister",
    "agent-status",
    "claim",
    "add",
    "progress",
    "complete",
    "fail",
    "release",
    "list-work",
    "dashboard",
    "generate-id",
    "compact",
]
# Commands that start or stop swarms are left out: they are exercised elsewhere.
WORDS = st.sampled_from(
    [
        "--json",
        "--next",
        "-q",
        "--type",
        "--team",
        "--payload",
        "--all",
        "--limit",
        "--agent-id",
        "--retry",
        "high",
        "critical",
        "urgent",
        "success",
        "blocked",
        "100",
        "-1",
        "101",
        "22",
        "0",
        "x" * 300,
        "../../etc/passwd",
        "work_1_a",
        "{}",
        "{bad",
        "null",
        "é☃",
        "",
    ]
)
ARGS = st.lists(st.one_of(WORDS, st.text(max_size=20)), max_size=6)
QUICK = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@QUICK
@given(command=st.sampled_from(COMMANDS), args=ARGS)
def test_random_command_lines(
    command: str,
    args: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SWARM_STORE", str(tmp_path / "store"))
    monkeypatch.delenv("AGENT_ID", raising=False)
    monkeypatch.chdir(tmp_path)
    code = main([command, *args])
    err = capsys.readouterr().err
    assert code in EXIT_CODES
    assert "Traceback" not in err
    if code:
        assert len(err.strip().splitlines()) == 1, err
    # Nothing written but the store and the span file (with its lock).
    spans = {"telemetry_spans.jsonl", "telemetry_spans.jsonl.lock"}
    assert {p.name for p in tmp_path.iterdir()} <= {"store", *spans}


SHIPPED = (Path(__file__).resolve().parents[2] / "swarm.toml").read_text()


@QUICK
@given(data=st.data())
def test_mangled_swarm_toml(data: st.DataObject, tmp_path: Path) -> None:
    lines = SHIPPED.splitlines()
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(lines) - 1))
        action = data.draw(st.sampled_from(["drop", "garble", "value", "dup"]))
        if action == "drop":
            lines.pop(index)
        elif action == "garble":
            lines[index] = data.draw(st.text(max_size=40))
        elif action == "value" and "=" in lines[index]:
            key = lines[index].split("=")[0]
            value = data.draw(
                st.sampled_from(
                    ["-1", '"x"', "1e999", "[]", "{}", "true", '"../../.."', "99999999999999999999"]
                )
            )
            lines[index] = f"{key}= {value}"
        else:
            lines.insert(index, lines[index])
        if not lines:
            lines = [""]
    path = tmp_path / "swarm.toml"
    path.write_text("\n".join(lines))
    try:
        load_config(path)
    except ConfigError as exc:
        assert "\n" not in exc.message and str(path) in exc.message


@QUICK
@given(
    name=st.sampled_from([FileStore.JOURNAL, FileStore.WORK, FileStore.AGENTS]),
    content=st.one_of(
        st.binary(max_size=300),
        st.sampled_from(
            [
                b"[]",
                b"{}",
                b"[1, 2]",
                b'[{"work_item_id": "../x"}]',
                b'[{"work_item_id": "w1", "work_type": "t", "description": "d",'
                b' "priority": "high", "created_at": "yesterday"}]',
                b'{"c":1,"e":{"op":"add"}}\n',
                b"\xff\xfe\x00",
                b'[{"agent_id": 5}]',
            ]
        ),
    ),
)
def test_garbage_store_files(name: str, content: bytes, tmp_path: Path) -> None:
    folder = tmp_path / "store"
    folder.mkdir(exist_ok=True)
    (folder / name).write_bytes(content)
    try:
        store = FileStore(folder)
        store.list_work()
        store.list_agents()
        store.add_work(store_item())  # still writable, or a clear error
        store.close()
    except StoreError as exc:
        assert "\n" not in exc.message


def store_item():  # type: ignore[no-untyped-def]
    from orchestrator.records import WorkItem

    return WorkItem(work_item_id="", work_type="t", description="d")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_ids_never_name_a_path_outside(value: str) -> None:
    try:
        checked = check_id(value)
    except InvalidArgument:
        return
    assert os.sep not in checked and checked not in (".", "..") and not checked.startswith(".")
    assert os.path.basename(os.path.normpath(checked)) == checked
