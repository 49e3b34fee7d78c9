#!/bin/sh
# Extra Debian 12 packages for the benchmarks in bench/ that need more than the build (tools/install-deps.sh):
# valgrind (callgrind, callgrind_annotate) for bench/calls_per_step.sh, and python3 that parses its output.
# Run as root, or prefix with sudo. Installs only what is missing.
set -e
PACKAGES="valgrind python3"
missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq $missing
fi
echo "install-bench-deps: all packages present"
