#!/usr/bin/env bash
# A throw-away pg_auto_failover formation on 127.0.0.1 for the fault suite's
# "primary failover mid-run": a monitor and two PostgreSQL nodes in DIR, on
# free local ports, run by pg_autoctl as the `postgres` user when started as
# root (pg_autoctl refuses root). Installs Debian's postgresql-15-auto-failover
# with apt-get when pg_autoctl is missing and this runs as root.
#
#   pg_auto_failover.sh start DIR     # prints "ports MONITOR NODE1 NODE2" once both nodes are up
#   pg_auto_failover.sh primary DIR   # prints the port of the current primary ("none" if none)
#   pg_auto_failover.sh failover DIR  # asks the monitor to fail the primary over, returns at once
#   pg_auto_failover.sh stop DIR      # stops every process and removes DIR
#
# Exit status 3 with a "skipped: …" line on stderr means pg_auto_failover
# cannot run here; any other failure is a real one.
set -euo pipefail

cmd="${1:?usage: $0 start|primary|failover|stop DIR}"
dir="${2:?usage: $0 $cmd DIR}"
skip() { echo "skipped: $*" >&2; exit 3; }

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- env PATH="$PATH" XDG_CONFIG_HOME="$dir/config" XDG_DATA_HOME="$dir/share" \
      XDG_RUNTIME_DIR="$dir/run" "$@"
  else
    env XDG_CONFIG_HOME="$dir/config" XDG_DATA_HOME="$dir/share" XDG_RUNTIME_DIR="$dir/run" "$@"
  fi
}

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
[ -n "$bin" ] && [ -x "$bin/pg_ctl" ] || skip "PostgreSQL's server binaries are not installed"
export PATH="$bin:$PATH"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
    || shuf -i 20000-60000 -n 1
}

# Fails at once when the pg_autoctl of $1 has exited, showing its log.
alive() {
  kill -0 "$(cat "$dir/$1.pid")" 2>/dev/null && return 0
  echo "pg_autoctl for $1 exited:" >&2; tail -n 20 "$dir/$1.log" >&2; exit 1
}

monitor_url() { echo "postgres://autoctl_node@127.0.0.1:$(cat "$dir/monitor.port")/pg_auto_failover?sslmode=disable"; }

case "$cmd" in
start)
  if ! command -v pg_autoctl >/dev/null; then
    command -v apt-get >/dev/null || skip "pg_autoctl is missing and apt-get is not available to install it"
    [ "$(id -u)" -eq 0 ] || skip "pg_autoctl is missing and installing it needs root (apt-get install postgresql-15-auto-failover)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq postgresql-15-auto-failover >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq postgresql-15-auto-failover >/dev/null 2>&1; } \
      || skip "apt-get could not install postgresql-15-auto-failover"
  fi
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || skip "running as root and there is no postgres user to run pg_autoctl as"
  fi
  mkdir -p "$dir"
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres:postgres "$dir"
    chmod 755 "$dir"
    as_pg test -w "$dir" || skip "the postgres user cannot write to $dir (a parent directory closed to it?)"
  fi
  # pg_autoctl keeps pid files under XDG_RUNTIME_DIR (default /tmp), and its
  # configuration and state under XDG_CONFIG_HOME and XDG_DATA_HOME, each in
  # a directory named after the data directory's path, which two of its
  # processes (a node starting, `show state` polling it) may race to create
  # ("File exists"). Each formation gets its own three directories, with
  # those made beforehand.
  for pgdata in monitor node1 node2; do
    for kind in run config share; do
      mkdir -p "$dir/$kind/pg_autoctl$dir/$pgdata"
    done
  done
  if [ "$(id -u)" -eq 0 ]; then chown -R postgres:postgres "$dir/run" "$dir/config" "$dir/share"; fi
  m=$(free_port); a=$(free_port); b=$(free_port)
  echo "$m" >"$dir/monitor.port"
  common=(--auth trust --no-ssl --hostname 127.0.0.1 --pgctl "$bin/pg_ctl")
  as_pg pg_autoctl create monitor --pgdata "$dir/monitor" --pgport "$m" "${common[@]}" --run \
    >"$dir/monitor.log" 2>&1 &
  echo $! >"$dir/monitor.pid"
  for _ in $(seq 1 120); do
    as_pg pg_autoctl show state --pgdata "$dir/monitor" >/dev/null 2>&1 && break
    alive monitor
    sleep 0.5
  done
  for node in 1 2; do
    port=$a; [ "$node" = 2 ] && port=$b
    echo "$port" >"$dir/node$node.port"
    as_pg pg_autoctl create postgres --pgdata "$dir/node$node" --pgport "$port" --listen 127.0.0.1 \
      --name "node$node" --monitor "$(monitor_url)" "${common[@]}" --run \
      >"$dir/node$node.log" 2>&1 &
    echo $! >"$dir/node$node.pid"
    # The second node is created once the first is the primary.
    for _ in $(seq 1 240); do
      states=$(as_pg pg_autoctl show state --pgdata "$dir/monitor" 2>/dev/null || true)
      if [ "$node" = 1 ] && grep -q "single *| *single" <<<"$states"; then break; fi
      if [ "$node" = 2 ] && grep -q "primary *| *primary" <<<"$states" \
         && grep -q "secondary *| *secondary" <<<"$states"; then break; fi
      alive monitor; alive "node$node"
      sleep 0.5
    done
  done
  states=$(as_pg pg_autoctl show state --pgdata "$dir/monitor" 2>&1 || true)
  grep -q "secondary *| *secondary" <<<"$states" || { echo "$states" >&2; tail -n 20 "$dir"/*.log >&2; exit 1; }
  echo "ports $m $a $b"
  ;;
primary)
  as_pg pg_autoctl show state --pgdata "$dir/monitor" 2>/dev/null \
    | awk -F'|' '$6 ~ /primary/ && $7 ~ /primary/ { split($3, hp, ":"); gsub(/ /, "", hp[2]); print hp[2]; found=1 } END { if (!found) print "none" }'
  ;;
failover)
  as_pg pg_autoctl perform failover --pgdata "$dir/monitor" --wait 0 >/dev/null 2>&1 \
    || as_pg pg_autoctl perform failover --monitor "$(monitor_url)" --wait 0
  ;;
show)
  as_pg pg_autoctl show state --pgdata "$dir/monitor"
  ;;
stop)
  for node in node2 node1 monitor; do
    [ -d "$dir/$node" ] && as_pg pg_autoctl stop --pgdata "$dir/$node" --immediate >/dev/null 2>&1 || true
  done
  for node in node2 node1 monitor; do
    if [ -f "$dir/$node.pid" ]; then
      pid=$(cat "$dir/$node.pid")
      for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill "$pid" 2>/dev/null || true
    fi
    [ -d "$dir/$node" ] && "$bin/pg_ctl" status -D "$dir/$node" >/dev/null 2>&1 \
      && as_pg "$bin/pg_ctl" stop -D "$dir/$node" -m immediate >/dev/null 2>&1 || true
  done
  rm -rf "$dir"
  ;;
*) echo "unknown command $cmd" >&2; exit 2 ;;
esac
