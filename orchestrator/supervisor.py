"""The supervisor: spawns agent processes, keeps them alive, stops them cleanly.

One small class in the manner of a worker pool: a status, a dict of slots (one per
agent process position, ``group-N``), and a tick that reaps dead agents, releases
their work at once, and respawns them by the group's restart policy. Signal handlers
only set flags; the main loop acts on them. The first SIGTERM/SIGINT is a warm stop
(agents finish or release their item within ``stop_timeout_s``), the second is cold.
"""

from __future__ import annotations

import enum
import logging
import os
import signal
import socket
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import filelock
import multiprocess
import psutil
from multiprocess.connection import wait as wait_for_sentinels

from agents.loop import AgentSpec, agent_main
from agents.results import reconcile
from orchestrator import control, limits, logs, preflight, processes, reporting, runstate
from orchestrator.activity import Activity
from orchestrator.config import SwarmConfig
from orchestrator.errors import Conflict, NotFound, SwarmError
from orchestrator.group_control import GroupControl
from orchestrator.ids import new_agent_id
from orchestrator.intelligence.settings import resolve_intelligence
from orchestrator.limits import LimitsPlan
from orchestrator.maintenance.schedule import supervisor_hook
from orchestrator.retire import retire_dead_agents
from orchestrator.slots import Slot, SlotState, apply_restart_policy, shared_counters
from orchestrator.store import long_lived_process
from orchestrator.store.base import Store
from orchestrator.telemetry import tracing
from orchestrator.telemetry.settings import resolve_settings
from orchestrator.web import launch as web_launch
from orchestrator.wiring import open_store
from orchestrator.workspec import configured_items
from orchestrator.worktrees import settings as worktree_settings
from orchestrator.worktrees.settings import WorktreeSettings

logger = logging.getLogger(__name__)

# SIGTERM and SIGINT stop warmly (a second one coldly); SIGQUIT stops coldly at once.
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


class Status(enum.StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


class Supervisor:
    def __init__(
        self,
        config: SwarmConfig,
        *,
        until_drained: bool = False,
        on_tick: Callable[[Supervisor], None] | None = None,
        live_view: bool = False,
        log_file: Path | None = None,
        enqueue: bool = True,
    ) -> None:
        self.config = config
        self.until_drained = until_drained
        self.enqueue = enqueue  # False: leave swarm.toml's [[work]] out (swarm up --no-enqueue)
        self.on_tick = on_tick
        self.live_view = live_view  # agents keep their stderr quiet: the view owns the terminal
        self.log_file = log_file  # detached: stdout and stderr go here once started
        self.activity = Activity()
        self.exit_reason: str | None = None  # why a run ends with a non-zero code
        self.unclaimable: Counter[str] = Counter()
        self._filters = preflight.filters_of(config.agents)
        self.status = Status.STARTING
        self.host = os.environ.get("SWARM_HOST_ID") or socket.gethostname()
        self.worktrees: WorktreeSettings | None = None  # set at start when a group uses them
        self.store_target = config.store_target()
        self.is_file_store = config.store.backend == "file"
        self.agents_dir = config.resolve(config.supervisor.agents_dir)
        self.results_dir = config.resolve(config.supervisor.results_dir)
        self.telemetry = resolve_settings(config)
        self.intelligence = resolve_intelligence(config)
        self.slots: dict[str, Slot] = {}
        self.groups = GroupControl(self.slots, self._spawn)
        self.started_at = time.time()
        self._signals = 0
        self._last_signal = 0.0
        self._ctx = multiprocess.get_context("forkserver")
        # Imported once in the fork server, so each agent starts without importing them.
        self._ctx.set_forkserver_preload(
            [
                "agents.loop",
                "agents.backends.command",
                "orchestrator.config",
                "orchestrator.telemetry.jsonl",
                "opentelemetry.sdk.trace",
                "psutil",
            ]
        )
        self._last_sample = 0.0
        self._last_sweep = 0.0
        self._last_retire = 0.0
        self._last_drain_check = 0.0
        self.drained = False
        self.enqueued: list[str] = []
        self.store: Store | None = None
        self.metrics: Any = None  # the /metrics server when [supervisor] metrics_port is set
        self.maintenance: Any = None  # scheduled 8020 tasks (orchestrator.maintenance)

    # -- signals ---------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGQUIT:
            self._signals = 2
            return
        now = time.monotonic()
        if self._signals and now - self._last_signal < 1.0:
            return  # a repeat within a second (held key, double delivery) is ignored
        self._signals += 1
        self._last_signal = now

    @property
    def warm_stop(self) -> bool:
        return self._signals >= 1

    @property
    def cold_stop(self) -> bool:
        return self._signals >= 2

    def request_stop(self) -> None:
        self._signals = max(self._signals, 1)

    # -- main loop ---------------------------------------------------------------------

    def run(self) -> int:
        # One supervisor per store directory; with PostgreSQL, one per run directory
        # (supervisors on several hosts share the database).
        lock_dir = Path(self.store_target) if self.is_file_store else self.agents_dir
        os.makedirs(lock_dir, exist_ok=True)
        lock = filelock.FileLock(str(lock_dir / "supervisor.lock"))
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            other = runstate.read(self.agents_dir)
            pid = f" (pid {other['pid']})" if other else ""
            raise Conflict(
                f"another supervisor{pid} is running on {lock_dir};"
                " use `swarm status` or `swarm down`"
            ) from None
        previous = {s: signal.signal(s, self._on_signal) for s in _STOP_SIGNALS}
        try:
            return self._run()
        except BaseException:
            # Whatever went wrong, the agents must not outlive their supervisor.
            if self.status != Status.STOPPED:
                self._signals = 2
                try:
                    self._shutdown()
                except Exception:
                    logger.exception("could not stop the agents cleanly")
            raise
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if self.metrics is not None:
                self.metrics.close()
            if self.maintenance is not None:
                self.maintenance.close()
            tracing.shutdown()
            lock.release()

    def _run(self) -> int:
        processes.become_subreaper()
        long_lived_process()
        tracing.configure("supervisor", self.telemetry)
        self.agents_dir.mkdir(parents=True, exist_ok=True)
        self.results_dir.mkdir(parents=True, exist_ok=True)
        control.clear(self.agents_dir)
        preflight.check_groups(self.config.agents)
        self.worktrees = worktree_settings.for_agents(self.config, self.store_target)
        self.store = open_store(self.store_target, self.config.store)
        self._serve_metrics()  # first: a port in use must stop us before anything is enqueued
        settled = reconcile(str(self.results_dir), self.store)
        if settled:
            logger.warning("settled %d result(s) left pending by killed agents", settled)
        retire_dead_agents(self.store, self.host, self.config.store.lease_s)
        self._enqueue_configured_work()
        self._check_claimable()
        self.maintenance = supervisor_hook(self.config, self.store, self.agents_dir, self.telemetry)
        if self.log_file is not None:
            # Started: from here on (agents included) output goes to the swarm's log.
            processes.redirect_output(self.log_file)
        for group in self.config.agents:
            for index in range(1, group.count + 1):
                slot = Slot(group, index)
                self.slots[slot.name] = slot
                self._spawn(slot)
        self.status = Status.RUNNING
        logger.info("supervisor %d running %d agents", os.getpid(), len(self.slots))
        self._write_state()
        while not self.warm_stop:
            self._tick()
            if self.on_tick:
                self.on_tick(self)
            if self.until_drained and self.drained:
                logger.info("drained: no work left that these agents can claim")
                break
            if self.slots and all(
                s.state in (SlotState.FATAL, SlotState.EXITED) for s in self.slots.values()
            ):
                logger.error("no agent left to run (all groups exited or fatal)")
                break
            self._wait(self._next_wake())
        self._shutdown()
        if self.on_tick:
            self.on_tick(self)
        return self._exit_code()

    def _exit_code(self) -> int:
        fatal = sorted({s.group.name for s in self.slots.values() if s.state == SlotState.FATAL})
        if fatal:
            self.exit_reason = f"agent group(s) {', '.join(fatal)} failed too often (fatal)"
            return 1
        if not self.until_drained:
            return 0
        if not self.drained and not self.warm_stop and self.store is not None:
            left = len(self.store.list_work(include_terminal=False))
            if left:
                self.exit_reason = f"no agent left to run the {left} item(s) still to do"
                return 1
        if self.unclaimable:
            self.exit_reason = (
                "work no agent group can claim is left pending: "
                + preflight.describe(self.unclaimable)
                + " (add a group whose work_types include them)"
            )
            return 1
        dead = self.dead_errors()
        if dead:
            self.exit_reason = f"{sum(dead.values())} item(s) ended dead"
            return 1
        return 0

    def dead_errors(self) -> Counter[str]:
        """First error lines of the items that died during this run, counted."""
        return preflight.dead_errors(self.store, self.started_at) if self.store else Counter()

    def _next_wake(self) -> float:
        """Sleep a tick, or less when a respawn falls due sooner."""
        now = time.time()
        due = [s.next_start - now for s in self.slots.values() if s.state == SlotState.BACKOFF]
        return max(0.0, min([self.config.supervisor.tick_s, *due]))

    def _wait(self, timeout: float, slots: list[Slot] | None = None) -> None:
        """Until an agent exits, one sends an event, or ``timeout`` passes."""
        watched = list(self.slots.values()) if slots is None else slots
        sentinels = [s.process.sentinel for s in watched if s.process is not None]
        sentinels += [s.events for s in watched if s.events is not None]
        if sentinels:
            try:
                wait_for_sentinels(sentinels, timeout)
            except InterruptedError:
                pass
        else:
            time.sleep(timeout)

    def _tick(self) -> None:
        now = time.time()
        for slot in self.slots.values():
            self.activity.drain(slot)
        changed = self._reap(now)
        changed |= control.serve_pending(self.agents_dir, self._control) > 0
        self.groups.enforce_deadlines(now)
        for slot in self.slots.values():
            if slot.state == SlotState.BACKOFF and now >= slot.next_start:
                self._spawn(slot)
                changed = True
        try:
            if now - self._last_sweep >= 1.0:
                self._last_sweep = now
                self._store().sweep()
            if now - self._last_retire >= 5.0:  # less often: it lists every agent
                self._last_retire = now
                retire_dead_agents(self._store(), self.host, self.config.store.lease_s)
            if self.maintenance is not None:
                self.maintenance.poll()
            if self.until_drained and now - self._last_drain_check >= 0.3:
                self._last_drain_check = now
                self.drained = self._drained()
        except SwarmError as exc:
            # A store that is briefly unusable (lock timeout, lost connection) must not
            # take the agents down with the supervisor: try again on the next tick.
            logger.error("store: %s (retrying)", exc)
        if changed or now - self._last_sample >= self.config.supervisor.sample_s:
            self._sample(now)
            self._write_state()

    # -- what is left to do ------------------------------------------------------------

    def _check_claimable(self) -> None:
        _, self.unclaimable = preflight.drain_state(self._store(), self._filters, held_ok=True)
        if self.unclaimable:
            logger.warning(
                "no agent group can claim these pending work types: %s",
                preflight.describe(self.unclaimable),
            )

    def _drained(self) -> bool:
        """Nothing is held, and nothing pending is claimable by a group of this swarm."""
        able = {s.group.name for s in self.slots.values() if s.active}
        filters = preflight.filters_of(g for g in self.config.agents if g.name in able)
        drained, self.unclaimable = preflight.drain_state(self._store(), filters)
        return drained

    # -- operator control (swarm stop|start|restart GROUP) --------------------------------

    def _control(self, request: dict[str, Any]) -> dict[str, Any]:
        action, name = request.get("action"), request.get("group")
        if action not in control.ACTIONS:
            return {"ok": False, "message": f"unknown action {action!r}"}
        slots = [s for s in self.slots.values() if s.group.name == name]
        if not slots:
            known = ", ".join(sorted({s.group.name for s in self.slots.values()})) or "none"
            return {"ok": False, "message": f"no agent group {name!r} (groups: {known})"}
        if self.warm_stop:
            return {"ok": False, "message": "the supervisor is stopping"}
        now = time.time()
        for slot in slots:
            if action == "start":
                self.groups.start(slot)
            else:
                self.groups.stop(slot, now, then_start=action == "restart")
        logger.info("%s group %s (%d agents) as asked", action, name, len(slots))
        self._write_state()
        return {"ok": True, "message": f"{action} {name}: {len(slots)} agent(s)"}

    # -- spawning and reaping ----------------------------------------------------------------

    def _spawn(self, slot: Slot) -> None:
        slot.agent_id = new_agent_id()
        spec = AgentSpec(
            agent_id=slot.agent_id,
            group=slot.group,
            slot=slot.index,
            host=self.host,
            store_path=self.store_target,
            store=self.config.store,
            results_dir=str(self.results_dir),
            supervisor_pid=os.getpid(),
            workdir=str(self.config.base_dir),
            telemetry=self.telemetry,
            log_file=str(logs.agent_log_path(self.agents_dir, slot.name)),
            log_to_stderr=not self.live_view,
            intelligence=self.intelligence if slot.group.claim == "intelligent" else None,
            worktrees=self.worktrees,
            limits=LimitsPlan.of(self.config, slot.group),
        )
        slot.counters = shared_counters(self._ctx)
        slot.events, events_out = self._ctx.Pipe(duplex=False)
        # Daemonic: should the supervisor ever exit without stopping them, the agents are
        # terminated at its exit instead of being waited for.
        slot.process = self._ctx.Process(
            target=agent_main,
            args=(spec, slot.counters, events_out),
            name=f"swarm-agent-{slot.name}",
            daemon=True,
        )
        slot.process.start()
        events_out.close()  # the agent holds the write end: EOF here once it exits
        slot.pid = slot.process.pid
        slot.started_at = time.time()
        slot.state = SlotState.RUNNING
        slot.exit_code = None
        try:
            slot.ps = psutil.Process(slot.pid)
            slot.ps.cpu_percent(None)
        except psutil.Error:
            slot.ps = None
        logger.info("started %s as %s (pid %s)", slot.name, slot.agent_id, slot.pid)
        reporting.agent_event("swarm.agent.start", slot)

    def _reap(self, now: float) -> bool:
        changed = False
        for slot in self.slots.values():
            if slot.state != SlotState.RUNNING or slot.process.is_alive():
                continue
            changed = True
            slot.exit_code = slot.process.exitcode
            slot.process = None
            self.activity.agent_exited(slot)
            self._collect_counters(slot)
            self._after_exit(slot)
            if self.warm_stop or self.status == Status.STOPPING:
                slot.state = SlotState.EXITED  # no restarts while the swarm stops
            elif slot.stopping_until is not None:
                slot.stopping_until = None
                slot.state = SlotState.STOPPED
                logger.info("%s stopped (exit code %s)", slot.name, slot.exit_code)
            else:
                apply_restart_policy(slot, now)
            reporting.agent_event("swarm.agent.exit", slot)
            reporting.write_agent_record(self.agents_dir, slot, self.host, now)
        return changed

    def _serve_metrics(self) -> None:
        web_launch.start_if_configured(self.config, self.store_target)  # http_port
        port = self.config.supervisor.metrics_port
        if port:
            self.metrics = reporting.serve_metrics(
                port,
                self.store_target,
                self.config.store,
                self.telemetry,
                self.snapshot,
                self.config,
            )

    def _after_exit(self, slot: Slot) -> None:
        """An agent is gone: kill what it left running, return its work, forget it."""
        assert slot.agent_id is not None
        processes.kill_orphans(slot.agent_id)
        store = self._store()
        try:
            released = store.release_agent(slot.agent_id)
            if released:
                logger.warning(
                    "%s (%s) died holding %d item(s); released them",
                    slot.name,
                    slot.agent_id,
                    len(released),
                )
            limits.drop_agent(store, self.config, slot.agent_id)  # its slots, at once
            try:
                store.get_agent(slot.agent_id)
            except NotFound:
                pass  # it deregistered itself: asking again would record a failed operation
            else:
                store.deregister(slot.agent_id)
        except SwarmError as exc:
            # The sweep returns them when their leases end; say so, or they look lost.
            logger.error(
                "%s (%s) exited; could not release its work now (%s):"
                " its items return to the queue when their leases expire",
                slot.name,
                slot.agent_id,
                exc,
            )
        reconcile(str(self.results_dir), store, slot.agent_id)

    def _collect_counters(self, slot: Slot) -> None:
        counters, slot.counters = slot.counters, None  # a reader meanwhile counts low, not twice
        if counters is not None:
            slot.done += counters[0]
            slot.failed += counters[1]

    # -- stopping ------------------------------------------------------------------------------

    def _shutdown(self) -> None:
        self.status = Status.STOPPING
        # Each agent's record keeps a resource sample once it has exited: take one now,
        # while they all run (one started just before the stop may have none yet).
        self._sample(time.time())
        self._write_state()
        running = [s for s in self.slots.values() if s.state == SlotState.RUNNING]
        for slot in running:
            processes.signal_agent(slot, signal.SIGTERM)
        timeout = max((s.group.stop_timeout_s for s in running), default=0.0)
        for slot in running:
            self.activity.drain(slot)
        busy = sum(1 for s in running if s.current is not None)
        if running and self.warm_stop and not self.cold_stop:
            logger.warning(
                "stopping: waiting up to %g s for %d agent(s), %d item(s) in progress"
                " — Ctrl-C again (or swarm down --force) to force",
                timeout,
                len(running),
                busy,
            )
        deadline = time.monotonic() + timeout
        while running and time.monotonic() < deadline and not self.cold_stop:
            # Only the agents still running: an exited one's sentinel would wake us at once.
            self._wait(min(0.1, max(0.0, deadline - time.monotonic())), running)
            for slot in running:
                self.activity.drain(slot)
            running = [s for s in running if s.process.is_alive()]
        for slot in running:
            logger.warning(
                "%s did not stop within %gs: killing it", slot.name, slot.group.stop_timeout_s
            )
            processes.kill_tree(slot)
        self._reap(time.time())
        for slot in self.slots.values():
            if slot.state == SlotState.BACKOFF:
                slot.state = SlotState.EXITED
        processes.kill_orphans()
        self.status = Status.STOPPED
        self._sample(time.time())
        self._write_state()

    # -- work, records, state ------------------------------------------------------------------

    def _store(self) -> Store:
        assert self.store is not None
        return self.store

    def _enqueue_configured_work(self) -> None:
        """Enqueue swarm.toml's [[work]]; items whose key is in the store already (from an
        earlier start) are not enqueued again, but are followed like the new ones."""
        if not self.enqueue:
            return
        items = configured_items(self.config)
        added = 0
        for start in range(0, len(items), 1000):
            enqueued = self._store().add_many(items[start : start + 1000])
            self.enqueued += enqueued
            added += len(enqueued.added)
        if items:
            # Printed, not logged at info: whoever restarts a swarm should see at once
            # whether it enqueued work again (detached, this goes to supervisor.log).
            print(
                f"enqueued {added} work item(s) from {self.config.source},"
                f" {len(items) - added} already present",
                flush=True,
            )

    def _sample(self, now: float) -> None:
        self._last_sample = now
        for slot in self.slots.values():
            if slot.state == SlotState.RUNNING:
                reporting.write_agent_record(self.agents_dir, slot, self.host, now)

    def snapshot(self) -> dict[str, Any]:
        """The state file's content (also what `swarm status --json` prints)."""
        return {
            "pid": os.getpid(),
            "host": self.host,
            "status": self.status.value,
            "started_at": self.started_at,
            "updated_at": time.time(),
            "config": str(self.config.source) if self.config.source else None,
            "store": self._store().path if self.store else self.store_target,
            "agents_dir": str(self.agents_dir),
            "results_dir": str(self.results_dir),
            "metrics_url": f"http://127.0.0.1:{self.metrics.port}/metrics"
            if self.metrics
            else None,
            "groups": reporting.groups_summary(self.slots.values()),
            "agents": reporting.agent_rows(self.slots.values()),
            "throughput_per_s": round(self.activity.throughput(), 3),
            "recent_failures": self.activity.recent_failures(),
        }

    def _write_state(self) -> None:
        runstate.write_json(runstate.state_path(self.agents_dir), self.snapshot())
