"""How the `swarm` command is put together: global options anywhere, --version, shell
completion, an example ending every --help, uncut summaries, `swarm init`,
`python -m orchestrator`, and what a coordination command imports."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import orjson
import pytest

from orchestrator.cli import main
from orchestrator.cli.app import all_commands, commands_in
from orchestrator.cli.catalog import CATALOG, MODULES
from orchestrator.config import load_config
from orchestrator.workspec import configured_items

from .conftest import SWARM


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("AGENT_ID", "SWARM_CONFIG")}
    base.pop("SWARM_STORE", None)
    return subprocess.run(
        [SWARM, *args], cwd=cwd, env=base | (env or {}), capture_output=True, text=True, timeout=60
    )


def one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("swarm: error: "), result.stderr
    return lines[0]


def command_paths() -> list[tuple[str, ...]]:
    """Every command, and every command of a group, as the words that run it."""
    from orchestrator.cli.app import LazyGroup

    group = LazyGroup(name="swarm")
    paths: list[tuple[str, ...]] = []
    for name in all_commands():
        command = group.get_command(None, name)
        paths.append((name,))
        paths.extend((name, sub) for sub in getattr(command, "commands", {}))
    return paths


# -- assembly ------------------------------------------------------------------------------


def test_the_catalog_names_every_command_and_its_module() -> None:
    """A command missing from the catalog still runs, but imports every module to be
    found: list it in orchestrator/cli/catalog.py with its module, summary, example."""
    found = {name: module for module in MODULES for name in commands_in(module)}
    listed = {name: e.module for name, e in CATALOG.items() if " " not in name}
    assert found == listed
    for path in command_paths():
        assert " ".join(path) in CATALOG, f"{' '.join(path)}: add it to the catalog"


def test_help_lists_every_command_with_its_whole_summary(tmp_path: Path) -> None:
    out = run("--help", cwd=tmp_path).stdout
    for name, info in all_commands().items():
        summary = CATALOG[name].summary
        if getattr(info, "hidden", False):  # SwarmSH's long alias names
            assert len(summary) <= 55 and name not in out, name
            continue
        assert len(summary) <= 55, f"{name}: keep the summary short: {summary!r}"
        assert any(line.split() == [name, *summary.split()] for line in out.splitlines()), (
            f"{name}: {summary!r} not on one line of swarm --help"
        )
    commands = out.split("Commands:")[1]
    assert "..." not in commands and "3 conflict" in out


def test_every_command_help_ends_with_an_example_and_takes_the_global_options(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for path in command_paths():
        assert main([*path, "--help"]) == 0
        out = capsys.readouterr().out
        last = out.strip().splitlines()[-1].strip()
        assert last.startswith("Example: swarm "), (path, last)
        assert "-c, --config FILE" in out and "--store PATH|URL" in out, path


def test_no_command_prints_the_help_as_swarmsh_does(tmp_path: Path) -> None:
    for args in ((), ("db",), ("telemetry",)):
        shown = run(*args, cwd=tmp_path)
        assert shown.returncode == 0 and shown.stderr == "", shown.stderr
        assert shown.stdout.startswith(f"Usage: swarm {' '.join(args)}".rstrip() + " [OPTIONS]")


# -- global options --------------------------------------------------------------------------


def test_config_after_the_command_is_read(tmp_path: Path) -> None:
    error = one_line_error(run("up", "-c", "missing.toml", "--detach", cwd=tmp_path), 2)
    assert "missing.toml: no such file" in error
    (tmp_path / "other.toml").write_text('[store]\npath = "from_other"\n')
    added = run("add", "feature", "x", "--config", "other.toml", "--json", cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    assert (tmp_path / "from_other").is_dir()


def test_store_after_the_command_wins_over_before_and_environment(tmp_path: Path) -> None:
    env = {"SWARM_STORE": str(tmp_path / "from_env")}
    assert run("add", "feature", "x", cwd=tmp_path, env=env).returncode == 0
    assert run("--store", "before", "add", "feature", "x", cwd=tmp_path, env=env).returncode == 0
    added = run("--store", "before", "add", "feature", "x", "--store", "after", cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    counts = {}
    for store in ("from_env", "before", "after"):
        listed = run("list-work", "--json", "--store", store, cwd=tmp_path)
        counts[store] = len(orjson.loads(listed.stdout))
    assert counts == {"from_env": 1, "before": 1, "after": 1}


def test_global_options_on_a_group_and_its_commands(tmp_path: Path) -> None:
    (tmp_path / "t.toml").write_text('[telemetry]\nwindow = "7d"\n')
    for args in (
        ("telemetry", "stats", "-c", "t.toml", "--json"),
        ("telemetry", "-c", "t.toml", "stats", "--json"),
    ):
        stats = run(*args, cwd=tmp_path)
        assert stats.returncode == 0, stats.stderr
        assert orjson.loads(stats.stdout)["window"] == "7d"


# -- version, completion, python -m --------------------------------------------------------


def test_version(tmp_path: Path) -> None:
    out = run("--version", cwd=tmp_path)
    assert out.returncode == 0 and out.stdout == f"swarm {metadata.version('swarmsh')}\n"


def test_python_m_orchestrator_is_the_swarm_command(tmp_path: Path) -> None:
    for module in ("orchestrator", "orchestrator.cli"):
        out = subprocess.run(
            [sys.executable, "-m", module, "generate-id"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0 and out.stdout.startswith("agent_"), out.stderr


def test_shell_completion(tmp_path: Path) -> None:
    def complete(words: str) -> list[str]:
        env = {
            "_SWARM_COMPLETE": "complete_bash",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split()) - 1),
        }
        return run(cwd=tmp_path, env=env).stdout.split()

    # SwarmSH's names too, hidden or not
    assert complete("swarm claim-") == ["claim-fast", "claim-slow", "claim-intelligent"]
    assert complete("swarm telemetry st") == ["stats"]
    # The shell named, not detected from the processes above the test run (which finds
    # none when the run has no shell among its ancestors).
    no_detection = {"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    script = run("--show-completion", "bash", cwd=tmp_path, env=no_detection)
    assert script.returncode == 0 and "_SWARM_COMPLETE" in script.stdout


# -- swarm init ---------------------------------------------------------------------------------


def test_init_writes_a_config_that_loads_and_validates(tmp_path: Path) -> None:
    written = run("init", cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    config = load_config(tmp_path / "swarm.toml")
    assert [(g.name, g.backend) for g in config.agents] == [
        ("workers", "command"),
        ("ollama", "ollama"),
        ("claude", "claude"),
    ]
    assert configured_items(config), "the [[work]] examples enqueue something"
    assert (tmp_path / "swarm.toml").read_text().count("\n#") > 10, "it is commented"
    checked = run("validate", "--json", cwd=tmp_path)
    assert checked.returncode == 0 and orjson.loads(checked.stdout)["ok"], checked.stdout


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    config = tmp_path / "swarm.toml"
    config.write_text("# mine\n")
    assert "already exists" in one_line_error(run("init", cwd=tmp_path), 3)
    assert config.read_text() == "# mine\n"
    assert run("init", "--force", cwd=tmp_path).returncode == 0
    load_config(config)
    assert run("init", "-c", "other.toml", cwd=tmp_path).returncode == 0
    load_config(tmp_path / "other.toml")


# -- what a coordination command costs ------------------------------------------------------

# Imported by no coordination command without a swarm.toml; each cost a new process
# milliseconds to tens of milliseconds (bench/cli_bench.py measures the whole).
HEAVY = (
    "rich",
    "pydantic",
    "psutil",
    "multiprocess",
    "prometheus_client",
    "psycopg",
    "ollama",
    "anthropic",
    "opentelemetry.sdk.trace",
    "opentelemetry.sdk.resources",
    "socket",
    "orchestrator.config",
    "orchestrator.supervisor",
    "orchestrator.cli.run",
    "orchestrator.cli.observe",
    "typer.rich_utils",
)


def imported_by(args: list[str], cwd: Path, **env: str) -> set[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("SWARM_CONFIG", "SWARM_STORE")}
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "orchestrator", *args],
        cwd=cwd,
        env=base | {"AGENT_ID": "agent_1"} | env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return {
        line.split("|")[-1].strip()
        for line in out.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def test_coordination_commands_import_only_what_they_run(tmp_path: Path) -> None:
    spans = Path(os.environ["TELEMETRY_SPANS_FILE"])
    work_id = subprocess.run(
        [SWARM, "claim", "feature", "x", "-q"],
        cwd=tmp_path,
        env=os.environ | {"SWARM_STORE": str(tmp_path / "store"), "AGENT_ID": "agent_1"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    for args in (
        ["add", "feature", "x", "high"],
        ["claim", "feature", "x", "high"],
        ["progress", work_id, "50"],
        ["complete", work_id, "success"],
    ):
        modules = imported_by(args, tmp_path, SWARM_STORE=str(tmp_path / "store"))
        heavy = sorted(m for m in modules if _is_module_of(m, HEAVY))
        assert heavy == [], f"swarm {args[0]} imports {heavy}"
        # Its span without the OpenTelemetry API (an eighth of the process): only the
        # SDK's version string, for the resource.
        otel = sorted(
            m for m in modules if _is_module_of(m, ("opentelemetry", "typing_extensions"))
        )
        assert otel == ["opentelemetry", "opentelemetry.sdk", "opentelemetry.sdk.version"], otel
        assert "orchestrator.telemetry.oneshot" in modules
    # ... and still records one span per operation.
    names = [orjson.loads(line)["name"] for line in spans.read_bytes().splitlines()]
    assert names == [
        "swarm.claim_new",
        "swarm.add_work",
        "swarm.claim_new",
        "swarm.progress",
        "swarm.complete",
    ]


def _is_module_of(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def test_a_swarm_toml_is_read_when_present(tmp_path: Path) -> None:
    (tmp_path / "swarm.toml").write_text('[store]\npath = "s"\n')
    assert "orchestrator.config" in imported_by(["add", "feature", "x"], tmp_path)
    assert (tmp_path / "s").is_dir()
