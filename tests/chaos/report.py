# ruff: noqa: E501 - Markdown table rows are long by nature
"""The fixed text of docs/RELIABILITY.md around the figures `make chaos` writes."""

REPORT_HEAD = """# Reliability

The promise: **no work item is lost, none is done twice by live agents, and the swarm
keeps going**, whatever is killed, stopped, cut or filled up. `tests/chaos/` proves it
with real processes, real files and a real PostgreSQL server, and this file is written
by `make chaos` (full scale). `make test` runs every scenario at a reduced scale.

## How a scenario is judged

Each item runs a command that appends `<agent_id> <pid>` to its own file, so every
execution is on record even if its agent dies a microsecond later. After the run, three
witnesses are compared: those execution files, the store (items and its operation log:
the journal generations, or the `events` table) and the result files.

- **lost**: an item not completed at the end;
- **doubled**: an item executed by more than one agent where an earlier executor was
  alive and not faulted (the promise is broken);
- **re-run after a fault**: an item executed again because its first executor was
  killed or stopped past its lease (expected: at-least-once execution across crashes;
  it is counted, not hidden);
- **wrong holder**: completed by an agent that never executed it;
- **result files missing**: no result file from the agent that completed the item;
- **log mismatches**: not exactly one `complete` in the store's operation log.

## Scenarios and how to run them

| scenario | what is done |
|---|---|
| kill -9 of a random agent every 200 ms | a swarm of 6 agents drains 5,000 items (600 in CI) while an agent is SIGKILLed every 200 ms |
| kill -9 of the supervisor, twice | the supervisor's whole process group is SIGKILLed at 25% and 50%, then `swarm up` again; items of the dead agents return at lease end |
| SIGSTOP past the lease, then SIGCONT | an agent holding an item is stopped longer than its lease; the item is reclaimed and done by another agent; the woken agent's late `complete` is refused as a conflict and its result is not counted |
| journal cut and bit flips | the journal of a real run is cut at every byte offset of its last record, and single bits are flipped inside records: the store opens, reports the damaged record, keeps every other |
| disk full | the store lives on a 256 KiB tmpfs (or ENOSPC is injected where mounting is not allowed); writes fail with one clear error and nothing acknowledged is lost |
| PostgreSQL connections terminated | `pg_terminate_backend` on every swarm connection, twice, during a run on PostgreSQL |
| store file deleted, emptied or rolled back | after a run and a compaction, copies of the store lose `journal.jsonl`, `work_snapshot.json` or `agents_snapshot.json`, have one emptied, or get the previous generation's journal back: each refuses to open (exit 1, one line naming the file and how to restore it) and recreates nothing |
| lock held past FLOCK_TIMEOUT | with `FLOCK_TIMEOUT=1`, an outside process holds the store lock mid-run until the supervisor logs its wait: supervisor and agents wait and carry on, a one-shot `swarm add` meanwhile exits 4 |
| an endpoint echoes the API key | a Claude endpoint answers 400 with the request's `Authorization` value in its message: the key reaches no file (journal, results, spans, logs) and no output |

```bash
make chaos                                    # full scale; rewrites this file
.venv/bin/pytest tests/chaos -k sigstop       # one scenario, CI scale
```

Bad input (`tests/chaos/test_bad_input.py`): hypothesis-generated command lines,
swarm.toml files and store files never produce a traceback, always a documented exit
code and one line, and ids can never name a path outside the store or results folders.
Security checks (`tests/chaos/test_security.py`): API keys and OTLP header values never
reach the run directory (state, logs, results, store); commands never go through a
shell unless `shell = true`; files are created without world-write permission.

A run that does not end within its time counts as a failure. The kill -9 scenario found
one such hang (2026-12-07): an agent killed while counting a finished item kept the lock
of the counts it shares with the supervisor, whose next read then waited for good. The
counts hold no lock since (`tests/test_slot_counters.py`).
"""

REPORT_TAIL = """
## Known limits

- A command that was running when its agent was killed may run again on another agent
  (the "re-run after a fault" column): execution is at-least-once across crashes,
  completion is exactly-once. Make commands idempotent, or check `SWARM_WORK_ITEM_ID`.
- A killed host's agents leave their items held until the lease ends (`lease_s`).
- The supervisor's Prometheus `/metrics` (`[supervisor] metrics_port`) listens on
  127.0.0.1 only and has no authentication: anyone with a shell on the host can read
  the counts it serves (no payloads, no results, no keys).
  `tests/test_telemetry_commands.py` checks it cannot be reached on another address.
- The file store wants a few MB free beyond its journal and snapshots: `state.sqlite`'s
  write-ahead log grows by up to ~30 KB an operation (an enqueue writes 7 pages) until
  SQLite reuses it (about 4 MB). On the disk-full scenario's 256 KiB tmpfs that leaves
  room for 7 items, where the store without the database took 261; either way a refused
  write loses nothing acknowledged.
"""
