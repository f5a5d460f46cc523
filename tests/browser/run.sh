#!/usr/bin/env bash
# End-to-end tests in headless Chromium: the dashboard (dashboard.spec.mjs),
# GraphiQL with outside network blocked (graphiql.spec.mjs), and the partner
# portal framed and called from other origins (portal.spec.mjs), driven with
# playwright-core against a throw-away hookline (tests/with-hookline.sh).
#
#   tests/browser/run.sh                      # screenshot goes to docs/dashboard.png
#   HOOKLINE_SCREENSHOT=/tmp/d.png tests/browser/run.sh
#
# Needs Node.js >= 20 and Debian's chromium (/usr/bin/chromium), which this
# script installs with apt-get when it is missing. Exit code 0 = passed (or
# skipped, with a SKIPPED line saying why).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
started=$(date +%s)
say() { printf '==> %s  (+%ss)\n' "$*" "$(( $(date +%s) - started ))"; }
skip() { printf 'SKIPPED browser test: %s\n' "$*"; exit 0; }

command -v node >/dev/null || skip "node is not installed"
command -v npm >/dev/null || skip "npm is not installed"

if [ ! -x /usr/bin/chromium ]; then
  if ! command -v apt-get >/dev/null; then
    skip "/usr/bin/chromium is missing and apt-get is not available to install it"
  fi
  if [ "$(id -u)" -ne 0 ]; then
    skip "/usr/bin/chromium is missing and installing it needs root (apt-get install chromium)"
  fi
  say "installing Debian's chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq chromium >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
fi

say "npm ci (tests/browser)"
(cd "$here" && npm ci --no-audit --no-fund --loglevel=error)

# The specs run one after the other against one server, which lets the
# portal spec's page origin call it (CORS) and frame the portal.
portal_origin="http://127.0.0.1:${HOOKLINE_PORTAL_TEST_PORT:-47613}"
export HOOKLINE_CORS_ORIGINS="$portal_origin" HOOKLINE_PORTAL_FRAME_ANCESTORS="$portal_origin"
exec "$root/tests/with-hookline.sh" bash -c '
  status=0
  for spec in dashboard.spec.mjs graphiql.spec.mjs portal.spec.mjs; do
    echo "==> running $spec"
    node "$0/$spec" || status=$?
  done
  exit "$status"
' "$here"
