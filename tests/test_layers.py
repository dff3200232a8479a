"""The layers call downwards only: checked on the source, every import included
(those inside functions and under TYPE_CHECKING too)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imports_of(package: str) -> dict[str, set[str]]:
    """Each module of ``package`` (a folder under the repository) -> what it imports."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        found[module] = names
    return found


def offenders(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{module} imports {name}"
        for module, names in imports_of(package).items()
        for name in names
        if name.startswith(forbidden)
    )


def test_the_store_knows_nothing_above_it() -> None:
    above = (
        "orchestrator.telemetry",
        "orchestrator.config",
        "orchestrator.cli",
        "orchestrator.context",
        "orchestrator.wiring",
        "orchestrator.supervisor",
        "agents",
    )
    assert offenders("orchestrator/store", above) == []


def test_backends_know_records_not_the_store() -> None:
    assert offenders("agents/backends", ("orchestrator.store", "orchestrator.telemetry")) == []


def test_records_and_files_are_the_ground_floor() -> None:
    for ground in ("orchestrator/records.py", "orchestrator/files.py", "orchestrator/locations.py"):
        module = ".".join(Path(ground).with_suffix("").parts)
        names = imports_of("orchestrator")[module]
        allowed = ("orchestrator.errors", "orchestrator.ids")
        assert [
            n for n in names if n.startswith("orchestrator") and not n.startswith(allowed)
        ] == []


def test_nothing_but_the_command_line_imports_it() -> None:
    outside = {
        module: names
        for package in ("orchestrator", "agents")
        for module, names in imports_of(package).items()
        # `python -m orchestrator` is the command line too
        if not module.startswith(("orchestrator.cli", "orchestrator.__main__"))
    }
    assert [
        m for m, names in outside.items() if any(n.startswith("orchestrator.cli") for n in names)
    ] == []


def test_modules_stay_small() -> None:
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text().splitlines())
        for package in ("orchestrator", "agents")
        for path in (ROOT / package).rglob("*.py")
    }
    assert {path: n for path, n in sizes.items() if n > 650} == {}
