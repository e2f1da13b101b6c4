#!/usr/bin/env bash
# Make sure the dependencies are present (Debian 12).
#
#   scripts/deps.sh [--check] [EXTRA...]
#
# Checks the build dependencies and each EXTRA (gnuplot, node, clang, fuzz,
# torch, slurm). With --check, or when not root, prints what is missing and the
# exact apt-get line and fails; otherwise, as root, installs what is missing
# with apt-get. `make main`, `make test`, `make dev` and `make fuzz` install;
# every other goal checks.
set -eu
install=1
if [ "${1:-}" = --check ]; then install=0; shift; fi
need_pkgs=()
have_pc() { pkg-config --exists "$1" 2>/dev/null; }
command -v pkg-config >/dev/null 2>&1 || need_pkgs+=(pkg-config)
command -v cc >/dev/null 2>&1 || need_pkgs+=(gcc)
command -v make >/dev/null 2>&1 || need_pkgs+=(make)
have_pc openblas || [ -f /usr/include/x86_64-linux-gnu/openblas-openmp/cblas.h ] || need_pkgs+=(libopenblas-openmp-dev)
have_pc check || need_pkgs+=(check)
have_pc yaml-0.1 || need_pkgs+=(libyaml-dev)
for extra in "$@"; do
  case "$extra" in
    gnuplot) command -v gnuplot >/dev/null 2>&1 || need_pkgs+=(gnuplot-nox) ;;
    # The tokenizer suites fetch Llama 2's vocabulary with npm (Makefile).
    node) { command -v node && command -v npm; } >/dev/null 2>&1 || need_pkgs+=(nodejs npm) ;;
    clang)
      command -v clang >/dev/null 2>&1 || need_pkgs+=(clang)
      # clang's OpenMP runtime and omp.h come in their own package.
      echo '#include <omp.h>' | clang -fopenmp -x c -fsyntax-only - >/dev/null 2>&1 || need_pkgs+=(libomp-dev)
      ;;
    fuzz)
      # clang and its OpenMP, and libFuzzer's runtime (only recommended by clang).
      command -v clang >/dev/null 2>&1 || need_pkgs+=(clang)
      echo '#include <omp.h>' | clang -fopenmp -x c -fsyntax-only - >/dev/null 2>&1 || need_pkgs+=(libomp-dev)
      echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return d && n; }' |
        clang -fsanitize=fuzzer -x c -o /dev/null - >/dev/null 2>&1 || need_pkgs+=(libclang-rt-dev)
      ;;
    torch) /usr/bin/python3 -c 'import torch' >/dev/null 2>&1 || need_pkgs+=(python3-torch) ;;
    slurm) command -v slurmctld >/dev/null 2>&1 || need_pkgs+=(slurm-wlm munge) ;;
    *) echo "deps.sh: unknown extra '$extra'" >&2; exit 2 ;;
  esac
done
[ ${#need_pkgs[@]} -eq 0 ] && exit 0
line="apt-get install -y ${need_pkgs[*]}"
if [ "$install" -eq 0 ] || [ "$(id -u)" -ne 0 ]; then
  echo "gkd: missing dependencies; as root: apt-get update && $line" >&2
  [ "$install" -eq 0 ] && echo "gkd: (\`make main\` and \`make test\` install them when run as root)" >&2
  exit 1
fi
echo "gkd: installing ${need_pkgs[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
