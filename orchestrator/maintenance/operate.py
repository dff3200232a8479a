"""What ``swarm maintenance``, ``swarm optimize`` and ``swarm cron`` do, given the
command's ``Context`` (the CLI modules only parse and render)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestrator.errors import InvalidArgument
from orchestrator.locations import without_password
from orchestrator.maintenance import cron
from orchestrator.maintenance.schedule import Scheduler, scheduler_for, status_row, task_specs
from orchestrator.maintenance.settings import resolve_maintenance
from orchestrator.maintenance.tasks import TASKS, Outcome

if TYPE_CHECKING:
    from orchestrator.context import Context

CRON_LOG = "maintenance-cron.log"


def _scheduler(context: Context, only: str | None = None) -> Scheduler:
    scheduler = scheduler_for(
        context.config, context.store(), context.store_target, context.agents_dir, context.telemetry
    )
    if only is not None:
        scheduler.specs = {only: scheduler.specs[only]}
    return scheduler


def _check_task(task: str) -> None:
    if task != "all" and task not in TASKS:
        raise InvalidArgument(f"maintenance task {task!r}: use one of {', '.join(TASKS)} or all")


def status(context: Context) -> list[dict[str, Any]]:
    """Each task: schedule, last run and outcome, next run (from the store's ledger)."""
    from orchestrator.store.schedule import open_ledger

    specs = task_specs(resolve_maintenance(context.config))
    schema = context.config.store.schema_name if context.config is not None else "swarmsh"
    ledger = open_ledger(context.store_target, schema)
    try:
        rows = ledger.runs()
    finally:
        ledger.close()
    return [status_row(spec, rows.get(name)) for name, spec in specs.items()]


def run(context: Context, task: str, *, if_due: bool, trigger: str) -> list[Outcome]:
    """Run ``task`` (or all) now; with ``if_due`` only when its period has come (and no
    other scheduler took it), which is how cron's lines call it."""
    _check_task(task)
    names = list(TASKS) if task == "all" else [task]
    outcomes: list[Outcome] = []
    for name in names:
        scheduler = _scheduler(context, name)
        try:
            if if_due:
                scheduler.start()
                outcomes += scheduler.tick(slack_s=CRON_SLACK_S)
            else:
                outcomes.append(scheduler.run_now(name, trigger))
        finally:
            scheduler.ledger.close()
    return outcomes


# cron starts a job a few seconds after its minute, and the period counts from the start
# of the run before: without slack, every other run would find the task not yet due.
CRON_SLACK_S = 300.0


def optimize(context: Context) -> Outcome:
    return run(context, "optimize", if_due=False, trigger="manual")[0]


# -- cron ---------------------------------------------------------------------------------


def _jobs(context: Context) -> tuple[list[cron.CronJob], str]:
    specs = task_specs(resolve_maintenance(context.config))
    if context.config_path is not None:
        anchor = str(context.config.source if context.config else context.config_path)
        global_args = ["-c", anchor]
        if context.store_arg:
            global_args += ["--store", without_password(context.store_target)]
    else:
        # A crontab line is a file anyone with `crontab -l` or `ps` reads: no password
        # in it (libpq takes it from PGPASSWORD or ~/.pgpass of the cron user).
        anchor = without_password(context.store_target)
        global_args = ["--store", anchor]
    workdir = context.config.base_dir if context.config is not None else context.agents_dir.parent
    jobs = cron.planned_jobs(
        specs,
        anchor=anchor,
        workdir=workdir,
        global_args=global_args,
        log_file=context.agents_dir / CRON_LOG,
    )
    return jobs, cron.swarm_id(anchor)


def cron_install(context: Context) -> dict[str, Any]:
    jobs, ident = _jobs(context)
    context.agents_dir.mkdir(parents=True, exist_ok=True)  # where the lines log
    written, removed = cron.install(cron.Crontab(), jobs, ident)
    return {
        "swarm": ident,
        "changed": bool(written or removed),
        "written": written,
        "replaced": removed,
        "lines": [job.line for job in jobs],
    }


def cron_status(context: Context) -> dict[str, Any]:
    jobs, ident = _jobs(context)
    installed = cron.ours(cron.Crontab().read(), ident)
    wanted = [job.line for job in jobs]
    return {
        "swarm": ident,
        "installed": installed,
        "up_to_date": installed == wanted,
        "tasks": status(context),
        "log": str(context.agents_dir / CRON_LOG),
    }


def cron_remove(context: Context) -> dict[str, Any]:
    _, ident = _jobs(context)
    return {"swarm": ident, "removed": cron.remove(cron.Crontab(), ident)}


def cron_test(context: Context) -> list[Outcome]:
    """Each task once, now, as cron would run it (the crontab program must be there)."""
    cron.Crontab()
    _jobs(context)  # every period must have a cron form
    return run(context, "all", if_due=False, trigger="cron-test")
