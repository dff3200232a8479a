"""The maintenance tasks as crontab lines, for swarms that run no supervisor.

Lines are edited through the ``crontab`` program (what the user would run), so cron
notices the change. Each of ours ends with a tag naming the swarm (a hash of its
swarm.toml or store) and the task: ``install`` replaces only that swarm's lines (run
twice, it changes nothing), ``remove`` takes only them, every other line stays byte for
byte. Each line runs ``swarm maintenance run TASK --if-due``: the store's ledger
decides, so a supervisor and cron on one store still run a task once per period, and
the health check's cron line fires at half its period for the adaptive pace.
``SWARM_CRONTAB_USER`` edits another user's crontab (``crontab -u``; root only).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import InvalidArgument, NotFound, SwarmError
from orchestrator.maintenance.schedule import TaskSpec

TAG = "# swarmsh-maintenance:"


@dataclass(frozen=True)
class CronJob:
    task: str
    schedule: str
    command: str
    tag: str

    @property
    def line(self) -> str:
        return f"{self.schedule} {self.command} {self.tag}"


def cron_schedule(spec: TaskSpec) -> str:
    """The cron expression that fires ``spec`` (adaptive tasks at half their period)."""
    if spec.daily_at is not None:
        return f"{spec.daily_at[1]} {spec.daily_at[0]} * * *"
    period = (spec.period_s or 0) / (2 if spec.adaptive else 1)
    minutes = period / 60
    if minutes == int(minutes) and 1 <= minutes < 60 and 60 % int(minutes) == 0:
        return "* * * * *" if minutes == 1 else f"*/{int(minutes)} * * * *"
    hours = period / 3600
    if hours == int(hours) and 1 <= hours < 24 and 24 % int(hours) == 0:
        return "0 * * * *" if hours == 1 else f"0 */{int(hours)} * * *"
    if period == 86400:
        return "0 0 * * *"
    raise InvalidArgument(
        f"[maintenance] {spec.name}: {spec.describe()} has no cron form; use minutes that"
        " divide an hour (5m, 15m) or hours that divide a day (2h, 6h)"
    )


def swarm_id(anchor: str) -> str:
    """Which swarm a line belongs to: a short hash of its swarm.toml (or store)."""
    return hashlib.sha256(anchor.encode()).hexdigest()[:10]


def swarm_program() -> str:
    """The ``swarm`` of this installation (cron's PATH does not have the venv's)."""
    beside = Path(sys.executable).with_name("swarm")
    if beside.exists():
        return str(beside)
    found = shutil.which("swarm")
    if found is None:
        raise NotFound("cannot find the swarm program to put in crontab lines")
    return found


def planned_jobs(
    specs: dict[str, TaskSpec],
    *,
    anchor: str,
    workdir: Path,
    global_args: list[str],
    log_file: Path,
) -> list[CronJob]:
    ident = swarm_id(anchor)
    program = swarm_program()
    jobs = []
    for name, spec in specs.items():
        argv = [program, *global_args, "maintenance", "run", name, "--if-due", "--trigger", "cron"]
        command = (
            f"cd {shlex.quote(str(workdir))} && {shlex.join(argv)}"
            f" >>{shlex.quote(str(log_file))} 2>&1"
        )
        jobs.append(CronJob(name, cron_schedule(spec), command, f"{TAG}{ident} {name}"))
    return jobs


class Crontab:
    """One user's crontab, through the ``crontab`` program."""

    def __init__(self, user: str | None = None) -> None:
        self.user = user if user is not None else os.environ.get("SWARM_CRONTAB_USER") or None
        program = shutil.which("crontab")
        if program is None:
            raise SwarmError(
                "crontab: not installed; install cron (Debian: apt-get install cron)"
                " or run the maintenance inside `swarm up`"
            )
        self.argv = [program, *(["-u", self.user] if self.user else [])]

    def read(self) -> list[str]:
        done = subprocess.run(
            [*self.argv, "-l"], capture_output=True, text=True, check=False, timeout=30
        )
        if done.returncode != 0:
            if "no crontab" in done.stderr.lower():
                return []
            raise SwarmError(f"crontab -l: {done.stderr.strip() or done.returncode}")
        return done.stdout.splitlines()

    def write(self, lines: list[str]) -> None:
        text = "".join(line + "\n" for line in lines)
        done = subprocess.run(
            [*self.argv, "-"], input=text, capture_output=True, text=True, check=False, timeout=30
        )
        if done.returncode != 0:
            raise SwarmError(f"crontab: {done.stderr.strip() or done.returncode}")


def ours(lines: list[str], ident: str) -> list[str]:
    return [line for line in lines if f"{TAG}{ident} " in line]


def install(crontab: Crontab, jobs: list[CronJob], ident: str) -> tuple[int, int]:
    """Put ``jobs`` in place of this swarm's lines; (lines written, lines removed).
    Nothing is written when they are already there."""
    lines = crontab.read()
    mine = ours(lines, ident)
    wanted = [job.line for job in jobs]
    if mine == wanted:
        return 0, 0
    kept = [line for line in lines if line not in mine]
    crontab.write(kept + wanted)
    return len(wanted), len(mine)


def remove(crontab: Crontab, ident: str) -> int:
    lines = crontab.read()
    mine = ours(lines, ident)
    if mine:
        crontab.write([line for line in lines if line not in mine])
    return len(mine)
