#!/bin/sh
# Extra Debian 12 packages for the libFuzzer harnesses (tests/fuzz/README.md): clang with its
# libFuzzer/sanitizer runtimes and LLVM's OpenMP. The normal build (tools/install-deps.sh) does not need them.
set -e
PACKAGES="clang libclang-rt-dev libomp-dev"
missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq $missing
fi
echo "install-fuzz-deps: all packages present"
