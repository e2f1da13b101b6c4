#!/bin/sh
# check_cycles.sh LIBRARY.a: no circle of files. An object that calls a
# function defined in another object depends on it; tsort(1) finds any
# loop in those dependencies. Prints the objects of a loop and exits 1.
set -eu
lib=$1
tmp=${TMPDIR:-/tmp}/check_cycles.$$
trap 'rm -f "$tmp".*' EXIT
# "object symbol" for every global symbol an object defines, and for every
# symbol it uses without defining.
nm -A --defined-only -g "$lib" 2>/dev/null | awk '{ split($1, p, ":"); print p[2], $NF }' | sort -k2 > "$tmp.def"
nm -A -u "$lib" 2>/dev/null | awk '{ split($1, p, ":"); print p[2], $NF }' | sort -k2 > "$tmp.use"
# "user definer" pairs (each object also paired with itself, so that an
# object with no dependency still appears).
join -1 2 -2 2 -o 1.1,2.1 "$tmp.use" "$tmp.def" | awk '$1 != $2' | sort -u > "$tmp.edges"
awk '{ print $1, $1 }' "$tmp.def" | sort -u >> "$tmp.edges"
if ! tsort "$tmp.edges" > /dev/null 2> "$tmp.err"; then
    echo "check_cycles: a circle of files in $lib:"
    sed -n 's/^tsort: //p' "$tmp.err" | grep -v 'input contains a loop' | sed 's/^/  /'
    exit 1
fi
