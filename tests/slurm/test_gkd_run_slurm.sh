#!/usr/bin/env bash
# End to end through a real Slurm: a small grid (tests/fixtures/experiments/
# tiny_grid.yaml, 8 cells) submitted with `gkd run --executor slurm` gives the
# same results as the same grid run locally. Starts the single-node cluster
# (start.sh), submits into R1, waits (bounded) until `gkd status` shows every
# cell done, runs the grid locally into R2 with two threads (the Slurm tasks run
# one thread each), and compares every cell's metrics.csv and
# eval.csv byte for byte. Then checks that resubmitting a finished grid
# submits nothing, and that a grid cancelled mid-cell (scancel) and
# resubmitted ends with the bytes of an uninterrupted local run.
# Stops Slurm at the end (GKD_SLURM_KEEP=1 leaves it up).
#
#   make slurm-test        (as root; installs slurm-wlm and munge if missing)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
GKD_BIN=${GKD_BIN:-$ROOT/bin/gkd}
WAIT=${GKD_SLURM_JOB_WAIT:-300}
EXP_YAML=$ROOT/tests/fixtures/experiments/tiny_grid.yaml
NCELLS=8
T0=$(date +%s)

fail() { echo "test_gkd_run_slurm: FAIL: $*" >&2; exit 1; }
[ -x "$GKD_BIN" ] || fail "$GKD_BIN not built (make)"

WORK=$(mktemp -d /tmp/gkd-run-slurm-test.XXXXXX)
cleanup() {
  local rc=$?
  if [ "${GKD_SLURM_KEEP:-0}" != 1 ]; then "$ROOT/tests/slurm/stop.sh" || true; fi
  if [ $rc -eq 0 ]; then rm -rf "$WORK"; else echo "test_gkd_run_slurm: files kept in $WORK" >&2; fi
}
trap cleanup EXIT

eval "$("$ROOT/tests/slurm/start.sh" | tail -n 1)"
T_UP=$(date +%s)
echo "test_gkd_run_slurm: slurm up in $((T_UP - T0)) s"

# Submit from a directory other than the repository, with a relative results
# root: the tasks must not depend on where they start.
mkdir -p "$WORK/submit"
cd "$WORK/submit"
R1=$WORK/submit/R1
out=$("$GKD_BIN" run "$EXP_YAML" --executor slurm --results R1 --cpus-per-task 1)
echo "$out" | sed 's/^/  /'
JOB=$(echo "$out" | sed -n 's/^submitted job array \([0-9]*\) .*/\1/p')
[ -n "$JOB" ] || fail "no job id in: $out"
grep -qx "#SBATCH --array=0-$((NCELLS - 1))" "$R1/tiny_grid/slurm/array.sbatch" || fail "array line"
grep -q -- "--results $R1 *\$\|--results '$R1'" "$R1/tiny_grid/slurm/array.sbatch" ||
  fail "results root not absolute in $(tail -n 1 "$R1/tiny_grid/slurm/array.sbatch")"
cd "$ROOT"

# Wait until every cell is done (a failed cell ends the wait at once).
deadline=$(( $(date +%s) + WAIT ))
while :; do
  status=$("$GKD_BIN" status "$R1/tiny_grid")
  summary=$(echo "$status" | grep "^[0-9]* cells: ")
  case "$summary" in
    "$NCELLS cells: $NCELLS done, 0 running, 0 failed, 0 stale, 0 pending") break ;;
    *" 0 failed,"*) ;;
    *) echo "$status" >&2
       for f in "$R1"/tiny_grid/slurm/*.out; do echo "---- $f" >&2; tail -n 5 "$f" >&2; done
       fail "a cell failed" ;;
  esac
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "$status" >&2; squeue >&2 || true
    fail "not every cell done after ${WAIT}s"
  fi
  sleep 1
done
T_SLURM=$(date +%s)
echo "$status" | sed 's/^/  /'
echo "test_gkd_run_slurm: $NCELLS cells done through Slurm in $((T_SLURM - T_UP)) s"
# The task outputs say which cell each task ran.
for i in $(seq 0 $((NCELLS - 1))); do
  f=$R1/tiny_grid/slurm/${JOB}_$i.out
  [ -f "$f" ] || fail "missing $f"
  if grep -q "gkd run:" "$f"; then fail "task $i reported an error: $(cat "$f")"; fi
done
# One teacher for the grid, one SFT student per seed, however the tasks raced.
[ "$(ls -d "$R1"/tiny_grid/shared/teacher-* | grep -vc '\.lock$')" -eq 1 ] || fail "teacher trained more than once"
[ "$(ls -d "$R1"/tiny_grid/shared/student-* | grep -vc '\.lock$')" -eq 2 ] || fail "students: $(ls "$R1"/tiny_grid/shared)"
[ "$(cat "$R1"/tiny_grid/slurm/*.out | grep -c 'training the shared teacher')" -eq 1 ] || fail "teacher trained twice"

# The same grid locally with two threads (the Slurm tasks ran with one).
# Passive waiting keeps idle OpenMP threads from spinning: on a loaded
# machine spinning makes these tiny models some 50 times slower.
R2=$WORK/R2
OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive "$GKD_BIN" run "$EXP_YAML" --results "$R2" >"$WORK/local.out" 2>"$WORK/local.err" ||
  { cat "$WORK/local.err" >&2; fail "local run failed"; }
T_LOCAL=$(date +%s)
echo "test_gkd_run_slurm: local run in $((T_LOCAL - T_SLURM)) s"

n=0
tail -n +2 "$R1/tiny_grid/grid.csv" | while IFS= read -r row; do
  dir=$(echo "$row" | sed 's/^[0-9]*,"\([^"]*\)".*/\1/')
  for f in metrics.csv eval.csv; do
    a=$R1/tiny_grid/$dir/$f b=$R2/tiny_grid/$dir/$f
    [ -s "$a" ] && [ -s "$b" ] || fail "missing $a or $b"
    cmp "$a" "$b" || fail "$dir/$f differs between Slurm and local"
  done
done
[ "$(tail -n +2 "$R1/tiny_grid/grid.csv" | wc -l)" -eq $NCELLS ] || fail "grid.csv rows"
cmp "$R1/tiny_grid/grid.csv" "$R2/tiny_grid/grid.csv" || fail "grid.csv differs"
# Same table from both trees.
diff <("$GKD_BIN" table "$R1/tiny_grid" --rows divergence --cols lambda --metric exact_match,fkl_ref) \
     <("$GKD_BIN" table "$R2/tiny_grid" --rows divergence --cols lambda --metric exact_match,fkl_ref) ||
  fail "tables differ"

# Resubmitting a finished grid submits nothing.
out=$("$GKD_BIN" run "$EXP_YAML" --executor slurm --results "$R1" --cpus-per-task 1 2>&1)
echo "$out" | grep -q "all $NCELLS cells already done" || fail "resubmission of a finished grid: $out"
[ "$(wc -l <"$R1/tiny_grid/slurm/jobs.txt")" -eq 1 ] || fail "a second job was submitted"

# -- cancelled mid-cell, resubmitted: same bytes as an uninterrupted run -------
# The resume grid (2 cells) with longer cells, so scancel lands mid-cell.
T_CANCEL0=$(date +%s)
sed 's/^  steps: 300$/  steps: 1500/' "$ROOT/tests/fixtures/experiments/tiny_resume.yaml" >"$WORK/resume.yaml"
grep -q '^  steps: 1500$' "$WORK/resume.yaml" || fail "could not lengthen the resume grid"
R3=$WORK/R3 R4=$WORK/R4
CELLS="divergence=fkl,seed=1 divergence=rkl,seed=1"
wait_cells_done() { # exp_dir ncells
  local deadline=$(( $(date +%s) + WAIT )) st
  until "$GKD_BIN" status "$1" | grep -qx "$2 cells: $2 done, 0 running, 0 failed, 0 stale, 0 pending"; do
    st=$("$GKD_BIN" status "$1")
    if echo "$st" | grep -q '^[0-9]* cells: .* [1-9][0-9]* failed'; then echo "$st" >&2; fail "a cell failed"; fi
    [ "$(date +%s)" -lt "$deadline" ] || { echo "$st" >&2; fail "cells not done after ${WAIT}s"; }
    sleep 1
  done
}
rows() { [ -f "$1/metrics.csv" ] && echo $(( $(wc -l <"$1/metrics.csv") - 1 )) || echo 0; }
JOB2=$("$GKD_BIN" run "$WORK/resume.yaml" --executor slurm --results "$R3" --cpus-per-task 1 |
       sed -n 's/^submitted job array \([0-9]*\) .*/\1/p')
[ -n "$JOB2" ] || fail "resume grid not submitted"
deadline=$(( $(date +%s) + WAIT ))
some_cell_at_50() {
  local c
  for c in $CELLS; do [ "$(rows "$R3/tiny_resume/$c")" -ge 50 ] && return 0; done
  return 1
}
until some_cell_at_50; do
  [ "$(date +%s)" -lt "$deadline" ] || fail "no cell reached step 50 of job $JOB2"
  sleep 0.1
done
scancel "$JOB2"
deadline=$(( $(date +%s) + 60 ))
while squeue -h -j "$JOB2" 2>/dev/null | grep -q .; do
  [ "$(date +%s)" -lt "$deadline" ] || fail "job $JOB2 still queued 60 s after scancel"
  sleep 0.2
done
killed=0
for c in $CELLS; do
  d=$R3/tiny_resume/$c
  if [ ! -f "$d/done" ] && [ "$(rows "$d")" -gt 0 ]; then killed=$((killed + 1)); fi
  echo "  after scancel: $c: $(rows "$d") rows, $(ls "$d" | grep -E '^(done|running|failed)$' | tr '\n' ' ')"
done
[ $killed -ge 1 ] || fail "scancel did not land mid-cell"
JOB3=$("$GKD_BIN" run "$WORK/resume.yaml" --executor slurm --results "$R3" --cpus-per-task 1 |
       sed -n 's/^submitted job array \([0-9]*\) .*/\1/p')
[ -n "$JOB3" ] || fail "resume grid not resubmitted"
wait_cells_done "$R3/tiny_resume" 2
OMP_NUM_THREADS=1 "$GKD_BIN" run "$WORK/resume.yaml" --results "$R4" >/dev/null 2>"$WORK/local4.err" ||
  { cat "$WORK/local4.err" >&2; fail "local resume grid failed"; }
for c in $CELLS; do
  for f in metrics.csv eval.csv; do
    cmp "$R3/tiny_resume/$c/$f" "$R4/tiny_resume/$c/$f" || fail "$c/$f: cancelled+resubmitted differs from local"
  done
  [ "$(rows "$R3/tiny_resume/$c")" -eq 1500 ] || fail "$c: $(rows "$R3/tiny_resume/$c") rows"
done
T_CANCEL=$(date +%s)
echo "test_gkd_run_slurm: cancelled job $JOB2 mid-cell ($killed cell(s) unfinished), resubmitted as $JOB3, same bytes as local ($((T_CANCEL - T_CANCEL0)) s)"

T_END=$(date +%s)
echo "test_gkd_run_slurm: PASS (slurm up $((T_UP - T0)) s, slurm grid $((T_SLURM - T_UP)) s, local grid $((T_LOCAL - T_SLURM)) s, cancel/resume $((T_CANCEL - T_CANCEL0)) s, total $((T_END - T0)) s)"
