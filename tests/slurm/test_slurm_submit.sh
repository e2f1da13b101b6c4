#!/usr/bin/env bash
# Real-Slurm test: starts the single-node cluster (start.sh), submits a
# 3-task array through libgkd's script writer (slurm_driver), where each task
# behaves like `gkd run --cell`: skip if done, write running / done / failed
# markers. Task 2 fails on its first attempt; the test checks the task
# outputs, the slurm/%A_%a.out files and `gkd status`, then resubmits and
# checks that only the failed cell ran again. Stops Slurm at the end
# (GKD_SLURM_KEEP=1 leaves it running).
#
#   make slurm-test        (as root; installs slurm-wlm and munge if missing)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
GKD_BIN=${GKD_BIN:-$ROOT/bin/gkd}
DRIVER=${SLURM_DRIVER:-$ROOT/build/tests/slurm/slurm_driver}
WAIT=${GKD_SLURM_JOB_WAIT:-120}
T0=$(date +%s)

fail() { echo "test_slurm_submit: FAIL: $*" >&2; exit 1; }
[ -x "$GKD_BIN" ] || fail "$GKD_BIN not built (make)"
[ -x "$DRIVER" ] || fail "$DRIVER not built (make slurm-test builds it)"

WORK=$(mktemp -d /tmp/gkd-slurm-test.XXXXXX)
cleanup() {
  local rc=$?
  if [ "${GKD_SLURM_KEEP:-0}" != 1 ]; then "$ROOT/tests/slurm/stop.sh" || true; fi
  if [ $rc -eq 0 ]; then rm -rf "$WORK"; else echo "test_slurm_submit: files kept in $WORK" >&2; fi
}
trap cleanup EXIT

eval "$("$ROOT/tests/slurm/start.sh" | tail -n 1)"
T_UP=$(date +%s)
echo "test_slurm_submit: slurm up in $((T_UP - T0)) s"

EXP=$WORK/results/smoke
mkdir -p "$EXP"
printf 'cell,dir,seed\n0,cells/0000,1\n1,cells/0001,2\n2,cells/0002,3\n' >"$EXP/grid.csv"

# The body each array task runs; stands in for `gkd run exp.yaml --cell N`.
read -r -d '' BODY <<EOF || true
export OMP_NUM_THREADS=\$SLURM_CPUS_PER_TASK
d=$EXP/cells/\$(printf %04d \$SLURM_ARRAY_TASK_ID)
mkdir -p "\$d"
if [ -f "\$d/done" ]; then echo "cell \$SLURM_ARRAY_TASK_ID already done"; exit 0; fi
rm -f "\$d/failed"
printf 'pid=%s\nhost=%s\njob=%s_%s\n' \$\$ "\$(hostname -s)" "\$SLURM_ARRAY_JOB_ID" "\$SLURM_ARRAY_TASK_ID" >"\$d/running"
echo "run \$SLURM_ARRAY_JOB_ID" >>"\$d/runs.log"
printf 'step,loss\n0,3.0\n10,2.5\n' >"\$d/metrics.csv"
sleep 3
if [ "\$SLURM_ARRAY_TASK_ID" = 2 ] && [ ! -f "\$d/attempted" ]; then
  touch "\$d/attempted"
  printf 'first attempt fails on purpose\n' >"\$d/failed"; rm -f "\$d/running"
  echo "cell 2 failing"; exit 1
fi
echo "task \$SLURM_ARRAY_TASK_ID of \$SLURM_ARRAY_JOB_ID on \$(hostname -s) threads=\$OMP_NUM_THREADS" >"\$d/out.txt"
touch "\$d/done"; rm -f "\$d/running"
echo "hello from task \$SLURM_ARRAY_TASK_ID"
EOF

# Until the job has left the queue; meanwhile squeue must report its tasks,
# and `gkd status` must show a running cell with its last step.
wait_job() { # job
  local job=$1 deadline=$(( $(date +%s) + WAIT )) seen_queued=0 seen_running=0
  while squeue -h -j "$job" 2>/dev/null | grep -q .; do
    if "$DRIVER" states "$job" 3 | grep -Eq 'pending|running'; then seen_queued=1; fi
    if "$GKD_BIN" status "$EXP" | grep -Eq '^[0-9]+ +running +10 '; then seen_running=1; fi
    [ "$(date +%s)" -lt "$deadline" ] || { squeue; fail "job $job not finished after ${WAIT}s"; }
    sleep 0.5
  done
  [ $seen_queued = 1 ] || fail "never saw a task of job $job pending or running through squeue"
  [ $seen_running = 1 ] || fail "gkd status never showed a running cell of job $job"
}

# -- first submission: cells 0 and 1 succeed, cell 2 fails ---------------------
JOB1=$("$DRIVER" submit smoke "$EXP" 3 "$BODY" --time 00:05:00 --cpus-per-task 1 --max-parallel 2)
echo "test_slurm_submit: submitted job $JOB1"
grep -qx '#SBATCH --array=0-2%2' "$EXP/slurm/array.sbatch" || fail "array line missing"
grep -qx "#SBATCH --output=$EXP/slurm/%A_%a.out" "$EXP/slurm/array.sbatch" || fail "output line missing"
wait_job "$JOB1"

for i in 0 1; do
  out=$EXP/slurm/${JOB1}_$i.out
  [ -f "$out" ] || fail "missing $out"
  grep -qx "hello from task $i" "$out" || fail "$out: $(cat "$out")"
  grep -qx "task $i of $JOB1 on $(hostname -s) threads=1" "$EXP/cells/000$i/out.txt" ||
    fail "cells/000$i/out.txt: $(cat "$EXP/cells/000$i/out.txt" 2>&1)"
done
grep -qx "cell 2 failing" "$EXP/slurm/${JOB1}_2.out" || fail "task 2 output: $(cat "$EXP/slurm/${JOB1}_2.out")"
status=$("$GKD_BIN" status "$EXP")
echo "$status" | sed 's/^/  /'
echo "$status" | grep -qx '3 cells: 2 done, 0 running, 1 failed, 0 stale, 0 pending' || fail "status after job 1"
echo "$status" | grep -Eq '^2 +failed ' || fail "cell 2 not shown failed"

# -- resubmission: only the failed cell runs again --------------------------------
JOB2=$("$DRIVER" submit smoke "$EXP" 3 "$BODY" --time 00:05:00 --cpus-per-task 1 --max-parallel 2)
echo "test_slurm_submit: resubmitted as job $JOB2"
wait_job "$JOB2"
status=$("$GKD_BIN" status "$EXP")
echo "$status" | sed 's/^/  /'
echo "$status" | grep -qx '3 cells: 3 done, 0 running, 0 failed, 0 stale, 0 pending' || fail "status after job 2"
echo "$status" | grep -qx "last Slurm job: $JOB2 (output in $EXP/slurm/${JOB2}_<cell>.out)" || fail "last job"
grep -qx "cell 0 already done" "$EXP/slurm/${JOB2}_0.out" || fail "cell 0 ran again"
[ "$(wc -l <"$EXP/cells/0000/runs.log")" -eq 1 ] || fail "cell 0 ran twice"
[ "$(wc -l <"$EXP/cells/0002/runs.log")" -eq 2 ] || fail "cell 2 did not run twice"
grep -qx "hello from task 2" "$EXP/slurm/${JOB2}_2.out" || fail "task 2 second attempt"
[ "$(grep -c submitted= "$EXP/slurm/jobs.txt")" -eq 2 ] || fail "jobs.txt: $(cat "$EXP/slurm/jobs.txt")"

T_END=$(date +%s)
echo "test_slurm_submit: PASS (slurm up $((T_UP - T0)) s, two arrays $((T_END - T_UP)) s, total $((T_END - T0)) s)"
