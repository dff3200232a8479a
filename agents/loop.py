"""What one agent process does: register -> loop { claim -> work -> complete } -> leave.

A heartbeat thread keeps the agent's leases alive while a long call runs. SIGTERM is
a warm stop: no new claim; the current item may finish within ``stop_timeout_s``,
after which it is cancelled and released. SIGINT is ignored: Ctrl-C in a terminal
reaches every process of the group, and the supervisor decides.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from setproctitle import setproctitle

from agents import metering, pipeline, spans
from agents.backends import Outcome, load_backend
from agents.results import discard_result, finalize, result_record, write_pending
from agents.worktree import in_worktrees
from orchestrator import logs
from orchestrator.errors import Conflict, NotFound, SwarmError
from orchestrator.limits import Gate, LimitsPlan, Reservation
from orchestrator.records import Agent, WorkItem, WorkStatus, out_of_attempts
from orchestrator.store import long_lived_process
from orchestrator.store.base import claim_many
from orchestrator.telemetry import tracing
from orchestrator.telemetry.settings import TelemetrySettings
from orchestrator.wiring import open_store

if TYPE_CHECKING:
    from agents.backends import Backend
    from orchestrator.config import AgentGroup, StoreConfig
    from orchestrator.intelligence.meter import Meter
    from orchestrator.intelligence.settings import IntelligenceSettings
    from orchestrator.store.base import Store
    from orchestrator.worktrees.settings import WorktreeSettings

logger = logging.getLogger(__name__)

IDLE_MIN_S = 0.05
IDLE_MAX_S = 1.0
EXIT_BAD_BACKEND = 3
# Agents whose items are short claim several per round trip (a backend that can, such
# as PostgreSQL): at most their group's claim_batch, and no more than about this much
# work ahead.
PREFETCH_WINDOW_S = 0.05
# What an event to the supervisor keeps of a description or an error (the live view and
# `swarm status` show a line of it): 500 characters stay under PIPE_BUF in any encoding.
EVENT_DETAIL_CHARS = 500


@dataclass(frozen=True)
class Working:
    """The item an agent works on and the event that stops it."""

    work_id: str
    stop: threading.Event


@dataclass(frozen=True)
class Ended:
    """An item's end as the store is to record it, with its pending result file."""

    item: WorkItem
    outcome: Outcome
    children: list[WorkItem]
    path: str | None
    final: WorkStatus | None
    started: float


@dataclass
class AgentSpec:
    """Everything an agent process needs; picklable, built by the supervisor."""

    agent_id: str
    group: AgentGroup
    slot: int
    host: str
    store_path: str
    store: StoreConfig
    results_dir: str
    supervisor_pid: int | None = None
    workdir: str | None = None  # swarm.toml's folder: relative paths in work items start here
    telemetry: TelemetrySettings | None = None  # None: no spans
    log_file: str | None = None  # the agent's own rotating log
    log_to_stderr: bool = True  # False while the supervisor draws a live view on the terminal
    intelligence: IntelligenceSettings | None = None  # claim = "intelligent": the model picks
    worktrees: WorktreeSettings | None = None  # for a group with worktree = "per-item" | …
    limits: LimitsPlan | None = None  # swarm.toml's [[limits]], [prices], budgets


class AgentRunner:
    def __init__(self, spec: AgentSpec, counters: Any = None, events: Any = None) -> None:
        self.spec = spec
        self.group = spec.group
        self.counters = counters  # shared array: [done, failed]
        # This agent's own pipe to the supervisor (no lock shared with other agents, so a
        # kill -9 mid-send cannot block anyone else): what it works on and how items end.
        self.events = events
        self.stopping = threading.Event()
        self.cancel = threading.Event()
        # The item being worked on, with a stop of its own: set on a warm stop's deadline,
        # or when a heartbeat finds the item no longer held (cancelled by an operator). One
        # event per item, so a verdict on an item that has just ended cannot stop the next.
        self.working: Working | None = None
        self.store: Store = open_store(spec.store_path, spec.store)
        self.filters = self.group.claim_filter()
        self.gate: Gate | None = None
        self.meter: Meter | None = None  # the [intelligence] model's calls, when claiming
        # Items claimed ahead and not started (given back on a stop), and how long an item
        # takes here, smoothed: the two decide how many the next claim asks for.
        self.prefetched: deque[WorkItem] = deque()
        # Items that ended while the store could not record it: still held by us.
        self.unrecorded: deque[Ended] = deque()
        self.item_s: float | None = None

    # -- signals -----------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        self.request_stop()

    def request_stop(self) -> None:
        if self.stopping.is_set():
            return
        self.stopping.set()
        # Leave a margin before the supervisor's SIGKILL to release the item cleanly.
        grace = max(0.0, self.group.stop_timeout_s * 0.8 - 0.2)
        timer = threading.Timer(grace, self._cancel_now)
        timer.daemon = True
        timer.start()

    def _cancel_now(self) -> None:
        self.cancel.set()
        working = self.working
        if working is not None:
            working.stop.set()

    # -- lifecycle -----------------------------------------------------------------------

    def run(self) -> int:
        try:
            backend = in_worktrees(load_backend(self.group), self.spec, self.store)
        except (ImportError, ValueError, AttributeError) as exc:
            logger.error(
                "agent group %s: cannot start the %s backend: %s",
                self.group.name,
                self.group.backend,
                exc,
            )
            return EXIT_BAD_BACKEND
        self.store.register(
            Agent(
                agent_id=self.spec.agent_id,
                capacity=self.group.capacity,
                specialization=self.group.specialization,
                team=self.group.team,
                role=self.group.role,
                host=self.spec.host,
                pid=os.getpid(),
            )
        )
        plan = self.spec.limits or LimitsPlan()
        if plan.needed(self.group.backend):
            model = getattr(backend, "model", None) or self.group.model
            self.gate = Gate(self.store, self.spec.agent_id, self.group, plan, model)
        heartbeat = threading.Thread(target=self._heartbeat, name="heartbeat", daemon=True)
        heartbeat.start()
        try:
            self._loop(backend)
        finally:
            self.stopping.set()
            self._record_unrecorded()
            self._return_prefetched()
            try:
                self.store.deregister(self.spec.agent_id)
            except SwarmError as exc:
                logger.warning("agent %s: could not deregister: %s", self.spec.agent_id, exc)
        return 0

    def _heartbeat(self) -> None:
        interval = max(0.05, self.spec.store.lease_s / 3)
        while not self.stopping.wait(interval):
            try:
                self._beat()
            except SwarmError as exc:
                logger.warning("agent %s: heartbeat failed: %s", self.spec.agent_id, exc)

    def _beat(self) -> None:
        """Renew the leases; stop the item being worked on if it is no longer ours."""
        working = self.working
        held = self.store.heartbeat(self.spec.agent_id)
        if working is None or self.working is not working:
            return
        if self._lost(working.work_id, held) and self.working is working:
            # Holding nothing while working: the item was cancelled (or its lease lost).
            # Were it to end meanwhile, this stops only that ended item, never the next.
            logger.warning(
                "agent %s: %s is no longer held; stopping it", self.spec.agent_id, working.work_id
            )
            working.stop.set()

    def supervisor_gone(self) -> bool:
        pid = self.spec.supervisor_pid
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def _loop(self, backend: Backend) -> None:
        idle = IDLE_MIN_S
        while not self.stopping.is_set():
            if self.supervisor_gone():
                # Nobody would restart us or release our work: stop claiming, leave cleanly.
                logger.error(
                    "agent %s: supervisor %s is gone; stopping",
                    self.spec.agent_id,
                    self.spec.supervisor_pid,
                )
                self.request_stop()
                break
            reservation = None
            self._record_unrecorded()
            try:
                # Admission first: waiting for the swarm's limits holds no work item.
                if self.gate is not None:
                    reservation = self.gate.admit(self.stopping)
                    if reservation is None:
                        break
                item = self._claim()
            except SwarmError as exc:
                # The store is briefly unusable (lock timeout, lost connection): an agent
                # that crashed for it would count towards its group going fatal.
                logger.error("agent %s: claim failed: %s", self.spec.agent_id, exc)
                self._give_back(reservation)
                self.stopping.wait(IDLE_MAX_S)
                continue
            if item is None:
                self._give_back(reservation)
                self.store.wait_for_work(idle, self.stopping)
                idle = min(idle * 2, IDLE_MAX_S)
                continue
            idle = IDLE_MIN_S
            logger.info("claimed %s (%s): %s", item.work_item_id, item.work_type, item.description)
            self._notify("claimed", item.work_item_id, item.description)
            self.show_title(item.work_item_id)
            started = time.monotonic()
            self._work(backend, item, reservation)
            took = time.monotonic() - started
            self.item_s = took if self.item_s is None else 0.8 * self.item_s + 0.2 * took
            self.show_title("idle")

    def _claim(self) -> WorkItem | None:
        if self.spec.intelligence is None:
            if not self.prefetched:
                count = self._batch()
                self.prefetched.extend(
                    claim_many(self.store, self.spec.agent_id, self.filters, count)
                )
            return self.prefetched.popleft() if self.prefetched else None
        from orchestrator.intelligence.claiming import intelligent_claim

        group = self.group
        if self.meter is None:
            from orchestrator.intelligence.meter import Meter

            self.meter = Meter.of(
                self.store, self.spec.agent_id, self.spec.limits, self.spec.intelligence
            )
        return intelligent_claim(
            self.store,
            self.spec.agent_id,
            self.filters,
            self.spec.intelligence,
            role=group.role,
            specialization=group.specialization,
            team=group.team,
            meter=self.meter,
        )

    def _batch(self) -> int:
        """How many items to claim at once: one until items prove short, then up to the
        group's ``claim_batch``; never more than one with limits, whose admission is per
        item."""
        if self.gate is not None or not self.item_s:
            return 1
        return max(1, min(self.group.claim_batch, int(PREFETCH_WINDOW_S / self.item_s)))

    def _return_prefetched(self) -> None:
        """A stop gives back the items claimed ahead and not started: no attempt used."""
        while self.prefetched:
            item = self.prefetched.popleft()
            try:
                self.store.release(item.work_item_id, agent_id=self.spec.agent_id)
            except SwarmError as exc:  # deregister returns it too, else its lease ends
                logger.warning(
                    "agent %s: could not give back %s: %s",
                    self.spec.agent_id,
                    item.work_item_id,
                    exc,
                )

    def _lost(self, working: str, held: int) -> bool:
        """Whether the item being worked on is no longer ours (cancelled, lease lost),
        the heartbeat having found ``held`` items held: fewer than this one and those
        claimed ahead or not yet recorded means one is gone; the store says which."""
        ahead = len(self.prefetched) + len(self.unrecorded)
        if held > ahead:
            return False
        if not ahead:
            return True
        try:
            now = self.store.get(working)
        except NotFound:
            return True
        except SwarmError:
            return False
        return not (now.held and now.agent_id == self.spec.agent_id)

    def _give_back(self, reservation: Reservation | None) -> None:
        if reservation is None or self.gate is None:
            return
        try:
            self.gate.release(reservation)
        except SwarmError as exc:  # its deadline ends it later
            logger.warning(
                "agent %s: could not give back a reservation: %s", self.spec.agent_id, exc
            )

    def _work(
        self, backend: Backend, item: WorkItem, reservation: Reservation | None = None
    ) -> None:
        stop = threading.Event()
        self.working = Working(item.work_item_id, stop)
        if self.cancel.is_set():  # claimed as the stop's deadline passed
            stop.set()
        try:
            parents = pipeline.parents_of(self.store, item) if item.parents else []
            with spans.invoke_agent(self.spec.agent_id, self.group, item, parents) as span:
                if reservation is not None:
                    metering.attach(backend, self.gate, reservation, self.stopping)
                outcome = self._work_traced(backend, item, stop, parents, reservation)
                if outcome is not None and not outcome.ok:
                    spans.mark_failed(span, outcome)
                if outcome is not None and "usage" in outcome.details:
                    metering.annotate(span, outcome.details["usage"])
        finally:
            self.working = None

    def _work_traced(
        self,
        backend: Backend,
        item: WorkItem,
        stop: threading.Event,
        parents: list[WorkItem],
        reservation: Reservation | None = None,
    ) -> Outcome | None:
        agent_id = self.spec.agent_id
        started = time.time()
        capture = self.spec.telemetry is not None and self.spec.telemetry.capture_content
        children: list[WorkItem] = []
        try:
            self.store.progress(item.work_item_id, 10, agent_id=agent_id)
            outcome = pipeline.run_item(backend, self.group, item, parents, stop, capture)
            if outcome.ok:
                children = pipeline.follow_ups(item, outcome, self.group)
        except Conflict:
            logger.warning("agent %s lost %s before starting it", agent_id, item.work_item_id)
            self._notify("lost", item.work_item_id, "lease lost before starting")
            self._give_back(reservation)
            return None
        except ValueError as exc:  # a placeholder no parent fills, an invalid plan
            outcome = Outcome(False, error=str(exc))
        except Exception as exc:  # a backend bug must not kill the agent
            logger.exception("agent %s: backend error on %s", agent_id, item.work_item_id)
            outcome = spans.redacted(Outcome(False, error=f"{type(exc).__name__}: {exc}"))
        if reservation is not None and self.gate is not None:
            metering.settle(self.gate, reservation, item, outcome)
        if self.cancel.is_set() or _not_the_items_fault(outcome):
            # Throttled, or abandoned while waiting for the swarm's admission: back to the
            # queue, no attempt used.
            if outcome.details.get("throttled"):
                logger.warning(
                    "%s throttled by the provider; released: %s", item.work_item_id, outcome.error
                )
            self._release(item)
            return outcome
        if stop.is_set():
            return self._abandoned(item, outcome)
        # The result is written (pending) before the store records the outcome, and put
        # in place after: see agents/results.py for why and how a kill in between is
        # settled.
        path = None
        final = _final_status(item, outcome)
        if final is not None:
            record = result_record(
                item.evolve(status=final, attempts=item.attempts + (0 if outcome.ok else 1)),
                outcome,
                agent_id=agent_id,
                group=self.group.name,
                host=self.spec.host,
                backend=self.group.backend,
                started_at=started,
                finished_at=time.time(),
            )
            record["parents"] = item.parents or []
            record["children"] = [child.work_item_id for child in children]
            path = write_pending(self.spec.results_dir, record)
        ended = Ended(item, outcome, children, path, final, started)
        if self._record(ended) is None:
            # The store could not record it (lock timeout, lost connection). The item stays
            # held (our heartbeat keeps its lease), so the agent tells the store again
            # before its next claim and as it stops; the pending result waits for that.
            self.unrecorded.append(ended)
            self._notify("lost", item.work_item_id, "not recorded yet")
        return outcome

    def _record(self, ended: Ended) -> bool | None:
        """Tell the store how an item ended: True once recorded, False when the item is
        no longer ours (its result is dropped), None when the store could not be used."""
        item, outcome, agent_id = ended.item, ended.outcome, self.spec.agent_id
        try:
            if outcome.ok and ended.children:
                self.store.complete_and_enqueue(
                    item.work_item_id, ended.children, _summary(outcome), agent_id
                )
            elif outcome.ok:
                self.store.complete(
                    item.work_item_id, "success", result=_summary(outcome), agent_id=agent_id
                )
            else:
                self.store.fail(
                    item.work_item_id, outcome.error or "failed", agent_id=agent_id, retry=True
                )
        except (Conflict, NotFound) as exc:
            # The lease ran out and another agent has the item now: its result counts.
            logger.warning(
                "agent %s: result for %s discarded: %s", agent_id, item.work_item_id, exc
            )
            if ended.path is not None:
                discard_result(ended.path)
            self._notify("lost", item.work_item_id, str(exc))
            return False
        except SwarmError as exc:
            logger.error("agent %s: could not record %s: %s", agent_id, item.work_item_id, exc)
            return None
        if ended.path is not None:
            finalize(ended.path)
        self._count(0 if outcome.ok else 1)
        status = ended.final or "retrying"
        took = time.time() - ended.started
        if outcome.ok:
            logger.info("completed %s in %.2fs", item.work_item_id, took)
        else:
            logger.warning("%s %s after %.2fs: %s", status, item.work_item_id, took, outcome.error)
        self._notify(str(status), item.work_item_id, outcome.error)
        return True

    def _record_unrecorded(self) -> None:
        """Tell the store, again, how the items it could not record ended."""
        while self.unrecorded:
            if self._record(self.unrecorded[0]) is None:
                return  # still unusable: at the next turn
            self.unrecorded.popleft()

    def _abandoned(self, item: WorkItem, outcome: Outcome) -> Outcome:
        """The item stopped because it is no longer ours: say why, record nothing. Should
        the store say it is ours after all, it goes back to the queue, no attempt used:
        held by a live agent, it would otherwise never run again."""
        try:
            now = self.store.get(item.work_item_id)
            why = f"{now.status}" + (f" ({now.error})" if now.error else "")
        except SwarmError as exc:
            now, why = None, str(exc)
        # Unknown (the store did not answer) is released too: only the holder can.
        if now is None or (now.held and now.agent_id == self.spec.agent_id):
            logger.warning(
                "agent %s: stopped %s, which may still be ours (%s); released",
                self.spec.agent_id,
                item.work_item_id,
                "held" if now is not None else why,
            )
            self._release(item)
            return Outcome(False, output=outcome.output, error="stopped; released")
        logger.warning("agent %s: stopped %s: it is %s", self.spec.agent_id, item.work_item_id, why)
        self._notify("cancelled", item.work_item_id, why)
        return Outcome(False, output=outcome.output, error=f"stopped: the item is {why}")

    def _release(self, item: WorkItem) -> None:
        self._notify("released", item.work_item_id, None)
        try:
            self.store.release(item.work_item_id, agent_id=self.spec.agent_id)
        except SwarmError as exc:
            # Not fatal: the item returns to the queue when its lease expires.
            logger.warning(
                "agent %s: could not release %s: %s", self.spec.agent_id, item.work_item_id, exc
            )

    def show_title(self, doing: str) -> None:
        """What ps and top show: ``swarm agent <group>-<n> <work id | idle>``."""
        setproctitle(f"swarm agent {self.group.name}-{self.spec.slot} {doing}")

    def _notify(self, event: str, work_id: str, detail: str | None) -> None:
        if self.events is None:
            return
        if detail is not None and len(detail) > EVENT_DETAIL_CHARS:
            # A prompt can be long. Kept short, an event is one write under PIPE_BUF,
            # whole in the pipe: the supervisor never waits in recv() for the rest of
            # a message from an agent stopped (SIGSTOP) halfway through sending it.
            detail = detail[: EVENT_DETAIL_CHARS - 1] + "…"
        try:
            self.events.send((event, work_id, detail, time.time()))
        except (OSError, ValueError):
            self.events = None  # the supervisor is gone or closed its end: stop telling it

    def _count(self, index: int) -> None:
        if self.counters is not None:  # this agent is its only writer (slots.shared_counters)
            self.counters[index] += 1


def _final_status(item: WorkItem, outcome: Outcome) -> WorkStatus | None:
    """What the store will make of this outcome, if it ends the item: completed, or
    dead when a failure uses the last attempt (else the item is retried)."""
    if outcome.ok:
        return WorkStatus.COMPLETED
    return WorkStatus.DEAD if out_of_attempts(item.attempts + 1, item.max_attempts) else None


def _not_the_items_fault(outcome: Outcome) -> bool:
    return bool(outcome.details.get("throttled") or outcome.details.get("cancelled"))


def _summary(outcome: Outcome) -> Any:
    """What the store keeps of a result (the full output is in the result file)."""
    output = outcome.output
    if isinstance(output, str):
        return output[:1000]
    if isinstance(output, dict) and "exit_code" in output:
        return {"exit_code": output["exit_code"], "stdout": str(output.get("stdout", ""))[:1000]}
    return output


def agent_main(spec: AgentSpec, counters: Any = None, events: Any = None) -> None:
    """Process entry point (spawned by the supervisor)."""
    if spec.log_file:
        logs.configure_agent(spec.agent_id, Path(spec.log_file), spec.log_to_stderr)
    else:
        logs.configure(spec.agent_id)
    if spec.workdir:
        os.chdir(spec.workdir)
    os.environ["SWARM_AGENT_ID"] = spec.agent_id  # inherited by commands: orphans are traceable
    long_lived_process()
    if spec.telemetry is not None:
        tracing.configure("agent", spec.telemetry, agent_id=spec.agent_id)
    try:
        runner = AgentRunner(spec, counters, events)
        runner.show_title("idle")
        runner.install_signal_handlers()
        code = runner.run()
    finally:
        tracing.shutdown()  # flush the last spans of a warm stop
    raise SystemExit(code)
