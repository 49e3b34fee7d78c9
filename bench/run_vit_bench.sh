#!/usr/bin/env bash
# bench/run_vit_bench.sh: dama vs PyTorch (CPU, same thread count) on the issue-4 training steps, interleaved
# (dama, torch, dama, torch, ...) in one invocation, medians over the runs, printed as ratios.
#
#   bench/run_vit_bench.sh [models] [runs] [steps]      defaults: "mae vitb" 3 2
#   DAMA=build/dama THREADS=2 PYTHON=/usr/bin/python3 bench/run_vit_bench.sh "tiny mae vitb" 5 3
#   DAMA_BASE=/path/to/old/build/dama ...   also times an older dama build (impl "base") in the same rotation
#
# Each run is a fresh process per implementation: one warm-up step, then `steps` timed steps (their median).
# Reported per implementation: wall seconds per step, samples/s, GFLOP/s (the analytic GEMM FLOPs of the
# step over the wall time), CPU seconds per step and GFLOP/s per CPU-second (comparable on a loaded machine),
# peak memory: dama's peak tensor bytes and both processes' max RSS (from /usr/bin/time when available).
# OMP_WAIT_POLICY: left as the caller set it; unset, this script uses PASSIVE for both implementations,
# because libgomp's default spin-wait is ruinous on a shared 2-core machine (see bench/VIT.md).
# PyTorch (Debian python3-torch) is only needed here; without it the dama numbers are printed alone.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
models=${1:-"mae vitb"}
runs=${2:-3}
steps=${3:-2}
threads=${THREADS:-2}
py=${PYTHON:-/usr/bin/python3}
dama=${DAMA:-}
if [ -z "$dama" ]; then
  for c in "$root"/build/dama "$root"/build-*/dama; do [ -x "$c" ] && { dama=$c; break; }; done
fi
[ -x "$dama" ] || { echo "run_vit_bench: no dama binary (set DAMA=path/to/dama)" >&2; exit 2; }
if [ -z "${OMP_WAIT_POLICY+x}" ]; then export OMP_WAIT_POLICY=PASSIVE; fi
have_torch=1
"$py" -c 'import torch' 2>/dev/null || { have_torch=0; echo "run_vit_bench: PyTorch not found ($py): dama only"; }
timer=()
[ -x /usr/bin/time ] && timer=(/usr/bin/time -f 'maxrss_kb=%M')

out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "# $(date -u +%FT%TZ) $(uname -n) $(nproc) cpus, load: $(cut -d' ' -f1-3 /proc/loadavg); threads=$threads" \
     "OMP_WAIT_POLICY=$OMP_WAIT_POLICY OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}; dama=$dama"
cd "$root" || exit 2
for m in $models; do
  for r in $(seq 1 "$runs"); do
    res=$("${timer[@]}" "$dama" bench/vit_bench.lua model="$m" threads="$threads" steps="$steps" 2>&1)
    echo "$res" | grep -E '^result' | sed "s/\$/ $(echo "$res" | grep -o 'maxrss_kb=[0-9]*' | tail -1) run=$r/" | tee -a "$out"
    if [ -n "${DAMA_BASE:-}" ]; then
      res=$("${timer[@]}" "$DAMA_BASE" bench/vit_bench.lua model="$m" threads="$threads" steps="$steps" 2>&1)
      echo "$res" | grep -E '^result' | sed "s/impl=dama/impl=base/; s/\$/ $(echo "$res" | grep -o 'maxrss_kb=[0-9]*' | tail -1) run=$r/" | tee -a "$out"
    fi
    if [ $have_torch = 1 ]; then
      res=$("${timer[@]}" "$py" bench/vit_bench_torch.py model="$m" threads="$threads" steps="$steps" 2>&1)
      echo "$res" | grep -E '^result' | sed "s/\$/ $(echo "$res" | grep -o 'maxrss_kb=[0-9]*' | tail -1) run=$r/" | tee -a "$out"
    fi
  done
done

"$py" - "$out" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    kv = dict(w.split("=", 1) for w in line.split()[1:] if "=" in w)
    rows.setdefault((kv["model"], kv["impl"]), []).append(kv)
def med(model, impl, key):
    v = [float(r[key]) for r in rows.get((model, impl), []) if key in r]
    return statistics.median(v) if v else float("nan")
print("\n%-5s %-6s %9s %9s %8s %9s %10s %9s" % ("model", "impl", "s/step", "samples/s", "GFLOP/s", "cpu s/st",
                                                "GFLOP/cpu-s", "maxRSS MB"))
for model in dict.fromkeys(m for m, _ in rows):
    for impl in ("dama", "base", "torch"):
        if (model, impl) not in rows:
            continue
        print("%-5s %-6s %9.3f %9.2f %8.1f %9.3f %10.1f %9.0f" % (
            model, impl, med(model, impl, "sec_per_step"), med(model, impl, "samples_per_s"),
            med(model, impl, "gflops"), med(model, impl, "cpu_per_step"), med(model, impl, "gflops_per_core"),
            med(model, impl, "maxrss_kb") / 1024))
    if (model, "torch") in rows and (model, "dama") in rows:
        d = rows[(model, "dama")]
        print("%-5s ratio  dama speed-up over torch: wall %.2fx, cpu %.2fx; peak RSS dama/torch %.2f;"
              " dama peak tensor memory %.0f MB (runs: %d)" % (
            model, med(model, "torch", "sec_per_step") / med(model, "dama", "sec_per_step"),
            med(model, "torch", "cpu_per_step") / med(model, "dama", "cpu_per_step"),
            med(model, "dama", "maxrss_kb") / med(model, "torch", "maxrss_kb"),
            med(model, "dama", "peak_tensor_mb"), len(d)))
    if (model, "base") in rows and (model, "dama") in rows:
        print("%-5s ratio  dama speed-up over base: wall %.2fx, cpu %.2fx; peak tensor memory %.0f -> %.0f MB" % (
            model, med(model, "base", "sec_per_step") / med(model, "dama", "sec_per_step"),
            med(model, "base", "cpu_per_step") / med(model, "dama", "cpu_per_step"),
            med(model, "base", "peak_tensor_mb"), med(model, "dama", "peak_tensor_mb")))
EOF
