#!/bin/sh
# Extra Debian 12 packages for the libFuzzer harnesses (tests/fuzz/README.md): clang with its
# libFuzzer/sanitizer runtimes and LLVM's OpenMP. The normal build (tools/install-deps.sh) does not need them.
set -e
PACKAGES="clang libclang-rt-dev libomp-dev"
# shellcheck disable=SC2086 (the list is split into words on purpose)
exec "$(dirname "$0")/apt-install-missing.sh" install-fuzz-deps $PACKAGES
