#!/bin/sh
# Debian 12 packages needed to build and test dama (run as root, or prefix with sudo).
# Other engineers: append packages to the PACKAGES list, one concern per line.
set -e
PACKAGES="
  build-essential cmake pkg-config
  libluajit-5.1-dev luajit
  libtiff-dev libpng-dev libstb-dev
  libopenblas-dev
  libedit-dev libcjson-dev
  libcairo2-dev fonts-dejavu-core
  tmux
"
# libcairo2-dev, fonts-dejavu-core: dama.plot draws figures (PNG/SVG/PDF) with Cairo in DejaVu Sans
# tmux: tests/cli drive the REPL in a real terminal (Ctrl-C tests)
# shellcheck disable=SC2086 (the list is split into words on purpose)
exec "$(dirname "$0")/apt-install-missing.sh" install-deps $PACKAGES
