#!/usr/bin/env bash
# Make sure the build dependencies are present. As root, install what is
# missing with apt-get; otherwise print the exact apt-get line and fail.
set -eu
need_pkgs=()
have_pc() { pkg-config --exists "$1" 2>/dev/null; }
command -v pkg-config >/dev/null 2>&1 || need_pkgs+=(pkg-config)
command -v cc >/dev/null 2>&1 || need_pkgs+=(gcc)
command -v make >/dev/null 2>&1 || need_pkgs+=(make)
have_pc openblas || [ -f /usr/include/x86_64-linux-gnu/openblas-openmp/cblas.h ] || need_pkgs+=(libopenblas-openmp-dev)
have_pc check || need_pkgs+=(check)
have_pc yaml-0.1 || need_pkgs+=(libyaml-dev)
command -v gnuplot >/dev/null 2>&1 || need_pkgs+=(gnuplot-nox)
for extra in "$@"; do
  case "$extra" in
    torch) /usr/bin/python3 -c 'import torch' >/dev/null 2>&1 || need_pkgs+=(python3-torch) ;;
    slurm) command -v slurmctld >/dev/null 2>&1 || need_pkgs+=(slurm-wlm munge) ;;
    clang) command -v clang >/dev/null 2>&1 || need_pkgs+=(clang) ;;
  esac
done
[ ${#need_pkgs[@]} -eq 0 ] && exit 0
line="apt-get install -y ${need_pkgs[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "gkd: missing build dependencies; run as root: apt-get update && $line" >&2
  exit 1
fi
echo "gkd: installing ${need_pkgs[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
