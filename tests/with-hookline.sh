#!/usr/bin/env bash
# Runs a command against a throw-away hookline: builds the binary (debug),
# starts it on a free port with a temporary SQLite database and private
# endpoints allowed (receivers run on 127.0.0.1), mints an admin token for the
# tenant `demo`, and runs the command with HOOKLINE_URL and HOOKLINE_TOKEN set.
# The server is stopped afterwards; the command's exit code is the script's.
#
#   tests/with-hookline.sh examples/python-client/run.sh
#   tests/with-hookline.sh npm --prefix examples/typescript-client run demo
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
started=$(date +%s)
say() { printf '==> %s  (+%ss)\n' "$*" "$(( $(date +%s) - started ))"; }
[ "$#" -gt 0 ] || { echo "usage: $0 COMMAND [ARGS...]" >&2; exit 2; }

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

# The machine-readable line {"listening":"ADDR"}, printed once it can serve.
addr=""
for _ in $(seq 300); do
  addr="$(sed -n 's|^{"listening":"\([^"]*\)"}$|\1|p' "$tmp/server.out" | head -n1)"
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

say "running $*"
status=0
HOOKLINE_URL="http://$addr" HOOKLINE_TOKEN="$token" "$@" || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- hookline stderr (last 40 lines) ---" >&2
  tail -n 40 "$tmp/server.err" >&2
fi
say "done (exit $status)"
exit "$status"
