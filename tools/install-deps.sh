#!/bin/sh
# Debian 12 packages needed to build and test dama. One `apt-get install -y ...` per line; append.
set -e
apt-get install -y build-essential cmake pkg-config libluajit-5.1-dev luajit libtiff-dev libopenblas-dev libedit-dev libcjson-dev libstb-dev libpng-dev
apt-get install -y tmux  # tests/cli/test_*interrupt.sh drive the REPL in a terminal
