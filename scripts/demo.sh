#!/usr/bin/env bash
# A short scripted session of the swarm CLI on a scratch store (runs offline).
# Usage: scripts/demo.sh [path/to/swarm]
set -euo pipefail
swarm=$(realpath "${1:-swarm}" 2>/dev/null || command -v swarm)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export SWARM_STORE="$scratch/agent_coordination"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { step "swarm $*"; "$swarm" "$@"; }

echo "swarmsh demo — store: $SWARM_STORE"

export AGENT_ID=agent_alice
run register 100 active backend_development --team core
step "AGENT_ID=agent_bob swarm register 80 active documentation --team docs"
AGENT_ID=agent_bob "$swarm" register 80 active documentation --team docs

run add feature "Implement caching layer" high core
run add bug_fix "Fix memory leak in coordinator" critical core
run add documentation "Document the store format" low docs
run list-work

step 'WORK=$(swarm claim --next --team core -q)'
WORK=$("$swarm" claim --next --team core -q)
echo "$WORK   (the critical bug fix comes first)"
run progress "$WORK" 50 in_progress

step "AGENT_ID=agent_bob swarm complete $WORK   # bob does not hold it: conflict, exit 3"
AGENT_ID=agent_bob "$swarm" complete "$WORK" || echo "exit code $?"

run complete "$WORK" success 8
run claim feature "Spike: SwarmSH-style claim that creates and claims at once" medium core
run agent-status
run dashboard
step "jq '.[] | {work_item_id, status, result, agent_id}' \$SWARM_STORE/work_claims.json   # SwarmSH's file, current"
if command -v jq >/dev/null; then
  jq -c '.[] | {work_item_id, status, result, agent_id}' "$SWARM_STORE/work_claims.json"
else
  "$(dirname "$swarm")/python" -c 'import json,sys; [print(json.dumps({k: i[k] for k in ("work_item_id","status","result","agent_id")})) for i in json.load(open(sys.argv[1]))]' "$SWARM_STORE/work_claims.json"
fi
run compact
echo
echo "Done. Try: swarm --help"
