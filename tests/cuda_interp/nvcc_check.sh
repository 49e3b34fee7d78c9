#!/usr/bin/env bash
# Compile every kernel header of cuda/kernels/ with nvcc, warnings as errors, for sm_80 and sm_90a (nvcc_check.cu
# instantiates every launcher, so each kernel's device code is generated), and list the kernels ptxas compiled.
# Usage: tests/cuda_interp/nvcc_check.sh [nvcc]   (default: $NVCC, nvcc on PATH, or /usr/local/cuda/bin/nvcc)
# Exits 77 (skipped) when there is no nvcc.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
nvcc=${1:-${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}}
if [ ! -x "$nvcc" ]; then echo "nvcc_check: no nvcc ($nvcc): skipped"; exit 77; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$nvcc" --version | tail -1
# one front-end pass, machine code for both (ptxas reports each kernel once per architecture)
if ! "$nvcc" -std=c++17 -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90a,code=sm_90a \
    -Werror all-warnings -Xcompiler -Wall,-Wextra,-Wshadow,-Werror -Xptxas -v \
    -I"$root/cuda" -I"$root/runtime" -c "$root/tests/cuda_interp/nvcc_check.cu" -o "$tmp/check.o" 2> "$tmp/log"; then
  grep -v "^ptxas info" "$tmp/log" >&2
  echo "nvcc_check: FAILED" >&2
  exit 1
fi
for arch in sm_80 sm_90a; do
  n=$(grep -c "Compiling entry function .* for '$arch'" "$tmp/log" || true)
  echo "nvcc_check: $arch: $n kernels compiled, no warnings"
  if [ "$n" -eq 0 ]; then echo "nvcc_check: no kernel compiled for $arch" >&2; exit 1; fi
done
