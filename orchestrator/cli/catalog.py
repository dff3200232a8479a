"""Where each ``swarm`` command lives, the line ``swarm --help`` shows for it and the
example that ends its own ``--help``.

The module names let the root group import only the module of the command being run
(a new process per command is how SwarmSH users script, so every millisecond of
start-up counts). A command missing here still works, found by importing every module;
``tests/test_cli_assembly.py`` fails until it is listed, so that it is fast too.
Summaries are explicit because click cuts a docstring's first sentence to fit a line.
"""

from __future__ import annotations

from typing import NamedTuple


class Entry(NamedTuple):
    summary: str
    example: str
    module: str | None = None  # top-level commands: orchestrator.cli.<module>.commands


# In the order `swarm --help` lists them. Sub-commands are keyed "group command".
CATALOG: dict[str, Entry] = {
    "init": Entry("Write a commented swarm.toml to start from", "swarm init", "setup"),
    "register": Entry(
        "Register an agent (AGENT_ID, or a new id)",
        "swarm register 100 active backend_development --team core --agent-id agent_alice",
        "work",
    ),
    "deregister": Entry(
        "Remove an agent; its items go back to the queue", "swarm deregister agent_alice", "work"
    ),
    "agent-status": Entry(
        "Registered agents and the items they hold", "swarm agent-status --json", "work"
    ),
    "claim": Entry(
        "Create and claim an item (SwarmSH), or claim the next",
        "swarm claim feature 'Implement caching layer' high   # or: swarm claim --next -q",
        "work",
    ),
    "add": Entry(
        "Enqueue a pending work item",
        "swarm add bug_fix 'Fix memory leak in coordinator' critical core",
        "work",
    ),
    "progress": Entry(
        "Report progress on a held item (extends its lease)",
        'swarm progress "$WORK" 50 in_progress',
        "work",
    ),
    "complete": Entry("Finish a held item", 'swarm complete "$WORK" success 8', "work"),
    "fail": Entry(
        "Mark a held item failed (--retry: back to the queue)",
        'swarm fail "$WORK" "tests do not pass" --retry',
        "work",
    ),
    "release": Entry("Give a held item back to the queue", 'swarm release "$WORK"', "work"),
    "cancel": Entry(
        "Cancel an item and the work waiting for it",
        'swarm cancel "$WORK" --reason "not needed any more"',
        "pipeline",
    ),
    "retry": Entry(
        "Put a dead, failed or cancelled item back in the queue", 'swarm retry "$WORK"', "pipeline"
    ),
    "list-work": Entry(
        "List work items (live ones unless --all or a filter)",
        "swarm list-work critical --limit 20",
        "work",
    ),
    "dashboard": Entry(
        "Counts by status, agents, who holds what, what is next",
        "swarm dashboard --json | jq .work",
        "work",
    ),
    "generate-id": Entry(
        "Print a new agent id (--work: a work id)", "swarm generate-id --work", "work"
    ),
    "compact": Entry(
        "Snapshot the store now and start a new journal", "swarm compact --json", "work"
    ),
    # SwarmSH's names for the commands above (orchestrator/cli/swarmsh.py).
    "claim-fast": Entry(
        "SwarmSH's claim-fast: the same as claim", "swarm claim-fast feature x", "swarmsh"
    ),
    "claim-slow": Entry(
        "SwarmSH's claim-slow: the same as claim", "swarm claim-slow feature x", "swarmsh"
    ),
    "list-work-fast": Entry(
        "SwarmSH's list-work-fast: the same as list-work", "swarm list-work-fast", "swarmsh"
    ),
    "dashboard-fast": Entry(
        "SwarmSH's dashboard-fast: the same as dashboard", "swarm dashboard-fast", "swarmsh"
    ),
    "claim-intelligent": Entry(
        "SwarmSH's: claim, or the model's pick of the queue",
        "swarm claim-intelligent",
        "swarmsh",
    ),
    "claim-ai": Entry(
        "SwarmSH's claim-ai: the same as claim-intelligent", "swarm claim-ai -q", "swarmsh"
    ),
    "claude-analyze-priorities": Entry(
        "SwarmSH's name for swarm analyze priorities",
        "swarm claude-analyze-priorities --json",
        "swarmsh",
    ),
    "claude-priorities": Entry(
        "SwarmSH's name for swarm analyze priorities",
        "swarm claude-priorities --json",
        "swarmsh",
    ),
    "claude-optimize-assignments": Entry(
        "SwarmSH's name for swarm analyze assignments",
        "swarm claude-optimize-assignments --json",
        "swarmsh",
    ),
    "claude-optimize": Entry(
        "SwarmSH's name for swarm analyze assignments",
        "swarm claude-optimize --json",
        "swarmsh",
    ),
    "claude-health-analysis": Entry(
        "SwarmSH's name for swarm analyze health",
        "swarm claude-health-analysis --json",
        "swarmsh",
    ),
    "claude-health": Entry(
        "SwarmSH's name for swarm analyze health", "swarm claude-health --json", "swarmsh"
    ),
    "claude-team-analysis": Entry(
        "SwarmSH's name for swarm analyze team",
        "swarm claude-team-analysis --json",
        "swarmsh",
    ),
    "claude-team": Entry(
        "SwarmSH's name for swarm analyze team", "swarm claude-team --json", "swarmsh"
    ),
    "help": Entry("The commands (SwarmSH's help; as swarm --help)", "swarm help", "swarmsh"),
    "db": Entry("PostgreSQL store maintenance", "swarm db migrate --store postgresql://…", "work"),
    "db migrate": Entry(
        "Apply the schema migrations not applied yet",
        "swarm db migrate --store postgresql://postgres@127.0.0.1:5432/swarm",
    ),
    "up": Entry(
        "Start the swarm of swarm.toml and keep it running",
        "swarm up -c swarm.toml --detach",
        "run",
    ),
    "status": Entry("The running supervisor, its groups and agents", "swarm status --json", "run"),
    "down": Entry("Stop the running supervisor and its agents", "swarm down --timeout 30", "run"),
    "demo": Entry(
        "Run swarm.toml until its work is done, with a live view", "swarm demo -c swarm.toml", "run"
    ),
    "limits": Entry(
        "Shared rate limits and budgets: used, waiting, 429s",
        "swarm limits --json",
        "limits",
    ),
    "cost": Entry(
        "LLM tokens and cost by group, model, agent or day",
        "swarm cost --by model --window 24h",
        "limits",
    ),
    "logs": Entry(
        "Agent and supervisor logs; -f follows them", "swarm logs searcher -f", "control"
    ),
    "stop": Entry("Stop one agent group of the running swarm", "swarm stop searcher", "control"),
    "start": Entry("Start a stopped agent group again", "swarm start searcher", "control"),
    "restart": Entry(
        "Replace an agent group's processes with new ones", "swarm restart searcher", "control"
    ),
    "serve": Entry(
        "HTTP API and dashboard page (127.0.0.1:8080)",
        "swarm serve --port 8080",
        "serve",
    ),
    "health": Entry(
        "Health score 0-100; writes system_health_report.json",
        "swarm health --detailed --window 7d",
        "observe",
    ),
    "metrics": Entry(
        "Metrics as Prometheus text, JSON or CSV", "swarm metrics --format json", "observe"
    ),
    "monitor": Entry(
        "Live view: agents, queue, throughput, errors, health",
        "swarm monitor --window 24h",
        "observe",
    ),
    "diagram": Entry(
        "Mermaid diagram: flow, agents, work or timeline",
        "swarm diagram timeline --output timeline.mmd",
        "observe",
    ),
    "validate": Entry(
        "Self-check: install, swarm.toml, store, span file", "swarm validate --json", "observe"
    ),
    "telemetry": Entry(
        "The span file: statistics and archival", "swarm telemetry stats --window 7d", "observe"
    ),
    "telemetry stats": Entry(
        "Per operation: count, rate, success, p50/p95/p99",
        "swarm telemetry stats --window 24h --json",
    ),
    "telemetry archive": Entry(
        "Rotate the span file into telemetry_archive/", "swarm telemetry archive --force"
    ),
    "maintenance": Entry(
        "Scheduled 8020 maintenance: status, run a task now",
        "swarm maintenance status",
        "maintain",
    ),
    "maintenance status": Entry(
        "Each task's schedule, last run, outcome, next run", "swarm maintenance status --json"
    ),
    "maintenance run": Entry("Run a maintenance task (or all) now", "swarm maintenance run health"),
    "optimize": Entry(
        "Optimise the work queue now (archive, sweep, warn)", "swarm optimize --json", "maintain"
    ),
    "cron": Entry(
        "Maintenance via cron: install, status, test, remove",
        "swarm cron install",
        "maintain",
    ),
    "cron install": Entry("Install this swarm's maintenance crontab lines", "swarm cron install"),
    "cron status": Entry("This swarm's crontab lines and last runs", "swarm cron status --json"),
    "cron test": Entry("Run every maintenance task once now", "swarm cron test"),
    "cron remove": Entry("Remove this swarm's crontab lines", "swarm cron remove"),
    "analyze": Entry(
        "LLM analysis: priorities, assignments, health, team",
        "swarm analyze priorities --json",
        "analyze",
    ),
    "worktree": Entry(
        "Git worktrees with their own ports, database and .env",
        "swarm worktree create login-page",
        "worktree",
    ),
    "worktree create": Entry(
        "Create a worktree on a new branch, with ports, database, .env",
        "swarm worktree create login-page --base main",
    ),
    "worktree list": Entry(
        "Worktrees: state, branch, ports, database, ahead, uncommitted",
        "swarm worktree list --json",
    ),
    "worktree dashboard": Entry(
        "Worktrees with their agents, items and disk use", "swarm worktree dashboard"
    ),
    "worktree merge": Entry(
        "Commit, push the branch to origin, print the pull request",
        "swarm worktree merge login-page -m 'Login page'",
    ),
    "worktree remove": Entry(
        "Free ports and database, remove the checkout", "swarm worktree remove login-page --force"
    ),
}

# Every module holding commands (as `commands = typer.Typer()`), in help order.
MODULES: tuple[str, ...] = tuple(
    dict.fromkeys(entry.module for entry in CATALOG.values() if entry.module)
)
