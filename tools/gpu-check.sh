#!/usr/bin/env bash
# tools/gpu-check.sh [--rehearse] [--pack] [--deps DIR] [--budget SECONDS] [--build DIR] OUTDIR
#
# Everything dama's GPU machine visit needs, in one go and in bounded time (default budget 470 s, under the
# 8 minutes of issue 11): the GPU machine has the CUDA toolkit, CMake, a C compiler and Python with PyTorch, but
# none of dama's Debian packages and no network. Prepare on a networked Debian 12 machine with
# tools/fetch-gpu-deps.sh (-> .gpu-deps/, carried along), then on the GPU machine:
#
#   tools/gpu-check.sh OUT                 # OUT/summary.md (the results table), OUT/results.json, OUT/logs/...
#   tools/gpu-check.sh --pack OUT          # the same, logs packed into OUT/logs.tar.gz (few files to bring back)
#   tools/gpu-check.sh --rehearse OUT      # on a CPU machine: everything but the GPU-only parts (see below)
#   DAMA_COMMIT=<hash> tools/gpu-check.sh --pack OUT   # the commit, where the copy has no .git
#   GC_TORCH_ARGS="--batch 256" tools/gpu-check.sh OUT # extra options for bench/gpu/torch_dama_bench.py
#
# Steps, in this order; each has its own time limit (cut to what the budget has left), and a failing or timed-out
# step is recorded and the next one runs:
#   env       machine, OS, compilers, commit; nvidia-smi (card, driver, clocks) into logs/nvidia-smi*.txt
#   unpack    dpkg -x every .deb of DIR/debs (default .gpu-deps) into a private prefix (BUILD-deps/root; never /),
#             drops the 'closure' libraries whose soname the machine's ldconfig already has (not when rehearsing),
#             rewrites the .pc files to the prefix (Requires.private dropped: dama links shared), writes a
#             fontconfig file for the fetched DejaVu fonts and BUILD-deps/env.sh (PKG_CONFIG_LIBDIR = the prefix's
#             .pc files only, LD_LIBRARY_PATH, C_INCLUDE_PATH, FONTCONFIG_FILE, CUDACXX); checks every fetched
#             library loads
#   configure cmake -B BUILD (default build-gpu; build-gpu-rehearse with --rehearse) -DCMAKE_BUILD_TYPE=Release
#             with the prefix's pkgconf, CUDA on when nvcc is found (/usr/local/cuda/bin); checks that every
#             pkg-config library CMake found lies in the prefix
#   build     cmake --build with all cores (JOBS=...); then where dama's dependency headers came from, and ldd of
#             the program: libraries from the prefix, from the machine, missing
#   ctest-gpu ctest -L gpu (SKIPPED without a device)
#   torch     bench/gpu/torch_dama_bench.py: the DAMA ViT-B/16 step in PyTorch, eager FP16 AMP, eager BF16,
#             torch.compile, eager FP32; bf16 GEMM peak, MFU, peak memory (the plain machine environment, no prefix)
#   dama      bench/gpu/dama_step.lua: dama's own step on cuda, precision bf16 eager and as a CUDA graph, fp16, fp32
#             (where the kernels are missing: "not run: <op>: not implemented on cuda:0 yet")
#   loader    bench/gpu/loader_bench.lua: loader throughput with 0, 1, 2, 4, 8, 16 workers, to host and to cuda
#   ctest-all the rest of ctest (-LE gpu) with all cores, within what the budget has left
#   summary   bench/gpu/summarize.py: OUT/summary.md and OUT/results.json (ratios dama/PyTorch per mode)
#
# --rehearse (or DAMA_GPU_REHEARSE=1), for a CPU machine: the same steps; the build uses ONLY the private prefix's
# headers, .pc files and libraries (checked, and the exceptions named); nothing is dropped from the prefix; the GPU
# tests print SKIPPED; the PyTorch and dama benchmarks run a tiny config on the CPU (dama's also tries cuda, to show
# the error is recorded); the loader bench runs small. Budget 3600 s, build with the machine's cores.
set -u
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
root=$(cd "$(dirname "$0")/.." && pwd)

# ---------------------------------------------------------------------------------------------- shared helpers
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
say() { echo "[gpu-check $(date -u +%H:%M:%S)] $*"; }
load_env() { [ -r "$PREFIX/env.sh" ] && . "$PREFIX/env.sh"; }
find_python() {   # a python3 that imports torch, else any python3 (found once, then remembered in GC_PYTHON)
  local c
  [ -n "${GC_PYTHON:-}" ] && { echo "$GC_PYTHON"; return; }
  for c in ${PYTHON:-} python3 /usr/bin/python3; do
    command -v "$c" >/dev/null 2>&1 && "$c" -c 'import torch' >/dev/null 2>&1 && { echo "$c"; return; }
  done
  for c in ${PYTHON:-} python3 /usr/bin/python3; do command -v "$c" >/dev/null 2>&1 && { echo "$c"; return; }; done
}
nvidia_smi() { command -v nvidia-smi 2>/dev/null || { [ -x /usr/local/nvidia/bin/nvidia-smi ] && echo /usr/local/nvidia/bin/nvidia-smi; }; }

# ---------------------------------------------------------------------------------------------- the steps
step_env() {
  {
    echo "date_utc=$(date -u +%FT%TZ)"
    echo "mode=$( [ "$REHEARSE" = 1 ] && echo rehearse || echo device)"
    echo "host=$(uname -n)"
    echo "kernel=$(uname -sr)"
    echo "os=$( (. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-?}") || echo unknown)"
    echo "glibc=$(ldd --version 2>/dev/null | head -1 | awk '{print $NF}')"
    echo "cpus=$(nproc)"
    echo "cpu_model=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
    echo "mem_gib=$(awk '/MemTotal/ {printf "%.0f", $2 / 1048576}' /proc/meminfo)"
    echo "cc=$(cc --version 2>/dev/null | head -1)"
    echo "cmake=$(cmake --version 2>/dev/null | head -1)"
    echo "nvcc=$({ command -v nvcc >/dev/null && nvcc --version || /usr/local/cuda/bin/nvcc --version; } 2>/dev/null | grep -o 'release [^,]*, V[0-9.]*' | head -1)"
    local py; py=$(find_python)
    echo "python=${py:-none} $("${py:-false}" -c 'import sys, platform; print(platform.python_version())' 2>/dev/null)"
    echo "torch=$("${py:-false}" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda)' 2>/dev/null || echo none)"
    local commit="" src=""
    if [ -n "${DAMA_COMMIT:-}" ]; then commit=$DAMA_COMMIT; src="DAMA_COMMIT"
    elif git -C "$root" rev-parse HEAD >/dev/null 2>&1; then
      commit=$(git -C "$root" rev-parse HEAD); src="git"
      local dirty; dirty=$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null | wc -l)
      [ "$dirty" != 0 ] && src="git, $dirty files modified"
    elif [ -r "$DEPS/source.txt" ] && grep -q '^commit ' "$DEPS/source.txt"; then
      commit=$(awk '/^commit / {print $2}' "$DEPS/source.txt"); src="recorded by fetch-gpu-deps.sh: $(head -1 "$DEPS/source.txt")"
    fi
    echo "commit=${commit:-unknown}"
    echo "commit_source=${src:-none: no .git, no DAMA_COMMIT, no $DEPS/source.txt}"
    local smi; smi=$(nvidia_smi)
    if [ -n "$smi" ]; then
      local q; q=$("$smi" --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv,noheader 2>&1 | head -1)
      echo "gpu=$(echo "$q" | cut -d, -f1 | sed 's/^ *//')"
      echo "driver=$(echo "$q" | cut -d, -f2 | sed 's/^ *//')"
      echo "gpu_mem=$(echo "$q" | cut -d, -f3 | sed 's/^ *//')"
      echo "gpu_max_sm_clock=$(echo "$q" | cut -d, -f4 | sed 's/^ *//')"
      echo "gpu_power_limit=$(echo "$q" | cut -d, -f5 | sed 's/^ *//')"
      echo "cuda_driver=$("$smi" 2>/dev/null | grep -o 'CUDA Version: [0-9.]*' | awk '{print $3}')"
    else
      echo "gpu=none (no nvidia-smi)"
      echo "driver=none"
    fi
  } >"$LOGS/info.env"
  cat "$LOGS/info.env"
  local smi; smi=$(nvidia_smi)
  if [ -n "$smi" ]; then
    "$smi" >"$LOGS/nvidia-smi.txt" 2>&1
    "$smi" -q >"$LOGS/nvidia-smi-q.txt" 2>&1
    cat "$LOGS/nvidia-smi.txt"
  else
    echo "nvidia-smi: not run: not found (no NVIDIA driver on this machine)" | tee "$LOGS/nvidia-smi.txt"
  fi
  return 0
}

extract_deb() {   # extract_deb FILE.deb DEST: dpkg-deb, else ar + tar, else Python (ar format + tarfile)
  if command -v dpkg-deb >/dev/null; then dpkg-deb -x "$1" "$2"; return; fi
  if command -v ar >/dev/null && command -v tar >/dev/null; then
    local m z; m=$(ar t "$1" | grep '^data\.tar')
    case $m in *.xz) z=-J ;; *.gz) z=-z ;; *.bz2) z=-j ;; *.zst) z=--zstd ;; *) z="" ;; esac
    ar p "$1" "$m" | tar -x $z -C "$2" -f - && return
  fi
  "$(find_python)" - "$1" "$2" <<'EOF'
import io, sys, tarfile
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"!<arch>\n", "not an ar archive"
pos = 8
while pos < len(data):
    name, size = data[pos:pos + 16].decode().strip().rstrip("/"), int(data[pos + 48:pos + 58])
    body = data[pos + 60:pos + 60 + size]
    if name.startswith("data.tar"):
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:*") as t:
            kw = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}
            t.extractall(sys.argv[2], **kw)
        break
    pos += 60 + size + (size & 1)
else:
    sys.exit("no data.tar member")
EOF
}

step_unpack() {
  local debs=$DEPS/debs man=$DEPS/manifest.tsv
  if ! ls "$debs"/*.deb >/dev/null 2>&1; then
    echo "unpack: no .deb files in $debs: run tools/fetch-gpu-deps.sh on a networked Debian 12 machine and carry $DEPS"
    return 1
  fi
  rm -rf "$PREFIX"
  mkdir -p "$PREFIX/root" "$PREFIX/pkgconfig" "$PREFIX/pkgs" "$PREFIX/fontcache"
  local sys_sonames="" prune=$PRUNE
  if [ "$prune" = 1 ]; then
    if command -v ldconfig >/dev/null || [ -x /sbin/ldconfig ]; then
      sys_sonames=$({ command -v ldconfig >/dev/null && ldconfig -p || /sbin/ldconfig -p; } 2>/dev/null |
                    awk '/x86-64/ {print $1}' | sort -u)
    else
      echo "unpack: no ldconfig: nothing dropped, every fetched library is used"; prune=0
    fi
  fi
  : >"$PREFIX/dropped.txt"
  local f pkg group dir keep n=0 nd=0
  for f in "$debs"/*.deb; do
    pkg=$(basename "$f" | cut -d_ -f1)
    group=$(awk -F'\t' -v p="$pkg" '$2 == p {print $1}' "$man" 2>/dev/null)
    dir=$PREFIX/pkgs/$pkg
    mkdir -p "$dir"
    extract_deb "$f" "$dir" || { echo "unpack: cannot extract $f"; return 1; }
    keep=1
    if [ "$prune" = 1 ] && [ "$group" = closure ]; then
      # a closure package whose every soname the machine already has: the machine's (newer) copy serves
      local sonames s all_have=1
      sonames=$(find "$dir" -name 'lib*.so.*' \( -type f -o -type l \) -printf '%f\n' | grep -E '\.so\.[0-9]+$' | sort -u)
      [ -n "$sonames" ] || all_have=0
      for s in $sonames; do echo "$sys_sonames" | grep -qxF "$s" || { all_have=0; break; }; done
      if [ "$all_have" = 1 ]; then
        keep=0; nd=$((nd + 1))
        echo "$pkg $(echo $sonames)" >>"$PREFIX/dropped.txt"
      fi
    fi
    if [ "$keep" = 1 ]; then cp -a "$dir/." "$PREFIX/root/"; n=$((n + 1)); fi
  done
  # kept: the dropped packages, in case the machine's copy turns out too old (checked at the end)
  find "$PREFIX/pkgs" -mindepth 1 -maxdepth 1 -type d | while IFS= read -r dir; do
    grep -q "^$(basename "$dir") " "$PREFIX/dropped.txt" || rm -rf "$dir"
  done
  local R=$PREFIX/root
  echo "unpack: $n packages into $R; $nd closure packages left to the machine's own copies:"
  sed 's/^/  dropped: /' "$PREFIX/dropped.txt"
  # absolute symlinks (into /) would point at the machine's files: point them into the prefix
  local l t
  while IFS= read -r l; do
    t=$(readlink "$l")
    ln -sfn "$R$t" "$l"
  done < <(find "$R" -type l -lname '/*')
  # drop static archives: dama links shared, and a stray .a must not be picked instead
  find "$R" -name '*.a' -delete
  # the .pc files: every absolute path variable into the prefix; Requires.private dropped (needed only for static
  # linking, and it names -dev packages not fetched)
  local pc
  while IFS= read -r pc; do
    local dest; dest=$PREFIX/pkgconfig/$(basename "$pc")
    [ -e "$dest" ] && continue
    sed -e "s#^\\([A-Za-z_][A-Za-z0-9_]*\\)=/#\\1=$R/#" -e '/^Requires.private:/d' \
        -e "s#-I/usr/#-I$R/usr/#g" -e "s#-L/usr/#-L$R/usr/#g" "$pc" >"$dest"
  done < <(find "$R" -name '*.pc' | sort)
  # library folders (Debian 12 ships some under /lib, OpenBLAS under .../openblas-pthread)
  # (both multiarch folders always: a dropped package put back below may land in one that held nothing yet)
  local libdirs; libdirs=$({ echo "$R/usr/lib/x86_64-linux-gnu"; echo "$R/lib/x86_64-linux-gnu"
                             find "$R" -name 'lib*.so*' \( -type f -o -type l \) -printf '%h\n'; } | sort -u | tr '\n' ':')
  libdirs=${libdirs%:}
  cat >"$PREFIX/fonts.conf" <<EOF
<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "urn:fontconfig:fonts.dtd">
<fontconfig>
  <dir>$R/usr/share/fonts</dir>
  <cachedir>$PREFIX/fontcache</cachedir>
</fontconfig>
EOF
  local nvcc=""
  if command -v nvcc >/dev/null; then nvcc=$(command -v nvcc); elif [ -x /usr/local/cuda/bin/nvcc ]; then nvcc=/usr/local/cuda/bin/nvcc; fi
  cat >"$PREFIX/env.sh" <<EOF
# written by tools/gpu-check.sh: dama's dependencies from the private prefix $R only
export DAMA_DEPS_ROOT='$R'
export PKG_CONFIG='$R/usr/bin/pkgconf'
export PKG_CONFIG_LIBDIR='$PREFIX/pkgconfig'
unset PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR
export LD_LIBRARY_PATH='$libdirs'\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}
# stb is header-only and CMakeLists.txt names /usr/include/stb itself: where that folder is missing, the prefix's
# copy as a system header (C_INCLUDE_PATH is searched after the command line's -isystem folders)
export C_INCLUDE_PATH='$R/usr/include/stb'\${C_INCLUDE_PATH:+:\$C_INCLUDE_PATH}
export FONTCONFIG_FILE='$PREFIX/fonts.conf'
EOF
  if [ -n "$nvcc" ]; then
    cat >>"$PREFIX/env.sh" <<EOF
export CUDACXX=\${CUDACXX:-$nvcc}
export PATH='$(dirname "$nvcc")':\$PATH
# the toolkit's libraries (cuBLASLt), after the prefix's and the machine's own settings
export LD_LIBRARY_PATH=\$LD_LIBRARY_PATH:'$(cd "$(dirname "$nvcc")/.." && pwd)/lib64'
EOF
  fi
  echo "unpack: env: $PREFIX/env.sh"
  cat "$PREFIX/env.sh"
  load_env
  echo "unpack: pkg-config modules in the prefix (nothing else is visible):"
  "$PKG_CONFIG" --list-all | sort | sed 's/^/  /'
  local m bad=0
  for m in luajit libedit libtiff-4 openblas libcjson cairo; do
    local flags
    if flags=$("$PKG_CONFIG" --cflags --libs "$m" 2>&1); then echo "  $m: $flags"; else echo "  $m: MISSING: $flags"; bad=1; fi
  done
  # every fetched shared library (and pkgconf) must load with what is here: no "not found", no "version `X' not
  # found". A dropped package whose machine copy is too old is put back (once), then the check is repeated.
  local round so miss msgs lib back
  for round in 1 2; do
    miss=0; back=""
    while IFS= read -r so; do
      msgs=$(ldd "$so" 2>&1 | grep 'not found')
      [ -n "$msgs" ] || continue
      miss=1
      echo "unpack: $so: $(echo "$msgs" | tr -s ' \t' ' ' | tr '\n' ';')"
      for lib in $(echo "$msgs" | sed -n 's#^[[:space:]]*\([^ :]*\.so[^ :]*\): version.*#\1#p' | xargs -r -n1 basename); do
        back="$back $(awk -v s="$lib" '{ for (i = 2; i <= NF; i++) if ($i == s) print $1 }' "$PREFIX/dropped.txt")"
      done
    done < <(find "$R" -name 'lib*.so.*' -type f; echo "$R/usr/bin/pkgconf")
    back=$(echo "$back" | tr ' ' '\n' | sort -u | grep -v '^$' || true)
    [ "$miss" = 1 ] && [ -n "$back" ] && [ "$round" = 1 ] || break
    for pkg in $back; do
      echo "unpack: the machine's copy of $pkg is too old: the fetched one is used"
      cp -a "$PREFIX/pkgs/$pkg/." "$R/"
      sed -i "/^$pkg /d" "$PREFIX/dropped.txt"
    done
  done
  rm -rf "$PREFIX/pkgs"
  [ "$miss" = 0 ] && echo "unpack: every fetched shared library resolves all its dependencies (and their versions)"
  return $((bad | miss))
}

step_configure() {
  load_env || { echo "configure: no $PREFIX/env.sh (unpack failed)"; return 1; }
  # Ninja where there is one (on PATH, or beside python3 / cmake as pip installs it), else make
  local gen=() nj="" c
  for c in "$(command -v ninja 2>/dev/null)" "$(dirname "$(command -v python3 2>/dev/null || echo /x/y)")/ninja" \
           "$(dirname "$(command -v cmake)")/ninja"; do
    [ -n "$c" ] && [ -x "$c" ] && { nj=$c; break; }
  done
  if [ -n "${GENERATOR:-}" ]; then gen=(-G "$GENERATOR")
  elif [ -n "$nj" ]; then gen=(-G Ninja -DCMAKE_MAKE_PROGRAM="$nj")
  elif ! command -v make >/dev/null; then echo "configure: neither ninja nor make found"; return 1
  fi
  local cuda=()
  if [ -n "${CUDACXX:-}" ] && [ -x "$CUDACXX" ]; then cuda=(-DCMAKE_CUDA_COMPILER="$CUDACXX"); fi
  # a cache made with another prefix or generator is not reused
  if [ -f "$BUILD/CMakeCache.txt" ] && ! grep -q "^PKG_CONFIG_EXECUTABLE.*=$PKG_CONFIG\$" "$BUILD/CMakeCache.txt"; then
    echo "configure: $BUILD was configured with another pkg-config: starting it afresh"
    rm -rf "$BUILD"
  fi
  cmake -S "$root" -B "$BUILD" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DPKG_CONFIG_EXECUTABLE="$PKG_CONFIG" \
        "${cuda[@]}" || return 1
  echo
  echo "configure: where CMake's pkg-config libraries and include folders are:"
  local bad=0 n=0 line p
  # pkgcfg_lib_<MODULE>_<lib>: the library file each -l of a module resolved to; <MODULE>_INCLUDE_DIRS: its -I
  while IFS= read -r line; do
    echo "  $line"
    n=$((n + 1))
    for p in $(echo "${line#*=}" | tr ';' ' '); do
      case $p in "$PREFIX"/*) ;; *) echo "    OUTSIDE THE PREFIX: $p"; bad=1 ;; esac
    done
  done < <(grep -E '^(pkgcfg_lib_[A-Z]+_[^:]*:FILEPATH|(LUAJIT|LIBEDIT|TIFF|OPENBLAS|CJSON|CAIRO)_INCLUDE_DIRS:INTERNAL)=' "$BUILD/CMakeCache.txt")
  [ "$n" -ge 12 ] || { echo "  only $n library and include entries found in CMakeCache.txt (expected 12)"; bad=1; }
  grep -E '^(DAMA_CUDA|CMAKE_CUDA_COMPILER|CMAKE_CUDA_ARCHITECTURES|CMAKE_GENERATOR):' "$BUILD/CMakeCache.txt"
  [ "$bad" = 0 ] && echo "configure: every pkg-config library and include folder is in the prefix"
  return $bad
}

step_build() {
  load_env
  cmake --build "$BUILD" -j "$JOBS" || return 1
  echo
  echo "build: where dama's dependency headers came from (the compiler's dependency files):"
  local deps
  if [ -f "$BUILD/build.ninja" ]; then
    local nj; nj=$(awk -F= '/^CMAKE_MAKE_PROGRAM:/ {print $2}' "$BUILD/CMakeCache.txt")
    deps=$(cd "$BUILD" && "${nj:-ninja}" -t deps 2>/dev/null)
  else deps=$(find "$BUILD" -name '*.d' -exec cat {} + 2>/dev/null); fi
  local h bad=0 where
  for h in luajit.h lua.h tiffio.h cblas.h cJSON.h editline/readline.h cairo.h stb_image.h stb_image_write.h; do
    where=$(echo "$deps" | tr ' \\' '\n\n' | grep -E "/$h\$" | sort -u | tr '\n' ' ')
    echo "  $h: ${where:-(not used)}"
    for p in $where; do
      case $p in "$PREFIX"/*) ;; /usr/include/stb/*) echo "    (the machine's own: CMakeLists.txt names /usr/include/stb itself, ahead of the prefix's C_INCLUDE_PATH)" ;;
        *) echo "    OUTSIDE THE PREFIX"; bad=1 ;; esac
    done
  done
  echo
  echo "build: the program's libraries (ldd $BUILD/dama):"
  ldd "$BUILD/dama" | awk -v P="$PREFIX" '$3 ~ "^" P {print "  prefix: " $1; next} $2 == "=>" && $3 == "not" {print "  MISSING: " $1; next}
                                         $2 == "=>" {print "  machine: " $1 " " $3}'
  ldd "$BUILD/dama" | grep -q 'not found' && bad=1
  "$BUILD/dama" --version
  return $bad
}

step_ctest_gpu() {
  load_env
  [ -x "$BUILD/dama" ] || { echo "ctest-gpu: not run: no build"; return 1; }
  ctest --test-dir "$BUILD" --output-on-failure --no-tests=error -L gpu --timeout 120 --output-junit "$LOGS/ctest-gpu.xml"
}

step_torch() {
  local py; py=$(find_python)
  [ -n "$py" ] || { echo "torch: not run: no python3"; return 1; }
  "$py" -c 'import torch' 2>/dev/null || { echo "torch: not run: $py has no torch"; return 1; }
  local cap=$((STEP_T - 10))
  if [ "$REHEARSE" = 1 ]; then
    "$py" "$root/bench/gpu/torch_dama_bench.py" --config tiny --steps 5 --warmup 1 --time-cap "$cap" \
          --json "$LOGS/torch.json"
  else
    # GC_TORCH_ARGS: extra options, split into words on purpose
    # shellcheck disable=SC2086
    "$py" "$root/bench/gpu/torch_dama_bench.py" --config vitb --steps 20 --warmup 3 --time-cap "$cap" \
          --json "$LOGS/torch.json" ${GC_TORCH_ARGS:-}
  fi
}

step_dama() {
  load_env
  [ -x "$BUILD/dama" ] || { echo "dama: not run: no build"; return 1; }
  # the variants, best first: each its own process, json and share of the time left
  local v p g name t0 left cap rc=0
  t0=$(date +%s)
  for v in bf16:0 bf16:1 fp16:0 fp32:0; do
    p=${v%:*}; g=${v#*:}
    name=dama-$p$([ "$g" = 1 ] && echo -graph)
    left=$(( STEP_T - ($(date +%s) - t0) - 5 ))
    if [ "$left" -lt 15 ]; then
      echo "{\"impl\": \"dama\", \"status\": \"not run\", \"precision\": \"$p\", \"graph\": $([ "$g" = 1 ] && echo true || echo false), \"device\": \"cuda\", \"reason\": \"time: the step's limit was spent\"}" >"$LOGS/$name.json"
      continue
    fi
    cap=$left; [ "$cap" -gt 90 ] && cap=90
    echo "== $name (up to $cap s)"
    timeout -k 5 "$cap" "$BUILD/dama" "$root/bench/gpu/dama_step.lua" device=cuda config=vitb steps=20 warmup=3 \
        precision="$p" graph="$g" time_cap=$((cap - 10)) json="$LOGS/$name.json" || rc=1
  done
  if [ "$REHEARSE" = 1 ]; then   # the script's timing path, on the CPU
    echo "== dama-cpu (tiny config, fp32)"
    OMP_NUM_THREADS=1 "$BUILD/dama" "$root/bench/gpu/dama_step.lua" device=cpu config=tiny steps=5 warmup=1 \
        threads=1 time_cap=60 json="$LOGS/dama-cpu.json" || rc=1
  fi
  return $rc
}

step_loader() {
  load_env
  [ -x "$BUILD/dama" ] || { echo "loader: not run: no build"; return 1; }
  if [ "$REHEARSE" = 1 ]; then
    "$BUILD/dama" "$root/bench/gpu/loader_bench.lua" n=256 batch=64 seconds=0.5 json="$LOGS/loader.json"
  else
    "$BUILD/dama" "$root/bench/gpu/loader_bench.lua" n=2048 batch=512 seconds=2 json="$LOGS/loader.json"
  fi
}

step_ctest_all() {
  load_env
  [ -x "$BUILD/dama" ] || { echo "ctest-all: not run: no build"; return 1; }
  # stop starting tests so that the running ones end inside this step's limit (ctest --stop-time is a clock time)
  local stop=()
  local end; end=$(date -d "@$(( $(date +%s) + STEP_T - 15 ))" +%H:%M:%S)
  [[ "$end" > "$(date +%H:%M:%S)" ]] && stop=(--stop-time "$end")
  ctest --test-dir "$BUILD" -N -LE gpu | awk '/Total Tests:/ {print $3}' >"$LOGS/ctest-all.count"
  echo "ctest-all: $(cat "$LOGS/ctest-all.count") tests; no test starts after ${end}${stop[*]:+ (--stop-time)}"
  ctest --test-dir "$BUILD" --output-on-failure --no-tests=error -LE gpu -j "$JOBS" --timeout 300 "${stop[@]}" --output-junit "$LOGS/ctest-all.xml"
}

step_summary() {
  local py; py=$(find_python)
  "$py" "$root/bench/gpu/summarize.py" "$OUTDIR"
}

# A rehearsal's proof that the build reads nothing of this machine's own copies of dama's -dev packages: inside a
# private mount namespace (this process tree only; gone when it ends) every regular file those packages installed
# here (headers, .pc, static and cmake files) is covered by /dev/null, and /usr/include/stb (which CMakeLists.txt
# names itself) by an empty folder. Their runtime libraries stay (this machine's PyTorch loads some); ldd in the
# build step shows the program loads the prefix's.
hide_system() {
  local empty pkg f n=0
  empty=$(mktemp -d)
  : >"$LOGS/hidden.txt"
  if [ -d /usr/include/stb ] && mount --bind "$empty" /usr/include/stb; then
    echo "/usr/include/stb/ (an empty folder)" >>"$LOGS/hidden.txt"; n=$((n + 1))
  fi
  for pkg in $(awk -F'\t' '$1 == "dev" {print $2}' "$DEPS/manifest.tsv" 2>/dev/null); do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || continue
    while IFS= read -r f; do
      case $f in /usr/share/*) continue ;; esac
      [ -f "$f" ] && [ ! -L "$f" ] || continue
      mount --bind /dev/null "$f" 2>/dev/null && { echo "$f" >>"$LOGS/hidden.txt"; n=$((n + 1)); }
    done < <(dpkg -L "$pkg" 2>/dev/null)
  done
  say "rehearsal: this machine's own dama -dev files hidden in a private mount namespace: $n (logs/hidden.txt)"
}

# ---------------------------------------------------------------------------------------------- re-entry: one step
if [ "${1:-}" = __step ]; then
  "step_$2"
  exit $?
fi

# ---------------------------------------------------------------------------------------------- main
usage() { sed -n '2,/^set -u/p' "$self" | sed '$d; s/^# \{0,1\}//'; }
ARGS=("$@")
REHEARSE=${DAMA_GPU_REHEARSE:-0}
PACK=0
DEPS=$root/.gpu-deps
BUDGET=""
BUILD=""
OUTDIR=""
while [ $# -gt 0 ]; do
  case $1 in
    --rehearse) REHEARSE=1 ;;
    --pack) PACK=1 ;;
    --deps) DEPS=$2; shift ;;
    --budget) BUDGET=$2; shift ;;
    --build) BUILD=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "gpu-check: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) [ -z "$OUTDIR" ] || { echo "gpu-check: one OUTDIR only" >&2; exit 2; }; OUTDIR=$1 ;;
  esac
  shift
done
[ -n "$OUTDIR" ] || { usage >&2; exit 2; }
case $REHEARSE in 1|yes|true) REHEARSE=1 ;; *) REHEARSE=0 ;; esac
mkdir -p "$OUTDIR" || exit 2
OUTDIR=$(cd "$OUTDIR" && pwd)
DEPS=$(cd "$DEPS" 2>/dev/null && pwd || echo "$DEPS")
LOGS=$OUTDIR/logs
rm -rf "$LOGS" "$OUTDIR/logs.tar.gz" "$OUTDIR/summary.md" "$OUTDIR/results.json"
mkdir -p "$LOGS"
if [ "$REHEARSE" = 1 ]; then
  BUDGET=${BUDGET:-3600}; BUILD=${BUILD:-$root/build-gpu-rehearse}; PRUNE=0
else
  BUDGET=${BUDGET:-470}; BUILD=${BUILD:-$root/build-gpu}; PRUNE=${DAMA_GPU_DEPS_PRUNE:-1}
fi
case $BUILD in /*) ;; *) BUILD=$root/$BUILD ;; esac
PREFIX=$BUILD-deps
JOBS=${JOBS:-$(nproc)}
GC_PYTHON=$(find_python)
export REHEARSE PACK DEPS BUILD PREFIX JOBS OUTDIR LOGS PRUNE GC_PYTHON
# a rehearsal run as root re-runs itself in a private mount namespace that hides this machine's dama -dev files
if [ "$REHEARSE" = 1 ] && [ "${DAMA_GPU_HIDE_SYSTEM:-1}" = 1 ] && [ -z "${GPU_CHECK_IN_NS:-}" ]; then
  if [ "$(id -u)" = 0 ] && unshare -m --propagation private true 2>/dev/null; then
    GPU_CHECK_IN_NS=1 exec unshare -m --propagation private "$self" "${ARGS[@]}"
  fi
  say "rehearsal: no private mount namespace (needs root and unshare): this machine's dama -dev files stay visible"
fi
[ -n "${GPU_CHECK_IN_NS:-}" ] && hide_system
T0=$(now)
STEPS=$LOGS/steps.tsv
printf 'step\tstatus\trc\tseconds\tlimit\tlog\n' >"$STEPS"

left() { awk -v t0="$T0" -v b="$BUDGET" -v n="$(now)" 'BEGIN { printf "%d", t0 + b - n }'; }

# The plan: NAME CAP MIN per step. A step gets min(CAP, budget left - the MINs of the steps after it) seconds, but
# at least its own MIN while the budget lasts (taken from the later steps then); with under 10 s it is not run.
if [ "$REHEARSE" = 1 ]; then
  PLAN="env 30 10  unpack 120 20  configure 300 30  build 1800 300  ctest-gpu 300 30  torch 300 60  dama 300 30
        loader 300 30  ctest-all 1800 60  summary 60 10"
else
  # sized for the 16-core GPU machine and the 470 s default: the GPU-only measurements (tests, benchmarks) keep their
  # time even if the build is slow; the rest of ctest gets what is left
  PLAN="env 30 10  unpack 60 20  configure 90 30  build 240 150  ctest-gpu 90 30  torch 240 120  dama 150 20
        loader 90 30  ctest-all 240 0  summary 30 10"
fi
read -r -a plan <<<"$(echo $PLAN)"
idx=0
run() {   # run I: the I-th step of the plan
  local i=$1 name=${plan[$((3 * $1))]} cap=${plan[$((3 * $1 + 1))]} min=${plan[$((3 * $1 + 2))]} t j reserve=0
  for ((j = 3 * i + 5; j < ${#plan[@]}; j += 3)); do reserve=$((reserve + plan[j])); done
  idx=$((idx + 1))
  local log; log=$LOGS/$(printf '%02d' "$idx")-$name.log
  local lft; lft=$(left)
  t=$((lft - reserve))
  [ "$t" -gt "$cap" ] && t=$cap
  if [ "$t" -lt "$min" ]; then t=$min; [ "$t" -gt "$lft" ] && t=$lft; fi
  if [ "$t" -lt 10 ]; then
    printf '%s\tnot run\t-\t0\t%s\t%s\n' "$name" "$t" "$(basename "$log")" >>"$STEPS"
    echo "not run: the time budget ($BUDGET s) is spent" >"$log"
    say "$name: not run (budget spent)"
    return
  fi
  say "$name: up to ${t} s"
  local s; s=$(now)
  STEP_T=$t timeout -k 10 "$t" "$self" __step "${name//-/_}" >"$log" 2>&1
  local rc=$? status
  case $rc in 0) status=ok ;; 124|137) status=timeout ;; *) status=failed ;; esac
  local secs; secs=$(elapsed "$s")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" "$secs" "$t" "$(basename "$log")" >>"$STEPS"
  say "$name: $status (rc $rc, $secs s)"
  [ "$status" = ok ] || tail -n 8 "$log" | sed 's/^/    | /'
}

say "dama gpu-check: $( [ "$REHEARSE" = 1 ] && echo "REHEARSAL (no GPU parts)" || echo "GPU run"), budget ${BUDGET} s," \
    "$JOBS jobs; deps $DEPS; build $BUILD; out $OUTDIR"
for ((k = 0; k < ${#plan[@]} / 3; k++)); do run "$k"; done
say "done in $(elapsed "$T0") s"
if [ "$PACK" = 1 ]; then
  tar -czf "$OUTDIR/logs.tar.gz" -C "$OUTDIR" logs && rm -rf "$LOGS"
  say "logs packed: $OUTDIR/logs.tar.gz"
fi
[ -f "$OUTDIR/summary.md" ] && cat "$OUTDIR/summary.md"
exit 0
