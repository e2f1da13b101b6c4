#!/usr/bin/env bash
# The learning-curve pilots behind the shipped experiments' budgets: the
# teacher and candidate student shapes trained by plain SFT, evaluated on
# 200 eval prompts every 250 steps, on the experiments' own data (data seed
# 1234) and with their schedule (cosine to lr / 10, the experiment files'
# default; gkd train's is 0), so each teacher curve ends at the experiment's
# teacher.
#
#   tools/pilot.sh arith [OUT]   3-digit addition with a carry rationale (quickstart,
#                                gkd-divergences, sources, exposure-bias): exact match
#   tools/pilot.sh modes [OUT]   the known 4-mode distribution (modes): precision
#
# OUT defaults to runs/pilot-<which>; each takes about 10 minutes on 2 cores.
# Runs already finished in OUT (same options) are kept, not retrained.
# Writes OUT/<run>/ (gkd train output) and, in results/<experiment>/figures/,
# pilot.tsv (step, then one column per run) and pilot.svg / pilot.png.
set -euo pipefail
cd "$(dirname "$0")/.."
gkd=${GKD:-bin/gkd}
which=${1:?usage: tools/pilot.sh arith|modes [OUT]}
out=${2:-runs/pilot-$which}

# name layers d_model heads steps warmup seed
case "$which" in
arith)
  fig=results/quickstart/figures
  metric=exact_match
  task=(--task arith --digits 3 --rationale --train 20000 --eval 200 --context 48 --max-new-tokens 36
        --data-seed 1234)
  common=(--batch 32 --lr 1e-2 --lr-min 1e-3 --eval-every 250 --eval-n 200)
  runs=(
    "teacher_2x64 2 64 4 4000 50 1"
    "student_1x16 1 16 2 3000 20 1"
    "student_1x24 1 24 2 3000 20 1"
    "student_1x24_seed2 1 24 2 3000 20 2"
    "student_1x24_seed3 1 24 2 3000 20 3"
    "student_1x32 1 32 2 3000 20 1"
    "student_2x16 2 16 2 3000 20 1"
  )
  ;;
modes)
  fig=results/modes/figures
  metric=precision
  task=(--task modes --k 4 --zipf 1 --length 3 --min-len 3 --max-len 3 --alphabet abcdef --train 100000
        --eval 200 --context 12 --max-new-tokens 4 --data-seed 1234)
  common=(--batch 64 --lr 3e-3 --lr-min 3e-4 --eval-every 250 --eval-n 200 --eval-samples 8)
  runs=(
    "teacher_2x64 2 64 4 3000 50 1"
    "student_1x16 1 16 2 3000 20 1"
    "student_1x24 1 24 2 3000 20 1"
    "student_1x24_seed2 1 24 2 3000 20 2"
    "student_1x32 1 32 2 3000 20 1"
  )
  ;;
*) echo "tools/pilot.sh: unknown pilot '$which' (arith or modes)" >&2; exit 2 ;;
esac
mkdir -p "$out" "$fig"

# Two runs at a time, one thread each.
pids=()
for r in "${runs[@]}"; do
  read -r name layers d heads steps warmup seed <<< "$r"
  OMP_NUM_THREADS=1 "$gkd" train "${task[@]}" "${common[@]}" --layers "$layers" --d-model "$d" \
    --heads "$heads" --steps "$steps" --warmup "$warmup" --seed "$seed" --out "$out/$name" \
    > "$out/$name.log" 2>&1 &
  pids+=($!)
  if (( ${#pids[@]} == 2 )); then wait "${pids[0]}"; pids=("${pids[1]}"); fi
done
for p in "${pids[@]}"; do wait "$p"; done

# One table: step, then each run's metric (empty past a run's end).
names=()
for r in "${runs[@]}"; do names+=("${r%% *}"); done
{
  printf 'step'; printf '\t%s' "${names[@]}"; printf '\n'
  for step in $(seq 0 250 4000); do
    printf '%s' "$step"
    for n in "${names[@]}"; do
      v=$(awk -F, -v s="$step" -v m="$metric" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == m) c = i }
                NR > 1 && $1 == s { print $c }' < "$out/$n/eval.csv")
      printf '\t%s' "${v:-}"
    done
    printf '\n'
  done
} > "$fig/pilot.tsv"

plot_cmds() {
  echo "set key bottom right; set xlabel 'SFT step'; set ylabel '${metric//_/ } (200 eval prompts)'"
  echo "set yrange [0:1]; set grid; set datafile missing ''"
  printf 'plot'
  local i=2 sep=' '
  for n in "${names[@]}"; do
    printf "%s'%s' using 1:%d with linespoints title '%s'" "$sep" "$fig/pilot.tsv" "$i" "${n//_/ }"
    sep=', '
    i=$((i + 1))
  done
  printf '\n'
}
{ echo "set terminal svg size 800,500"; echo "set output '$fig/pilot.svg'"; plot_cmds; } | gnuplot
{ echo "set terminal pngcairo size 800,500"; echo "set output '$fig/pilot.png'"; plot_cmds; } | gnuplot
echo "wrote $fig/pilot.tsv, pilot.svg, pilot.png"
