# swarmsh — every target creates .venv and installs the project first when needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := test
.PHONY: install test lint typecheck pytest demo cli-demo chaos bench clean validate \
	telemetry-health telemetry-stats monitor-24h monitor-7d monitor-all diagrams-dashboard \
	cron-install cron-status cron-test cron-remove \
	worktree-create worktree-list worktree-dashboard worktree-merge worktree-remove

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# compat: a path in a .pth, not an import hook that every process (each CLI call,
	@# each agent) would import at start-up
	$(BIN)/python -m pip install --quiet -e '.[dev]' --config-settings editable_mode=compat
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install swarmsh with its dev extra

lint: $(STAMP)  ## ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check orchestrator agents tests bench

typecheck: $(STAMP)  ## mypy (strict)
	$(BIN)/mypy

pytest: $(STAMP)  ## the test suite; PostgreSQL from SWARM_TEST_PG_DSN or a throwaway server
	@scripts/ensure-cron.sh
	@scripts/ensure-chromium.sh
	@scripts/need-jq.sh
	scripts/with-postgres.sh $(BIN)/pytest -q

test: lint typecheck pytest  ## everything CI runs

demo: $(STAMP)  ## run the quick-start swarm of swarm.toml until its work is done (offline)
	$(BIN)/swarm demo

cli-demo: $(STAMP)  ## a short scripted session of the coordination commands on a scratch store
	@bash scripts/demo.sh $(BIN)/swarm

chaos: $(STAMP)  ## fault scenarios at full scale; rewrites docs/RELIABILITY.md
	scripts/with-postgres.sh env CHAOS_SCALE=full CHAOS_REPORT=docs/RELIABILITY.md \
		$(BIN)/pytest -q -p no:randomly tests/chaos

validate: $(STAMP)  ## quick self-check: install, swarm.toml, a store round trip, the span file
	$(BIN)/swarm validate

telemetry-health: $(STAMP)  ## health score 0-100 with every deduction; writes system_health_report.json
	$(BIN)/swarm health --detailed

telemetry-stats: $(STAMP)  ## operations, rates, p50/p95/p99, errors and tokens over the last 24 h
	$(BIN)/swarm telemetry stats --window 24h

monitor-24h: $(STAMP)  ## live view (q quits), spans of the last 24 h
	$(BIN)/swarm monitor --window 24h

monitor-7d: $(STAMP)  ## live view (q quits), spans of the last 7 days
	$(BIN)/swarm monitor --window 7d

monitor-all: $(STAMP)  ## live view (q quits), every span in the file
	$(BIN)/swarm monitor --window all

diagrams-dashboard: $(STAMP)  ## Mermaid diagrams of the live swarm into docs/diagrams/
	@mkdir -p docs/diagrams
	@for kind in flow agents work timeline; do \
		$(BIN)/swarm diagram $$kind --output docs/diagrams/$$kind.mmd || exit $$?; \
	done

cron-install: $(STAMP)  ## put swarm.toml's maintenance tasks in your crontab (tagged, idempotent)
	$(BIN)/swarm cron install

cron-status: $(STAMP)  ## this swarm's crontab lines and each task's last run
	$(BIN)/swarm cron status

cron-test: $(STAMP)  ## run every maintenance task once now, as cron would
	$(BIN)/swarm cron test

cron-remove: $(STAMP)  ## take this swarm's lines (and only them) out of your crontab
	$(BIN)/swarm cron remove
FEATURE_NEEDED = @test -n "$(FEATURE)" || { echo "usage: make $@ FEATURE=name" >&2; exit 2; }

worktree-create: $(STAMP)  ## a git worktree on feature/FEATURE with its own ports, database and .env
	$(FEATURE_NEEDED)
	$(BIN)/swarm worktree create "$(FEATURE)"

worktree-list: $(STAMP)  ## worktrees: state, branch, ports, database, commits ahead, uncommitted changes
	$(BIN)/swarm worktree list

worktree-dashboard: $(STAMP)  ## worktrees with the agents and items in them and their disk use
	$(BIN)/swarm worktree dashboard

worktree-merge: $(STAMP)  ## commit FEATURE's changes, push its branch to origin, print the pull request
	$(FEATURE_NEEDED)
	$(BIN)/swarm worktree merge "$(FEATURE)"

worktree-remove: $(STAMP)  ## free FEATURE's ports and database and remove its checkout (the branch stays)
	$(FEATURE_NEEDED)
	$(BIN)/swarm worktree remove "$(FEATURE)"

bench: $(STAMP)  ## benchmarks (not part of make test); writes bench/RESULTS.md
	$(BIN)/python -m bench.store_bench --write-results
	$(BIN)/python -m bench.lock_bench --write-results
	$(BIN)/python -m bench.memory_bench --write-results
	$(BIN)/python -m bench.shared_state_bench --write-results
	$(BIN)/python -m bench.lock_order_bench --write-results
	$(BIN)/python -m bench.swarm_bench --write-results
	scripts/with-postgres.sh $(BIN)/python -m bench.swarm_bench --postgres --write-results
	scripts/with-postgres.sh $(BIN)/python -m bench.pg_bench --write-results
	$(BIN)/python -m bench.telemetry_bench --write-results
	$(BIN)/python -m bench.cli_bench --write-results
	scripts/with-postgres.sh $(BIN)/python -m bench.pipeline_bench --write-results
	scripts/with-postgres.sh $(BIN)/python -m bench.web_bench --pg --write-results

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis *.egg-info
