#!/usr/bin/env bash
# Bring up a real single-node Slurm for tests: munged, slurmctld and slurmd
# started directly (no systemd), configuration, state, spool and logs under
# $GKD_SLURM_DIR (default /tmp/gkd-slurm). Works as root on a fresh Debian 12
# machine or container: installs slurm-wlm and munge with apt-get if missing.
#
# Idempotent: daemons that are already running are reused. Ends when `sinfo`
# shows the node idle, or fails after $GKD_SLURM_WAIT seconds (default 60)
# with the tail of the logs.
#
# Client commands find the cluster through SLURM_CONF; the last line printed
# is the export to use:   eval "$(tests/slurm/start.sh | tail -n 1)"
set -euo pipefail

DIR=${GKD_SLURM_DIR:-/tmp/gkd-slurm}
WAIT=${GKD_SLURM_WAIT:-60}
CPUS=${GKD_SLURM_CPUS:-2}
MEM_MB=${GKD_SLURM_MEM_MB:-1024}
CONF=$DIR/slurm.conf
HOST=$(hostname -s)

say() { echo "start.sh: $*" >&2; }
die() { echo "start.sh: error: $*" >&2; exit 1; }

show_logs() {
  local f
  for f in "$DIR"/log/*.log /var/log/munge/munged.log; do
    [ -f "$f" ] || continue
    echo "---- tail of $f" >&2
    tail -n 20 "$f" >&2
  done
}

[ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and starts slurmd)"

# -- packages ---------------------------------------------------------------
need=()
command -v slurmctld >/dev/null 2>&1 || need+=(slurm-wlm)
command -v munged >/dev/null 2>&1 || need+=(munge)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null; } ||
    die "apt-get install ${need[*]} failed"
fi

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# -- munge ------------------------------------------------------------------
# munged refuses keys or directories with loose permissions, and runs as the
# munge user created by the package.
MUNGE_USER=munge
id "$MUNGE_USER" >/dev/null 2>&1 || MUNGE_USER=root
install -d -m 0700 -o "$MUNGE_USER" -g "$MUNGE_USER" /etc/munge /var/log/munge
install -d -m 0711 -o "$MUNGE_USER" -g "$MUNGE_USER" /var/lib/munge
install -d -m 0755 -o "$MUNGE_USER" -g "$MUNGE_USER" /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  say "creating /etc/munge/munge.key"
  if command -v mungekey >/dev/null 2>&1; then
    mungekey --create --keyfile=/etc/munge/munge.key
  else
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  fi
fi
chown "$MUNGE_USER:$MUNGE_USER" /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key

mkdir -p "$DIR/log" "$DIR/state" "$DIR/spool"
if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
  : # a munged is already answering (ours from an earlier start, or the system's)
else
  say "starting munged"
  rm -f /run/munge/munged.pid
  if [ "$MUNGE_USER" = root ]; then
    munged --force
  else
    runuser -u "$MUNGE_USER" -- munged || runuser -u "$MUNGE_USER" -- munged --force
  fi
  touch "$DIR/munged.ours"
  for _ in $(seq 1 50); do
    munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && break
    sleep 0.1
  done
  munge -n </dev/null | unmunge >/dev/null 2>&1 || { show_logs; die "munged does not answer"; }
fi

# -- configuration ------------------------------------------------------------
# Node and controller addresses are pinned to 127.0.0.1 so the test does not
# depend on the container's DNS resolving its own hostname. No cgroups
# (proctrack/linuxproc, task/none) and no accounting daemon.
NPROC=$(nproc)
[ "$CPUS" -le "$NPROC" ] || CPUS=$NPROC
cat >"$CONF.tmp" <<EOF
# Single-node test cluster written by tests/slurm/start.sh.
ClusterName=gkdtest
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=${GKD_SLURM_PORT:-6817}
SlurmdPort=$(( ${GKD_SLURM_PORT:-6817} + 1 ))
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
MinJobAge=60
NodeName=$HOST NodeAddr=127.0.0.1 NodeHostname=$HOST CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
if [ -f "$CONF" ] && cmp -s "$CONF" "$CONF.tmp"; then
  rm -f "$CONF.tmp"
else
  mv "$CONF.tmp" "$CONF"
fi
export SLURM_CONF=$CONF

# -- daemons -----------------------------------------------------------------
if alive "$DIR/slurmctld.pid"; then
  say "reusing slurmctld (pid $(cat "$DIR/slurmctld.pid"))"
else
  # A fresh controller starts from empty state, so the node counts as idle
  # only once this slurmd has registered (not from an old state file).
  say "starting slurmctld"
  rm -rf "${DIR:?}/state"/*
  slurmctld -f "$CONF" -i || { show_logs; die "slurmctld did not start"; }
fi
if alive "$DIR/slurmd.pid"; then
  say "reusing slurmd (pid $(cat "$DIR/slurmd.pid"))"
else
  say "starting slurmd"
  slurmd -f "$CONF" || { show_logs; die "slurmd did not start"; }
fi

# -- wait for the node ---------------------------------------------------------
deadline=$(( $(date +%s) + WAIT ))
state=
while :; do
  state=$(sinfo -h -n "$HOST" -o %T 2>/dev/null | head -n 1 || true)
  case "$state" in
    idle|mixed|allocated|completing) break ;;
    down*|drain*|fail*)
      # A node left down by an earlier run comes back with a resume.
      scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true ;;
  esac
  if [ "$(date +%s)" -ge "$deadline" ]; then
    show_logs
    reason=$(sinfo -h -N -n "$HOST" -o '%E' 2>/dev/null | head -n 1 || true)
    die "node $HOST not idle after ${WAIT}s (sinfo state: '${state:-no answer}'${reason:+, reason: $reason})"
  fi
  sleep 1
done
say "node $HOST is $state (SLURM_CONF=$CONF)"
echo "export SLURM_CONF=$CONF"
