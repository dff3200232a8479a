"""The example swarms load, and trying one never touches another's work or files."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from orchestrator.config import SwarmConfig, load_config
from orchestrator.telemetry.settings import resolve_settings

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.toml"))


def written_paths(config: SwarmConfig) -> dict[str, Path]:
    """Everything a swarm of this config writes, resolved."""
    telemetry = resolve_settings(config)
    return {
        "store": Path(config.store_target()),
        "agents_dir": config.resolve(config.supervisor.agents_dir),
        "results_dir": config.resolve(config.supervisor.results_dir),
        "spans_file": Path(telemetry.spans_file),
        "archive_dir": Path(telemetry.archive_dir),
        "health_report": Path(telemetry.health_report),
    }


def test_there_are_examples() -> None:
    assert {path.name for path in EXAMPLES} >= {"ollama.toml", "claude.toml"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_an_example_has_its_own_store_work_types_and_ignored_files(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("TELEMETRY_SPANS_FILE", "TELEMETRY_ARCHIVE_DIR"):
        monkeypatch.delenv(name, raising=False)  # the paths of the file itself
    config = load_config(path)
    assert config.agents and config.work

    # Its agents claim only its own work types, which no other swarm here enqueues.
    claimed = {t for group in config.agents for t in group.work_types or ()}
    assert all(group.work_types for group in config.agents), "a group would claim anything"
    assert {w.work_type for w in config.work} <= claimed
    others = [load_config(p) for p in [*EXAMPLES, ROOT / "swarm.toml"] if p != path]
    for other in others:
        assert not claimed & {w.work_type for w in other.work}, other.source

    # Its files are its own and git-ignored.
    mine = written_paths(config)
    for other in others:
        theirs = set(written_paths(other).values())
        assert not set(mine.values()) & theirs, other.source
    for what, written in mine.items():
        relative = written.relative_to(ROOT)
        ignored = subprocess.run(
            ["git", "check-ignore", "--no-index", "-q", str(relative / "x")],
            cwd=ROOT,
            capture_output=True,
        )
        assert ignored.returncode == 0, f"{path.name}: {what} {relative} is not git-ignored"
