#!/usr/bin/env bash
# Make sure Debian's chromium is at /usr/bin/chromium for the browser tests (Playwright
# drives the system browser; we never run `playwright install`): installs the chromium
# package when it is missing and we may (root, apt-get). Exits non-zero when it cannot be
# had: the browser tests never skip.
set -euo pipefail
[ -x /usr/bin/chromium ] && exit 0
echo "ensure-chromium: no /usr/bin/chromium; installing Debian's chromium package" >&2
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    chromium fonts-dejavu-core >/dev/null
fi
[ -x /usr/bin/chromium ] || {
  echo "ensure-chromium: cannot install chromium: install it (apt-get install chromium) and run again" >&2
  exit 1
}
