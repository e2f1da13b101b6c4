#!/bin/sh
# Two builds or two settings of gkd, compared in paired rounds:
#   bench/ab.sh ROUNDS BENCH_DIR_A "ENV_A" BENCH_DIR_B "ENV_B" [PROGRAMS]
# e.g. the AVX2 path against the AVX-512 path of one build:
#   bench/ab.sh 4 build/bench "" build/bench "GKD_ISA=avx2"
# or a change against the commit before it (built in another work tree).
# Each round runs every program (default: bench_model bench_decode
# bench_gkd) once per side, A first in odd rounds and B first in even ones,
# and prints, per measurement, each side's median tokens/s and the median
# and range of the rounds' B/A ratios: this machine's speed drifts over
# minutes, so only runs seconds apart are compared.
set -eu
rounds=$1 dir_a=$2 env_a=$3 dir_b=$4 env_b=$5
programs=${6:-bench_model bench_decode bench_gkd}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
r=1
while [ "$r" -le "$rounds" ]; do
  if [ $((r % 2)) = 1 ]; then order="A B"; else order="B A"; fi
  for p in $programs; do
    for side in $order; do
      if [ "$side" = A ]; then d=$dir_a e=$env_a; else d=$dir_b e=$env_b; fi
      # shellcheck disable=SC2086 # the settings are words
      env OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}" $e "$d/$p" | grep 'tokens_per_s=' | sed "s/^/$side $r /" >> "$out"
    done
  done
  r=$((r + 1))
done
awk '
function median(v, n,   i, j, x) {
    for (i = 2; i <= n; i++) { x = v[i]; for (j = i - 1; j >= 1 && v[j] > x; j--) v[j + 1] = v[j]; v[j + 1] = x }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
{
    side = $1; r = $2; k = $4 " " $5
    if ($4 == "model") k = k " " $6
    for (i = 1; i <= NF; i++) if ($i ~ /^tokens_per_s=/) { v = $i; sub(/^[^=]*=/, "", v) }
    tps[side, k, r] = v + 0
    if (!(k in seen)) { seen[k] = 1; keys[++nk] = k }
    if (r > maxr) maxr = r
}
END {
    printf "%-22s %12s %12s %8s  %s\n", "tokens/s", "A", "B", "B/A", "rounds"
    for (i = 1; i <= nk; i++) {
        k = keys[i]; n = 0
        for (r = 1; r <= maxr; r++)
            if ((("A", k, r) in tps) && (("B", k, r) in tps)) {
                n++; a[n] = tps["A", k, r]; b[n] = tps["B", k, r]; q[n] = b[n] / a[n]
            }
        if (!n) continue
        lo = q[1]; hi = q[1]
        for (j = 2; j <= n; j++) { if (q[j] < lo) lo = q[j]; if (q[j] > hi) hi = q[j] }
        printf "%-22s %12.0f %12.0f %7.3fx  %.3f-%.3f (n=%d)\n", k, median(a, n), median(b, n), median(q, n), lo, hi, n
    }
}' "$out"
