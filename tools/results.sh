#!/usr/bin/env bash
# Rebuild the committed tables and figures of the shipped experiments from
# their results trees (run them first: bin/gkd run experiments/NAME.yaml --jobs 2).
# Writes results/NAME/README.md (tables + the commands that made them),
# results/NAME/table.tex, results/NAME/figures/ and results/NAME/SHA256SUMS
# (the bytes every cell and shared model must have on any x86-64 CPU:
# `cd results/NAME && sha256sum -c SHA256SUMS` after a run checks them).
set -euo pipefail
cd "$(dirname "$0")/.."
gkd=${GKD:-bin/gkd}

# table NAME TITLE ARGS... : a Markdown table with the command that made it
table() {
    local name=$1 title=$2; shift 2
    echo "### $title"
    echo
    echo '```sh'
    echo "bin/gkd table results/$name $*"
    echo '```'
    echo
    "$gkd" table "results/$name" "$@"
    echo
}

figure() {
    local name=$1; shift
    "$gkd" plot "results/$name" "$@" > /dev/null
    echo '```sh'
    echo "bin/gkd plot results/$name $*"
    echo '```'
    echo
}

write() {
    local name=$1 body
    body=$(cat)
    printf '%s\n' "$body" > "results/$name/README.md"
    echo "wrote results/$name/README.md"
}

# SHA256SUMS of NAME: every cell's metrics.csv, eval.csv and final.ckpt and
# every shared model's, in a fixed order (timings and run.json differ by
# machine and are left out).
sums() {
    local name=$1
    (cd "results/$name" && find . -mindepth 2 \( -name metrics.csv -o -name eval.csv -o -name final.ckpt \) \
        -not -path './slurm/*' | LC_ALL=C sort | xargs sha256sum) > "results/$name/SHA256SUMS"
    echo "wrote results/$name/SHA256SUMS"
}

# Training seconds of one cell (timings.csv: sampling, teacher, student,
# update; evaluation is not in it), read from stdin.
train_seconds() { awk -F, 'NR > 1 { s += $2 + $3 + $4 + $5; n++ } END { printf "%.6f %d\n", s, n }'; }

# A Markdown table of seconds per step by variant, mean over the seeds.
seconds_per_step() {
    local name=$1
    echo "| variant | s / step | ≈ steps in the time budget |"
    echo "| :-- | --: | --: |"
    local budget
    budget=$(time_budget "$name")
    for v in $(cd "results/$name" && ls -d variant=*,seed=* | sed 's/^variant=\([^,]*\),.*/\1/' | uniq); do
        for d in "results/$name/variant=$v,seed="*; do train_seconds < "$d/timings.csv"; done |
            awk -v v="$v" -v b="$budget" '{ s += $1 / $2; n++ } END { printf "| %s | %.4f | %d |\n", v, s / n, b / (s / n) }'
    done
}

# The equal wall-clock budget: the shortest total training time of any
# cell, in whole seconds, so that no cell has stopped before it.
time_budget() {
    local name=$1
    for d in "results/$name"/*=*; do train_seconds < "$d/timings.csv"; done |
        awk 'NR == 1 || $1 < m { m = $1 } END { printf "%d\n", m }'
}

# The hand-written reading of a result (results/NAME/reading.md), kept
# beside the generated tables so a rerun does not overwrite it.
reading() {
    local name=$1
    if [[ -f "results/$name/reading.md" ]]; then
        cat "results/$name/reading.md"
        echo
    fi
}

header() {
    local name=$1
    echo "# $name"; echo
    echo "Made by \`bin/gkd run experiments/$name.yaml --jobs 2\`$2; the tables and figures by \`tools/results.sh $name\`."; echo
    reading "$name"
}

for name in "$@"; do
  sums "$name"
  case "$name" in
  quickstart)
    {
      header quickstart " (\`make main\`)"
      table quickstart "On-policy against off-policy, per divergence (exact match, final evaluation)" --rows divergence --cols lambda --metric exact_match --reference teacher,init --baseline lambda=0 --power
      table quickstart "Which divergence, per data source (exact match, final evaluation)" --rows divergence --cols lambda --metric exact_match --baseline divergence=fkl --power
      table quickstart "Agreement with the teacher (final evaluation)" --rows divergence --cols lambda --metric fkl_ref,teacher_nll --reference teacher,init --baseline lambda=0
      table quickstart "Mean exact match over training (area under the curve)" --rows divergence --cols lambda --metric exact_match --at auc --baseline lambda=0
      figure quickstart --metric exact_match --by divergence --where lambda=1
      figure quickstart --metric exact_match --by divergence --where lambda=0
      echo '![exact match, on-policy](figures/exact_match_by_divergence_lambda=1.svg)'
      echo '![exact match, off-policy](figures/exact_match_by_divergence_lambda=0.svg)'
      echo
      echo '### The pilot that chose the budgets'
      echo
      echo '```sh'
      echo 'tools/pilot.sh arith'
      echo '```'
      echo
      echo '![pilot learning curves](figures/pilot.svg)'
    } | write quickstart
    "$gkd" table results/quickstart --rows divergence --cols lambda --metric exact_match --reference teacher,init --baseline lambda=0 --format latex > results/quickstart/table.tex
    ;;
  gkd-divergences)
    {
      header gkd-divergences ""
      table gkd-divergences "How much on-policy data, per divergence (exact match, final evaluation)" --rows divergence --cols lambda --metric exact_match --reference teacher,init --baseline lambda=0 --power
      table gkd-divergences "Which divergence, per lambda (exact match, final evaluation)" --rows divergence --cols lambda --metric exact_match --baseline divergence=fkl --power
      table gkd-divergences "DistiLLM's claim: mean exact match over training (area under the curve) against fkl" --rows divergence --cols lambda --metric exact_match --at auc --baseline divergence=fkl
      table gkd-divergences "The same against rkl" --rows divergence --cols lambda --metric exact_match --at auc --baseline divergence=rkl
      table gkd-divergences "Early in training: exact match after 100 steps" --rows divergence --cols lambda --metric exact_match --at step=100 --baseline divergence=fkl
      table gkd-divergences "Forward KL to the teacher on references (final)" --rows divergence --cols lambda --metric fkl_ref --reference teacher,init --baseline lambda=0
      table gkd-divergences "Teacher NLL of the student's samples (final)" --rows divergence --cols lambda --metric teacher_nll --reference init --baseline lambda=0
      figure gkd-divergences --metric exact_match --by divergence --where lambda=1
      figure gkd-divergences --metric exact_match --by divergence --where lambda=0
      figure gkd-divergences --metric exact_match --by lambda --where divergence=jsd\(0.5\)
      echo '![exact match, on-policy](figures/exact_match_by_divergence_lambda=1.svg)'
      echo '![exact match, off-policy](figures/exact_match_by_divergence_lambda=0.svg)'
    } | write gkd-divergences
    "$gkd" table results/gkd-divergences --rows divergence --cols lambda --metric exact_match --reference teacher,init --baseline lambda=0 --format latex > results/gkd-divergences/table.tex
    ;;
  sources)
    {
      header sources ""
      table sources "Data sources against supervised KD (exact match, final evaluation)" --rows variant --metric exact_match --reference teacher,init --baseline variant=supervised_kd --power
      table sources "Data sources against more SFT at the same compute (exact match, final evaluation)" --rows variant --metric exact_match --baseline variant=sft_only --power
      table sources "Agreement with the teacher (final evaluation)" --rows variant --metric fkl_ref,teacher_nll,accept_rate --reference teacher,init --baseline variant=supervised_kd
      figure sources --metric exact_match --by variant
      echo '![exact match by data source](figures/exact_match_by_variant.svg)'
    } | write sources
    "$gkd" table results/sources --rows variant --metric exact_match --reference teacher,init --baseline variant=supervised_kd --format latex > results/sources/table.tex
    ;;
  exposure-bias)
    {
      header exposure-bias ""
      table exposure-bias "Equal student updates: exact match after 500 steps" --rows variant --metric exact_match,char_accuracy --reference teacher,init --baseline variant=supervised_kd --power --at step=500
      table exposure-bias "Equal student updates: exact match after 1000 steps" --rows variant --metric exact_match,char_accuracy --reference teacher,init --baseline variant=supervised_kd --power
      echo "### Equal wall-clock"
      echo
      echo "Seconds of training (sampling, teacher, student, update; evaluation excluded) per step on the machine that made this table, mean over the 10 seeds:"
      echo
      seconds_per_step exposure-bias
      echo
      budget=$(time_budget exposure-bias)
      table exposure-bias "Equal wall-clock: exact match after ${budget} s of training (this machine)" --rows variant --metric exact_match,char_accuracy --reference teacher,init --baseline variant=supervised_kd --power --at "time=${budget}"
      figure exposure-bias --metric exact_match --by variant
      echo '![exact match by data source](figures/exact_match_by_variant.svg)'
    } | write exposure-bias
    "$gkd" table results/exposure-bias --rows variant --metric exact_match --reference teacher,init --baseline variant=supervised_kd --format latex > results/exposure-bias/table.tex
    ;;
  context-distillation)
    {
      header context-distillation ""
      table context-distillation "fkl: with against without the privileged context (exact match, final evaluation)" --rows context --cols lambda --where divergence=fkl --metric exact_match --reference teacher,init --baseline context=none --power
      table context-distillation "rkl: with against without the privileged context (exact match, final evaluation)" --rows context --cols lambda --where divergence=rkl --metric exact_match --reference teacher,init --baseline context=none --power
      table context-distillation "On-policy against off-policy, with the context (exact match, final evaluation)" --rows divergence --cols lambda --where context=rationale --metric exact_match --baseline lambda=0 --power
      table context-distillation "On-policy against off-policy, without it (exact match, final evaluation)" --rows divergence --cols lambda --where context=none --metric exact_match --baseline lambda=0 --power
      table context-distillation "fkl: mean exact match over training (area under the curve)" --rows context --cols lambda --where divergence=fkl --metric exact_match --at auc --baseline context=none
      figure context-distillation --metric exact_match --by context --where divergence=fkl --where lambda=0
      figure context-distillation --metric exact_match --by context --where divergence=fkl --where lambda=1
      echo '![exact match, fkl, off-policy](figures/exact_match_by_context_divergence=fkl_lambda=0.svg)'
      echo '![exact match, fkl, on-policy](figures/exact_match_by_context_divergence=fkl_lambda=1.svg)'
    } | write context-distillation
    "$gkd" table results/context-distillation --rows context --cols lambda --where divergence=fkl --metric exact_match --reference teacher,init --baseline context=none --format latex > results/context-distillation/table.tex
    ;;
  step-by-step)
    {
      header step-by-step ""
      table step-by-step "Against standard fine-tuning, per share of the training data (exact match of the answer, final evaluation)" --rows train_fraction --cols variant --metric exact_match --baseline variant=sft --power
      table step-by-step "Against plain KD (exact match of the answer, final evaluation)" --rows train_fraction --cols variant --metric exact_match --baseline variant=kd --power
      table step-by-step "Each variant's teacher and its untrained students (reference rows, all the data)" --rows variant --where train_fraction=1 --metric exact_match --reference teacher,init
      figure step-by-step --metric exact_match --by variant --where train_fraction=0.1
      figure step-by-step --metric exact_match --by variant --where train_fraction=1
      echo '![exact match, 10% of the data](figures/exact_match_by_variant_train_fraction=0.1.svg)'
      echo '![exact match, all the data](figures/exact_match_by_variant_train_fraction=1.svg)'
    } | write step-by-step
    "$gkd" table results/step-by-step --rows train_fraction --cols variant --metric exact_match --baseline variant=sft --format latex > results/step-by-step/table.tex
    ;;
  modes)
    {
      header modes ""
      table modes "Precision, coverage and KL(data || student) against fkl (final evaluation)" --rows divergence --cols lambda --metric precision,coverage,kl_data --reference teacher,init --baseline divergence=fkl --power
      table modes "On-policy against off-policy (final evaluation)" --rows divergence --cols lambda --metric precision,coverage,kl_data --baseline lambda=0
      figure modes --metric coverage --by divergence --where lambda=1
      figure modes --metric precision --by divergence --where lambda=1
      echo '![coverage, on-policy](figures/coverage_by_divergence_lambda=1.svg)'
      echo '![precision, on-policy](figures/precision_by_divergence_lambda=1.svg)'
      echo
      echo '### The pilot that chose the budgets'
      echo
      echo '```sh'
      echo 'tools/pilot.sh modes'
      echo '```'
      echo
      echo '![pilot learning curves](figures/pilot.svg)'
    } | write modes
    "$gkd" table results/modes --rows divergence --cols lambda --metric precision,coverage,kl_data --reference teacher,init --baseline divergence=fkl --format latex > results/modes/table.tex
    ;;
  *) echo "results.sh: unknown experiment '$name'" >&2; exit 2 ;;
  esac
done
