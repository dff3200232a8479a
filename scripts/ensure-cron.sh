#!/usr/bin/env bash
# Make sure the `crontab` program is there for the cron tests (swarm cron uses the real
# one): installs Debian's cron package when it is missing and we may (root, apt-get).
# Exits non-zero when it cannot be had: cron tests never skip.
set -euo pipefail
command -v crontab >/dev/null && exit 0
echo "ensure-cron: no crontab program; installing Debian's cron package" >&2
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends cron >/dev/null
fi
command -v crontab >/dev/null || {
  echo "ensure-cron: cannot install cron: install it (apt-get install cron) and run again" >&2
  exit 1
}
