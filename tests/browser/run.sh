#!/usr/bin/env bash
# End-to-end tests in headless Chromium: the dashboard (dashboard.spec.mjs)
# and GraphiQL with outside network blocked (graphiql.spec.mjs). The script
# builds hookline, starts it on a free port with a throw-away SQLite database,
# mints an admin token, and drives the page with playwright-core.
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

say "cargo build --bin hookline"
(cd "$root" && cargo build --bin hookline)
bin="${CARGO_TARGET_DIR:-$root/target}/debug/hookline"

tmp="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

database_url="sqlite://$tmp/h.db"
jwt_secret="$(head -c 36 /dev/urandom | base64)"      # 48 characters
encryption_key="$(head -c 32 /dev/urandom | base64)"  # base64 of 32 bytes

say "starting hookline"
HOOKLINE_JWT_SECRET="$jwt_secret" HOOKLINE_ENCRYPTION_KEY="$encryption_key" HOOKLINE_LOG="${HOOKLINE_LOG:-warn}" \
  "$bin" serve --listen 127.0.0.1:0 --database-url "$database_url" --allow-private-endpoints \
  >"$tmp/server.out" 2>"$tmp/server.err" &
server_pid=$!

# "hookline listening on http://ADDR  (GraphiQL: ...)"
addr=""
for _ in $(seq 300); do
  addr="$(sed -n 's|^hookline listening on http://\([^ ]*\).*|\1|p' "$tmp/server.out" | head -n1)"
  [ -n "$addr" ] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "hookline exited during start-up:" >&2
    cat "$tmp/server.out" "$tmp/server.err" >&2
    exit 1
  fi
  sleep 0.1
done
[ -n "$addr" ] || { echo "hookline did not print its address in 30 s" >&2; cat "$tmp/server.err" >&2; exit 1; }
say "hookline at http://$addr"

token="$("$bin" token --tenant demo --role admin --database-url "$database_url" \
  --jwt-secret "$jwt_secret" --encryption-key "$encryption_key")"

status=0
for spec in dashboard.spec.mjs graphiql.spec.mjs; do
  say "running $spec"
  HOOKLINE_URL="http://$addr" HOOKLINE_TOKEN="$token" node "$here/$spec" || status=$?
done
if [ "$status" -ne 0 ]; then
  echo "--- hookline stderr (last 40 lines) ---" >&2
  tail -n 40 "$tmp/server.err" >&2
fi
say "done"
exit "$status"
