"""`swarm init`: a commented swarm.toml to start from."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli import render
from orchestrator.cli.options import context_of
from orchestrator.errors import Conflict
from orchestrator.locations import DEFAULT_CONFIG

commands = typer.Typer()

# Runs offline as written: the command group works at once; the Ollama and Claude
# groups are there to be switched on (count = 0 until then).
TEMPLATE = """\
# swarm.toml: the agents `swarm up` keeps running and the work it enqueues.
#   swarm validate           check this file, the store and the span file
#   swarm up [--detach]      run it until stopped (swarm status / swarm down)
#   swarm demo               run it until its work is done, with a live view
# Every key is optional except the marked ones; README.md "swarm.toml reference"
# lists them all. Paths are relative to this file.

[store]
path = "agent_coordination"   # the file store; or backend = "postgres" + dsn = "postgresql://…"
durability = "os"             # "fsync" survives power loss too, at some speed
lease_s = 60                  # a claim lapses without heartbeat or progress for this long
max_attempts = 3              # tries before an item is "dead"

[supervisor]
agents_dir = "real_agents"          # per-agent records, supervisor.json and .log
results_dir = "real_work_results"   # one result file per finished item
metrics_port = 0                    # Prometheus /metrics on 127.0.0.1:<port>; 0 = off
http_port = 0                       # HTTP API and dashboard on 127.0.0.1:<port>; 0 = off

# Plain commands: each item's payload gives the argv to run (no shell).
[[agents]]
name = "workers"              # required, unique
count = 2                     # processes in this group
backend = "command"
specialization = "shell"
work_types = ["shell"]        # claim only these work types (leave out: any)
timeout_s = 60                # per item
restart = "on-failure"        # never | on-failure | always
# claim_batch = 8             # PostgreSQL: items claimed at once when short (1 = one at a time)

# Local models served by Ollama (ollama serve; ollama pull qwen3). Set count to start.
# OLLAMA_HOST and OLLAMA_MODEL apply when host/model are not set here.
[[agents]]
name = "ollama"
count = 0
backend = "ollama"
model = "qwen3"
role = "code reviewer"
specialization = "python"
work_types = ["review"]
timeout_s = 300               # per request; 429/5xx are retried with backoff
retries = 4

# Claude (needs ANTHROPIC_API_KEY in the environment; never written to any file).
[[agents]]
name = "claude"
count = 0
backend = "claude"
model = "claude-sonnet-4-5"
max_tokens = 1024
role = "analyst"
specialization = "software architecture"
work_types = ["analysis"]
timeout_s = 60                # per request (CLAUDE_TIMEOUT overrides)

# Work `swarm up` enqueues. One item per table, `count` items, or one per file
# matching `foreach`, with {file} filled in.
[[work]]
work_type = "shell"           # required
description = "say hello"     # required
priority = "high"             # critical | high | medium | low
payload = { argv = ["echo", "hello from the swarm"] }

[[work]]
work_type = "shell"
description = "count lines of {file}"
foreach = "*.md"
payload = { argv = ["wc", "-l", "{file}"] }

# For the LLM groups above, once their count is above 0:
# [[work]]
# work_type = "review"
# description = "Review {file} for bugs and unclear names."
# foreach = "src/**/*.py"

[telemetry]
enabled = true                # TELEMETRY_ENABLED; spans go to spans_file (and OTLP if set)
spans_file = "telemetry_spans.jsonl"
"""


@commands.command()
def init(
    ctx: typer.Context,
    path: Annotated[
        Path | None,
        typer.Argument(help="File to write [default: -c/SWARM_CONFIG, else ./swarm.toml]."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented swarm.toml (a command group, Ollama and Claude groups, work
    examples) that runs offline as written. Refuses to overwrite a file unless --force
    (exit 3)."""
    target = path or Path(context_of(ctx).config_arg or DEFAULT_CONFIG)
    if target.exists() and not force:
        raise Conflict(f"{target} already exists (--force overwrites it)")
    from orchestrator.files import write_atomic

    write_atomic(str(target), TEMPLATE.encode(), fsync=False)
    render.echo(f"wrote {target}; next: swarm validate, then swarm up")
