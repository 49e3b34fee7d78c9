#!/bin/sh
# apt-install-missing.sh NAME PACKAGE...: install the Debian packages of the list that are not installed yet (one
# apt-get update + install for all of them), then say "NAME: all packages present". Shared by tools/install-*.sh.
set -e
name=$1; shift
missing=""
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq $missing
fi
echo "$name: all packages present"
