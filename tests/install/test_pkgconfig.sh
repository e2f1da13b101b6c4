#!/usr/bin/env bash
# The installed library as a user sees it (`make install-test`): DIR/prefix
# holds a `make install`; build hello.c against it with nothing but
# `pkg-config --cflags --libs gkd`, as C with $CC and as C++ with the
# matching C++ compiler, and run both.
set -euo pipefail
dir=$1
here=$(cd "$(dirname "$0")" && pwd)
export PKG_CONFIG_PATH=$dir/prefix/lib/pkgconfig
CC=${CC:-cc}
case "$CC" in *clang*) CXX=${CXX:-clang++} ;; *) CXX=${CXX:-c++} ;; esac

# Every declaration of a header sits in its extern "C" block: the first
# line that is not a comment or a preprocessor line opens it (gkd.h only
# includes the others).
for h in "$dir"/prefix/include/gkd/*.h; do
  [ "$(basename "$h")" = gkd.h ] && continue
  first=$(grep -m1 '^[A-Za-z_]' "$h" || true)
  [ "$first" = 'extern "C" {' ] ||
    { echo "install-test: $h declares '$first' outside extern \"C\"" >&2; exit 1; }
done

flags=$(pkg-config --cflags --libs gkd)
echo "install-test: pkg-config --cflags --libs gkd: $flags"
# shellcheck disable=SC2086  # the flags are words
$CC -std=c11 -Wall -Wextra -Werror -o "$dir/hello" "$here/hello.c" $flags
"$dir/hello"
# shellcheck disable=SC2086
$CXX -x c++ -Wall -Wextra -Werror -o "$dir/hello_cxx" "$here/hello.c" -x none $flags
"$dir/hello_cxx"
echo "install-test: C ($CC) and C++ ($CXX) programs built with pkg-config and ran"
