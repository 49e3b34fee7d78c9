#!/usr/bin/env bash
# Ctrl-C during training saves a checkpoint and says so; resume=true continues from that step.
set -u
DAMA=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
command -v perl > /dev/null || { echo "perl missing: skipped"; exit 77; }
# a background job inherits SIGINT ignored from a non-interactive shell: restore the default first
perl -e '$SIG{INT} = "DEFAULT"; exec @ARGV' "$DAMA" recipes/pretrain_set3.lua preset=tiny epochs=500 log_every=1 \
  out="$tmp/run" > "$tmp/log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do grep -q '^epoch 2/' "$tmp/log" && break; sleep 0.1; done
kill -INT $pid
wait $pid
rc=$?
fail=0 passed=0
check() { if eval "$2"; then echo "ok   $1"; passed=$((passed + 1)); else echo "FAIL $1"; tail -n 20 "$tmp/log"; fail=$((fail + 1)); fi; }
check 'training stops with a non-zero status' '[ $rc -ne 0 ]'
check 'the interrupt message names the checkpoint' "grep -q 'interrupted at step [0-9]*: checkpoint saved to' '$tmp/log'"
check 'the checkpoint exists' "[ -s '$tmp/run/checkpoint.safetensors' ]"
step=$(sed -n 's/.*interrupted at step \([0-9]*\):.*/\1/p' "$tmp/log")
"$DAMA" recipes/pretrain_set3.lua preset=tiny epochs=500 out="$tmp/run" resume=true max_steps=$((step + 1)) > "$tmp/log2" 2>&1
check 'resume continues from the saved step' "grep -q 'resumed from .* step $step\$' '$tmp/log2' && grep -q 'done: $((step + 1)) steps' '$tmp/log2'"
echo "$passed passed, $fail failed, 0 skipped"
[ $fail -eq 0 ]
