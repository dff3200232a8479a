"""swarm.toml's [[work]] as work items: the key each item gets, so a restart finds it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from orchestrator.config import load_config
from orchestrator.errors import ConfigError
from orchestrator.workspec import configured_items


def _keys(tmp_path: Path, work: str) -> list[str | None]:
    (tmp_path / "swarm.toml").write_text(work)
    return [item.key for item in configured_items(load_config(tmp_path / "swarm.toml"))]


def test_derived_keys_are_the_documented_hash_and_stable(tmp_path: Path) -> None:
    work = (
        '[[work]]\nwork_type = "sum"\ndescription = "sha of {file}"\nforeach = "*.txt"\n'
        'payload = { argv = ["sha256sum", "{file}"], env = { B = 1, A = 2 } }\n'
    )
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "b.txt").write_text("b")
    keys = _keys(tmp_path, work)
    content = ["sum", "sha of a.txt", {"argv": ["sha256sum", "a.txt"], "env": {"A": 2, "B": 1}}]
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert keys[0] == f"sum:{hashlib.sha256(canonical.encode()).hexdigest()[:16]}"
    assert len(set(keys)) == 2 and _keys(tmp_path, work) == keys
    # Priority and team do not make the work new; description and payload do.
    assert _keys(tmp_path, work + 'priority = "high"\nteam = "core"\n') == keys
    assert _keys(tmp_path, work.replace("sha of", "hash of"))[0] != keys[0]


def test_copies_keep_the_first_key_and_number_the_others(tmp_path: Path) -> None:
    one = _keys(tmp_path, '[[work]]\nwork_type = "t"\ndescription = "d"\n')
    three = _keys(tmp_path, '[[work]]\nwork_type = "t"\ndescription = "d"\ncount = 3\n')
    assert three == [one[0], f"{one[0]}#2", f"{one[0]}#3"]


def test_a_given_key_is_used_and_made_distinct_per_file_and_copy(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    for name in ("a.py", "b.py"):
        (tmp_path / "src" / name).write_text("")
    base = '[[work]]\nwork_type = "lint"\ndescription = "lint {file}"\n'
    assert _keys(tmp_path, base + 'key = "lint-all"\n') == ["lint-all"]
    assert _keys(tmp_path, base + 'key = "lint"\nforeach = "src/*.py"\ncount = 2\n') == [
        "lint:src/a.py",
        "lint:src/a.py#2",
        "lint:src/b.py",
        "lint:src/b.py#2",
    ]
    assert _keys(tmp_path, base + 'key = "{file} linted"\nforeach = "src/*.py"\n') == [
        "src/a.py linted",
        "src/b.py linted",
    ]


def test_a_bad_key_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "swarm.toml").write_text('[[work]]\nwork_type = "t"\ndescription = "d"\nkey = ""\n')
    with pytest.raises(ConfigError, match=r"swarm.toml:4: \[\[work\]\] #1 key: "):
        load_config(tmp_path / "swarm.toml")
