#!/usr/bin/env bash
# The SwarmSH compatibility tests read the store's JSON files with jq, as SwarmSH's
# users do: install Debian's jq when it is missing (as root), else say how to get it.
set -euo pipefail
command -v jq >/dev/null && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "need-jq: installing jq (tests/test_swarmsh_compat.py reads with it)" >&2
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null
fi
command -v jq >/dev/null || { echo "need-jq: install jq (apt-get install jq, brew install jq)" >&2; exit 1; }
