#!/usr/bin/env bash
# Rebuild the committed tables and figures of the shipped experiments from
# their results trees (run them first: bin/gkd run experiments/NAME.yaml --jobs 2).
# Writes results/NAME/README.md (tables + the commands that made them),
# results/NAME/table.tex, results/NAME/figures/ and results/NAME/SHA256SUMS
# (the bytes every cell and shared model must have on any x86-64 CPU:
# `cd results/NAME && sha256sum -c SHA256SUMS` after a run checks them).
set -euo pipefail
cd "$(dirname "$0")/.."
gkd=bin/gkd

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

for name in "$@"; do
  sums "$name"
  case "$name" in
  quickstart)
    {
      echo "# quickstart"; echo
      echo "Made by \`bin/gkd run experiments/quickstart.yaml --jobs 2\` (\`make main\`)."; echo
      table quickstart "Exact match and teacher agreement at the final evaluation" --rows divergence --cols lambda --metric exact_match,fkl_ref,teacher_nll
      table quickstart "Exact match at the best evaluation" --rows divergence --cols lambda --metric exact_match --at best
      figure quickstart --metric exact_match --by divergence --where lambda=1
      figure quickstart --metric exact_match --by divergence --where lambda=0
      echo '![exact match, on-policy](figures/exact_match_by_divergence_lambda=1.svg)'
    } | write quickstart
    "$gkd" table results/quickstart --rows divergence --cols lambda --metric exact_match,fkl_ref,teacher_nll --format latex > results/quickstart/table.tex
    ;;
  gkd-divergences)
    {
      echo "# gkd-divergences"; echo
      echo "Made by \`bin/gkd run experiments/gkd-divergences.yaml --jobs 2\`."; echo
      table gkd-divergences "Exact match (final evaluation)" --rows divergence --cols lambda --metric exact_match
      table gkd-divergences "Exact match (best evaluation)" --rows divergence --cols lambda --metric exact_match --at best
      table gkd-divergences "Forward KL to the teacher on references (final)" --rows divergence --cols lambda --metric fkl_ref
      table gkd-divergences "Teacher NLL of the student's samples (final)" --rows divergence --cols lambda --metric teacher_nll
      table gkd-divergences "Speculative-decoding acceptance (final)" --rows divergence --cols lambda --metric accept_rate
      figure gkd-divergences --metric exact_match --by divergence --where lambda=1
      figure gkd-divergences --metric exact_match --by lambda --where divergence=jsd\(0.5\)
      echo '![exact match, on-policy](figures/exact_match_by_divergence_lambda=1.svg)'
    } | write gkd-divergences
    "$gkd" table results/gkd-divergences --rows divergence --cols lambda --metric exact_match --format latex > results/gkd-divergences/table.tex
    ;;
  sources)
    {
      echo "# sources"; echo
      echo "Made by \`bin/gkd run experiments/sources.yaml --jobs 2\`."; echo
      table sources "Data sources side by side (final evaluation)" --rows variant --metric exact_match,fkl_ref,teacher_nll,accept_rate
      table sources "Exact match at the best evaluation" --rows variant --metric exact_match --at best
      figure sources --metric exact_match --by variant
      echo '![exact match by data source](figures/exact_match_by_variant.svg)'
    } | write sources
    "$gkd" table results/sources --rows variant --metric exact_match,fkl_ref,teacher_nll,accept_rate --format latex > results/sources/table.tex
    ;;
  modes)
    {
      echo "# modes"; echo
      echo "Made by \`bin/gkd run experiments/modes.yaml --jobs 2\`."; echo
      table modes "Precision, coverage and KL(data || student) (final evaluation)" --rows divergence --cols lambda --metric precision,coverage,kl_data
      figure modes --metric coverage --by divergence --where lambda=1
      figure modes --metric precision --by divergence --where lambda=1
      echo '![coverage, on-policy](figures/coverage_by_divergence_lambda=1.svg)'
      echo '![precision, on-policy](figures/precision_by_divergence_lambda=1.svg)'
    } | write modes
    "$gkd" table results/modes --rows divergence --cols lambda --metric precision,coverage,kl_data --format latex > results/modes/table.tex
    ;;
  *) echo "results.sh: unknown experiment '$name'" >&2; exit 2 ;;
  esac
done
