#!/bin/sh
# Extra Debian 12 packages for the benchmarks in bench/ that need more than the build (tools/install-deps.sh):
# valgrind (callgrind, callgrind_annotate) for bench/calls_per_step.sh, and python3 that parses its output.
# Run as root, or prefix with sudo. Installs only what is missing.
set -e
PACKAGES="valgrind python3"
# shellcheck disable=SC2086 (the list is split into words on purpose)
exec "$(dirname "$0")/apt-install-missing.sh" install-bench-deps $PACKAGES
