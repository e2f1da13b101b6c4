#!/bin/sh
# KV-cache decoding of gkd and of the PyTorch peer, interleaved:
#   decode_rounds.sh BUILD_DIR ROUNDS OUT
# runs ROUNDS rounds, each one gkd run (bench_decode) and one peer run
# (peer_torch.py decode), gkd first in odd rounds and the peer first in even
# ones, and tags every `bench` line with round=N. This machine's speed
# drifts by 10-40% over minutes; the two runs of a round are seconds apart,
# so bench/ratios.awk takes each round's ratio and reports their median
# rather than the ratio of runs made minutes apart. Without torch only the
# gkd runs happen. Lines are printed and appended to OUT.
set -eu
build=$1
rounds=$2
outfile=$3
have_torch=0
/usr/bin/python3 -c 'import torch' 2>/dev/null && have_torch=1
gkd() { OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}" "./$build/bench/bench_decode"; }
peer() { [ "$have_torch" = 0 ] || /usr/bin/python3 bench/peer_torch.py decode; }
r=1
while [ "$r" -le "$rounds" ]; do
  if [ $((r % 2)) = 1 ]; then order="gkd peer"; else order="peer gkd"; fi
  for side in $order; do
    # A failed run must fail the benchmark, not vanish into the pipe.
    out=$($side) || { echo "decode_rounds: $side run failed in round $r" >&2; exit 1; }
    printf '%s\n' "$out" | sed "/^bench /s/\$/ round=$r/" | tee -a "$outfile"
  done
  r=$((r + 1))
done
