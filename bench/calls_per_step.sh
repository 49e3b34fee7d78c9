#!/usr/bin/env bash
# bench/calls_per_step.sh: how many calls of the C runtime's public dama_* functions one DAMA pretraining
# step makes, split into compute kernels and bookkeeping, to compare before/after a refactor. Not a test.
#
#   bench/calls_per_step.sh                    the working tree's build/dama (and its lua/, recipes/)
#   bench/calls_per_step.sh --rev HEAD         a clean build of a commit (git archive into a temporary
#                                              folder, cmake Release): immune to uncommitted edits
#   bench/calls_per_step.sh --bin path/to/dama --steps 2,6 --keep /tmp/cg -- workers=0
#
# Method. valgrind --tool=callgrind runs
#     dama recipes/pretrain_set3.lua preset=demo max_steps=N out=<tmp> overwrite=true [extra args]
# for N = A and N = B (default 2 and 6; both runs at once when there are >= 2 CPUs, since valgrind runs a
# program's threads one at a time). Callgrind counts every call edge caller -> callee; this script reads
# the `calls=` lines of both callgrind.out files, sums them per callee and takes (count(B) - count(A)) /
# (B - A): start-up, model construction, the final checkpoint and the final figures are the same in both
# runs and cancel, what is left is one step (data loading, forward, backward, AdamW, the metrics row).
# Each call is also split by its caller: "from Lua" = the caller is LuaJIT (the interpreter's FFI call,
# a GC finalizer, or JIT-compiled trace code, which callgrind sees as an unknown object), i.e. one FFI
# crossing; "inside C" = the caller is in the dama executable (one dama_* function calling another, the
# loader's worker threads, OpenMP bodies). The public functions are the ones declared in the binary's
# embedded API text (runtime/api/*.h), so internal helpers that happen to start with dama_ are ignored.
# Calls to a public function that GCC inlined into its caller are invisible to callgrind (from C only;
# an FFI call always reaches the real symbol).
#
# Options: --rev REV | --bin PATH (default: $DAMA or <repo>/build/dama), --steps A,B, --keep DIR (keep the
# callgrind files and logs there), --recipe FILE (default recipes/pretrain_set3.lua of the measured tree),
# -- ARGS (extra key=value arguments for the recipe, in both runs). Environment: OMP_WAIT_POLICY (default
# PASSIVE, which the binary would otherwise set by re-exec'ing itself through /proc/self/exe; under
# valgrind that is valgrind's own launcher, which refuses to run), VALGRIND_OPTS_EXTRA.
# Needs valgrind and python3: tools/install-bench-deps.sh. Expect a few minutes per run (callgrind is
# ~50-400x slower than native here; most of it is the fixed start-up and the PNGs written at the end).
#
# The report (markdown, on stdout) has: the machine, the commit, the command, one row per public function
# with a non-zero per-step count (sorted by calls per step), and the totals per class. The classes are
# defined by CLASS_RULES in the Python part below: the first rule whose pattern matches the whole name wins.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

rev="" bin="${DAMA:-}" steps="2,6" keep="" recipe="" extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rev) rev=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    --recipe) recipe=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "calls_per_step: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
a=${steps%,*} b=${steps#*,}
case "$a$b" in *[!0-9]*|"") echo "calls_per_step: --steps wants A,B (two integers, A < B)" >&2; exit 2 ;; esac
[ "$a" -ge 1 ] && [ "$b" -gt "$a" ] || { echo "calls_per_step: --steps wants 1 <= A < B" >&2; exit 2; }
for t in valgrind python3; do
  command -v "$t" >/dev/null || { echo "calls_per_step: $t not found (run tools/install-bench-deps.sh)" >&2; exit 2; }
done

work=$(mktemp -d /tmp/calls_per_step.XXXXXX)
trap 'rm -rf "$work"' EXIT
if [ -n "$keep" ]; then mkdir -p "$keep"; keep=$(cd "$keep" && pwd); fi
out=${keep:-$work}

if [ -n "$rev" ]; then
  commit=$(git -C "$root" rev-parse --short "$rev^{commit}")
  src=$work/src
  mkdir -p "$src"
  git -C "$root" archive "$commit" | tar -x -C "$src"
  echo "calls_per_step: building $commit in $src ..." >&2
  cmake -S "$src" -B "$src/build" -DCMAKE_BUILD_TYPE=Release >"$work/cmake.log" 2>&1 &&
    cmake --build "$src/build" -j"$(nproc)" --target dama >>"$work/cmake.log" 2>&1 ||
    { tail -30 "$work/cmake.log" >&2; echo "calls_per_step: build of $commit failed" >&2; exit 1; }
  bin=$src/build/dama
  tree="commit $commit (clean build of git archive)"
else
  bin=${bin:-$root/build/dama}
  src=$root
  commit=$(git -C "$root" rev-parse --short HEAD)
  dirty=$(git -C "$root" status --porcelain -- runtime lua recipes CMakeLists.txt 2>/dev/null | wc -l)
  tree="commit $commit, working tree"
  [ "$dirty" -gt 0 ] && tree="$tree (+ $dirty uncommitted changes under runtime/ lua/ recipes/)"
fi
[ -x "$bin" ] || { echo "calls_per_step: no dama binary at $bin (build it, or --rev HEAD)" >&2; exit 2; }
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
recipe=${recipe:-$src/recipes/pretrain_set3.lua}
[ -f "$recipe" ] || { echo "calls_per_step: no recipe $recipe" >&2; exit 2; }

export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
# the binary's embedded API text = the public functions (its ffi.cdef); strip comments later in Python
"$bin" -e "local ffi = require 'ffi'; pcall(ffi.cdef, 'extern const char dama_api_text[];');
           io.write(ffi.string(ffi.C.dama_api_text))" >"$out/api.h" 2>"$out/api.err" ||
  cat "$src"/runtime/api/*.h >"$out/api.h"

vg=(valgrind --tool=callgrind --smc-check=all-non-file --dump-instr=no ${VALGRIND_OPTS_EXTRA:-})
run_one() {  # $1 = steps
  local n=$1
  rm -rf "$out/run$n"
  "${vg[@]}" --callgrind-out-file="$out/callgrind.out.$n" \
    "$bin" "$recipe" preset=demo max_steps="$n" out="$out/run$n" overwrite=true "${extra[@]}" \
    >"$out/log.$n" 2>&1 || { echo "calls_per_step: the run with max_steps=$n failed:" >&2; tail -20 "$out/log.$n" >&2; return 1; }
}
cmdline="valgrind --tool=callgrind --smc-check=all-non-file --dump-instr=no ${VALGRIND_OPTS_EXTRA:-}"
cmdline="$cmdline $(basename "$(dirname "$(dirname "$bin")")")/build/dama recipes/$(basename "$recipe")"
cmdline="$cmdline preset=demo max_steps=N out=<tmp> overwrite=true ${extra[*]:-} (N = $a, $b; OMP_WAIT_POLICY=$OMP_WAIT_POLICY)"
t0=$(date +%s)
echo "calls_per_step: callgrind runs with max_steps=$a and $b (minutes) ..." >&2
if [ "$(nproc)" -ge 2 ]; then
  run_one "$a" & pa=$!
  run_one "$b" & pb=$!
  wait "$pa" && wait "$pb"
else
  run_one "$a" && run_one "$b"
fi
echo "calls_per_step: done in $(( $(date +%s) - t0 )) s" >&2

python3 - "$out/callgrind.out.$a" "$out/callgrind.out.$b" "$a" "$b" "$bin" "$out/api.h" \
  "$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)" "$tree" "$cmdline" <<'PY'
import re, sys
from collections import defaultdict

f_a, f_b, n_a, n_b, exe, api_file, machine, tree, cmdline = sys.argv[1:]
n_a, n_b = int(n_a), int(n_b)

# ---- classification: (class, group, pattern); the first pattern that matches the whole name wins ----
# compute = a kernel that reads or writes tensor data in proportion to its size;
# bookkeeping = allocation, fills, views, copies, pointers, element reads, refcounts, statistics, names;
# other = the input pipeline (loader, augmentation, synthetic cells), I/O, errors: in neither total.
CLASS_RULES = [
    ('compute', 'gemm/matmul',      r'dama_(sgemm\w*|matmul|linear_(forward|backward))'),
    ('compute', 'attention',        r'dama_attention_\w+'),
    ('compute', 'layernorm',        r'dama_layernorm_\w+'),
    ('compute', 'activations',      r'dama_(gelu|relu|softmax)_\w+'),
    ('compute', 'losses',           r'dama_\w*loss\w*|dama_(sq_error|cross_entropy|soft_cross_entropy)_\w+'),
    ('compute', 'optimizer',        r'dama_(adamw_step|sgd_step|ema_update|l2_norm|scale_inplace)'),
    ('compute', 'mask ops',         r'dama_mask_(random|adaptive|ids|check|gather_\w+|unshuffle_\w+)|dama_masked_fill_'),
    ('compute', 'patches',          r'dama_(patchify|unpatchify|patch_embed_\w+|pos_embed_\w+)'),
    ('compute', 'other nn kernels', r'dama_\w+_(forward|backward)'),
    ('compute', 'reductions',       r'dama_(reduce|max_dim|min_dim|count_nonfinite|sort|argsort|topk)'),
    ('compute', 'element-wise',     r'dama_(binary|binary_|binary_scalar|binary_scalar_|unary|unary_|clamp|clamp_|where)'),
    ('compute', 'indexing',         r'dama_(gather|scatter_|index_select)'),
    ('compute', 'random fills',     r'dama_(uniform_|normal_|randint_|randperm)'),
    ('bookkeeping', 'alloc/fill',   r'dama_(empty|empty_op|zeros|full|fill_|from_buffer|from_blob|arange|linspace)'),
    ('bookkeeping', 'views',        r'dama_(view|reshape|transpose|permute|narrow|slice|select|squeeze|unsqueeze|expand)'),
    ('bookkeeping', 'copies',       r'dama_(contiguous|clone|copy_|to_dtype|cat|stack)'),
    ('bookkeeping', 'host reads',   r'dama_(data_ptr|get|set)'),
    ('bookkeeping', 'lifetime',     r'dama_tensor_(release|retain)'),
    ('bookkeeping', 'memory stats', r'dama_memory_\w+'),
    ('bookkeeping', 'queries/misc', r'dama_(numel|is_contiguous|shape_str|broadcast_shapes|dtype_\w+|binop_name|unop_name|'
                                    r'default_rng|manual_seed|philox4x32|set_num_threads|get_num_threads|'
                                    r'mask_visible_count|mask_adaptive_counts)'),
    ('other', 'data pipeline',      r'dama_(loader|aug|synth|dataset|cells?|augment)\w*'),
    ('other', 'io',                 r'dama_(read|write|load|save|safetensors|npy|tiff|png|image)\w*'),
    ('other', 'errors/interrupts',  r'dama_(last_error|status_name|error|clear_error|interrupt_\w+)'),
    ('other', 'unclassified',       r'dama_\w+'),
]
HOST_READS = ('dama_get', 'dama_data_ptr')   # device->host reads once tensors live on a GPU

def classify(name):
    for cls, group, pat in CLASS_RULES:
        if re.fullmatch(pat, name):
            return cls, group
    return 'other', 'unclassified'

text = re.sub(r'/\*.*?\*/', ' ', open(api_file, errors='replace').read(), flags=re.S)
public = set(re.findall(r'\b(dama_[A-Za-z0-9_]+)\s*\(', text))

def parse(path):
    """{callee: [from_lua, inside_c]} summed over the calls= lines of a callgrind.out file."""
    names = {'ob': {}, 'fn': {}}
    def name(kind, rest):
        m = re.match(r'\((\d+)\)(?:\s+(.*))?$', rest)
        if not m:
            return rest.strip()
        if m.group(2) is not None:
            names[kind][m.group(1)] = m.group(2).strip()
        return names[kind].get(m.group(1), '?')
    counts = defaultdict(lambda: [0, 0])
    ob = cob = cfn = None
    with open(path, errors='replace') as f:
        for line in f:
            if line.startswith('ob='):
                ob = name('ob', line[3:].rstrip('\n')); cob = None
            elif line.startswith('cob='):
                cob = name('ob', line[4:].rstrip('\n'))
            elif line.startswith('fn='):
                name('fn', line[3:].rstrip('\n')); cob = None
            elif line.startswith('cfn='):
                cfn = name('fn', line[4:].rstrip('\n'))
            elif line.startswith('calls='):
                callee = re.sub(r"'\d+$", '', cfn or '')          # "f'2": a recursion level of f
                callee_ob = cob if cob is not None else ob
                if callee in public and callee_ob == exe:
                    n = int(line[6:].split()[0])
                    counts[callee][0 if ob != exe else 1] += n
                cob = cfn = None
    return counts

ca, cb = parse(f_a), parse(f_b)
d = n_b - n_a
rows = []
for fn in sorted(set(ca) | set(cb)):
    va, vb = ca.get(fn, [0, 0]), cb.get(fn, [0, 0])
    lua, c = (vb[0] - va[0]) / d, (vb[1] - va[1]) / d
    if lua == 0 and c == 0:
        continue
    cls, group = classify(fn)
    rows.append((lua + c, lua, c, fn, cls, group, sum(va), sum(vb)))
rows.sort(key=lambda r: (-r[0], r[3]))

def num(x):
    return f'{x:,.0f}' if abs(x - round(x)) < 1e-9 else f'{x:,.2f}'

print(f'- machine: {machine}')
print(f'- code: {tree}')
print(f'- command: `{cmdline}`')
print(f'- per step = (calls in the {n_b}-step run - calls in the {n_a}-step run) / {d}\n')
print(f'| function | class | group | per step | from Lua (FFI) | inside C | run {n_a} | run {n_b} |')
print('|---|---|---|---:|---:|---:|---:|---:|')
for tot, lua, c, fn, cls, group, ta, tb in rows:
    print(f'| `{fn}` | {cls} | {group} | {num(tot)} | {num(lua)} | {num(c)} | {ta:,} | {tb:,} |')

def total(sel):
    t = [0.0, 0.0, 0.0]
    for tot, lua, c, fn, cls, group, *_ in rows:
        if sel(fn, cls, group):
            t[0] += tot; t[1] += lua; t[2] += c
    return t
print('\n| per step | all calls | from Lua (FFI) | inside C |')
print('|---|---:|---:|---:|')
for label, sel in [('**compute kernels**', lambda f, c, g: c == 'compute'),
                   ('**bookkeeping**', lambda f, c, g: c == 'bookkeeping'),
                   ('other (data pipeline, io, errors)', lambda f, c, g: c == 'other'),
                   ('all public dama_* calls', lambda f, c, g: True)]:
    t = total(sel)
    print(f'| {label} | {num(t[0])} | {num(t[1])} | {num(t[2])} |')
for fn in HOST_READS:
    t = total(lambda f, c, g, fn=fn: f == fn)
    print(f'| host reads: `{fn}` | {num(t[0])} | {num(t[1])} | {num(t[2])} |')
t = total(lambda f, c, g: f in HOST_READS)
print(f'| host reads: `dama_get` + `dama_data_ptr` | {num(t[0])} | {num(t[1])} | {num(t[2])} |')

groups = defaultdict(lambda: [0.0, 0.0, 0.0])
for tot, lua, c, fn, cls, group, *_ in rows:
    g = groups[(cls, group)]; g[0] += tot; g[1] += lua; g[2] += c
print('\n| class | group | all calls | from Lua (FFI) | inside C |')
print('|---|---|---:|---:|---:|')
order = {'compute': 0, 'bookkeeping': 1, 'other': 2}
for (cls, group), g in sorted(groups.items(), key=lambda kv: (order[kv[0][0]], -kv[1][0])):
    print(f'| {cls} | {group} | {num(g[0])} | {num(g[1])} | {num(g[2])} |')
PY
