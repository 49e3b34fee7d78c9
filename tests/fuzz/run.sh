#!/usr/bin/env bash
# Run every libFuzzer harness for SECONDS each (default 45) from its committed seed corpus.
#   tests/fuzz/run.sh BUILD_DIR [SECONDS] [TARGET...]
# New inputs go to a scratch copy of the corpus (the repository is not touched); a crash leaves
# crash-*/leak-*/oom-* files in $FUZZ_ARTIFACTS (default: a scratch folder, printed on failure) and
# makes this script exit non-zero. See tests/fuzz/README.md.
set -uo pipefail
build=${1:?usage: tests/fuzz/run.sh BUILD_DIR [SECONDS] [TARGET...]}
secs=${2:-45}
shift $(( $# >= 2 ? 2 : 1 ))
here=$(cd "$(dirname "$0")" && pwd)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(tiff ome_xml npy png safetensors roundtrip)
scratch=$(mktemp -d)
arts=${FUZZ_ARTIFACTS:-$scratch/artifacts}
mkdir -p "$arts"
trap 'rm -rf "$scratch/corpus"' EXIT
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
fail=0
for t in "${targets[@]}"; do
  bin=$build/fuzz_$t
  [ -x "$bin" ] || { echo "FAIL fuzz_$t: $bin not built (cmake -DDAMA_FUZZ=ON with CC=clang)"; fail=1; continue; }
  mkdir -p "$scratch/corpus/$t"
  cp "$here/corpus/$t/"* "$scratch/corpus/$t/" 2>/dev/null
  log=$scratch/$t.log
  TMPDIR=$scratch "$bin" -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 -timeout=20 \
    -artifact_prefix="$arts/$t-" -print_final_stats=1 "$scratch/corpus/$t" > "$log" 2>&1
  rc=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
  if [ $rc -eq 0 ]; then
    echo "ok   fuzz_$t: ${runs:-?} inputs in ${secs}s"
  else
    echo "FAIL fuzz_$t (rc $rc): artifacts in $arts"; tail -40 "$log" | sed 's/^/  /'; fail=1
  fi
done
exit $fail
