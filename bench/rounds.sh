#!/bin/sh
# Each gkd benchmark interleaved with its PyTorch peer:
#   rounds.sh BUILD_DIR ROUNDS OUT
# runs ROUNDS rounds; in each, every pair below runs once on each side, gkd
# first in odd rounds and the peer first in even ones, and every `bench`
# line is tagged round=N, printed and appended to OUT. This machine's speed
# drifts by 10-40% over minutes; the two runs of a pair are seconds apart,
# so bench/ratios.awk takes each round's ratio and reports their median
# rather than the ratio of runs made minutes apart. Without torch only the
# gkd side runs.
set -eu
build=$1
rounds=$2
outfile=$3
have_torch=0 have_node=0
/usr/bin/python3 -c 'import torch' 2>/dev/null && have_torch=1
command -v node >/dev/null 2>&1 && [ -d tools/tokenizer_oracles/node_modules ] && have_node=1
# gkd program | peer script and its arguments
pairs="bench_model|peer_torch.py fwd fwdbwd
bench_decode|peer_torch.py decode
bench_gkd|peer_torch_gkd.py
bench_tokenize|peer_tokenize.js"
run() { # side (gkd or peer), gkd program, peer script and arguments
  if [ "$1" = gkd ]; then
    OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}" "./$build/bench/$2"
  elif [ "${3%.js}" != "$3" ]; then
    if [ "$have_node" = 1 ]; then node "bench/$3"; fi
  elif [ "$have_torch" = 1 ]; then
    # shellcheck disable=SC2086 # the peer's arguments are words
    /usr/bin/python3 bench/$3
  fi
}
r=1
while [ "$r" -le "$rounds" ]; do
  if [ $((r % 2)) = 1 ]; then order="gkd peer"; else order="peer gkd"; fi
  printf '%s\n' "$pairs" | while IFS='|' read -r prog peer; do
    for side in $order; do
      # A failed run must fail the benchmark, not vanish into the pipe.
      out=$(run "$side" "$prog" "$peer") || { echo "rounds: $side run of $prog failed in round $r" >&2; exit 1; }
      printf '%s\n' "$out" | sed "/^bench /s/\$/ round=$r/" | tee -a "$outfile"
    done
  done
  r=$((r + 1))
done
