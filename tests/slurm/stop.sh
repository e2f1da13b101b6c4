#!/usr/bin/env bash
# Shut down the test Slurm started by tests/slurm/start.sh: slurmd, slurmctld,
# and munged if start.sh started it. State and logs stay in $GKD_SLURM_DIR
# for inspection (GKD_SLURM_CLEAN=1 removes the directory).
set -uo pipefail

DIR=${GKD_SLURM_DIR:-/tmp/gkd-slurm}

stop_pidfile() { # name pidfile
  local pid
  [ -f "$2" ] || return 0
  pid=$(cat "$2")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "stop.sh: $1 (pid $pid) ignores SIGTERM; sending SIGKILL" >&2
      kill -9 "$pid" 2>/dev/null
    fi
  fi
  rm -f "$2"
}

stop_pidfile slurmd "$DIR/slurmd.pid"
stop_pidfile slurmctld "$DIR/slurmctld.pid"
if [ -f "$DIR/munged.ours" ]; then
  stop_pidfile munged /run/munge/munged.pid
  rm -f "$DIR/munged.ours"
fi
if [ "${GKD_SLURM_CLEAN:-0}" = 1 ]; then rm -rf "$DIR"; fi
echo "stop.sh: stopped" >&2
