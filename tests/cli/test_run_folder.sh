#!/usr/bin/env bash
# Run folders: an unwritable out= fails before the model is built, naming the folder; a folder with a
# checkpoint is not overwritten by a fresh run (resume=true / overwrite=true); resume=true without a
# checkpoint says so; config.json and wall-clock times per metrics row; a resumed run drops the rows
# logged after its checkpoint; stale checkpoint temporaries are removed; a checkpoint whose data position
# the data cannot take names the checkpoint file; ckpt_minutes= saves while training; every recipe has
# its own default folder.
# Usage: bash tests/cli/test_run_folder.sh path/to/dama
set -u
DAMA=${1:?usage: test_run_folder.sh path/to/dama}
DAMA=$(cd "$(dirname "$DAMA")" && pwd)/$(basename "$DAMA")
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$(dirname "$0")/lib.sh"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
TINY=("$ROOT/recipes/pretrain_set3.lua" preset=tiny)

# --- out= that cannot be used: named, and nothing is built
out=$("$DAMA" "${TINY[@]}" out=/dev/null/run 2>&1); rc=$?
expect_match 'out= under a file fails' '^[1-9]' "$rc"
expect_match 'and names the folder' "out='/dev/null/run' is not usable: '/dev/null' exists and is not a folder" "$out"
expect 'before the model is built' '' "$(printf '%s\n' "$out" | grep '^model:')"
: > "$tmp/afile"
out=$("$DAMA" "${TINY[@]}" out="$tmp/afile" 2>&1)
expect_match 'out= naming a file fails, naming it' "out='$tmp/afile' is not usable: '$tmp/afile' exists and is not a folder" "$out"

# --- a fresh run, then a second one in the same folder is refused
run="$tmp/run"
out=$("$DAMA" "${TINY[@]}" out="$run" max_steps=4 2>&1)
expect_match 'a fresh run' 'done: 4 steps' "$out"
sum=$(cksum < "$run/checkpoint.safetensors")
out=$("$DAMA" "${TINY[@]}" out="$run" 2>&1); rc=$?
expect_match 'a fresh run in a folder with a checkpoint is refused' '^[1-9]' "$rc"
expect_match 'suggesting resume=true or overwrite=true' \
  "'$run/checkpoint.safetensors' already holds a checkpoint; continue that run with resume=true, start it over with overwrite=true" "$out"
expect 'the checkpoint is left as it was' "$sum" "$(cksum < "$run/checkpoint.safetensors")"

# --- config.json and times per row
cfg=$("$DAMA" -e "local t = dama.checkpoint.json_decode(io.open('$run/config.json'):read('*a'))
  print(t.batch, t.out, t.max_steps, t.preset)" 2>&1)
expect 'config.json holds the resolved config' "8	$run	4	tiny" "$cfg"
times=$("$DAMA" -e "local last, n = -1, 0
  for l in io.lines('$run/metrics.jsonl') do
    local t, u = tonumber(l:match('\"time\":([%d.]+)')), tonumber(l:match('\"unix_time\":([%d.]+)'))
    assert(t and t >= last, 'time: ' .. l); assert(u and u > 1.6e9, 'unix_time: ' .. l); last, n = t, n + 1
  end
  print(n .. ' rows with times')" 2>&1)
expect 'every metrics row has time and unix_time' '4 rows with times' "$times"

# --- resume drops the rows logged after the checkpoint (as a kill -9 leaves them) and stale temporaries
for s in 5 6 7 8 9; do echo "{\"step\":$s,\"total\":123}" >> "$run/metrics.jsonl"; done
: > "$run/checkpoint.safetensors.tmp.2147483647"   # a writer that is gone
: > "$run/checkpoint.safetensors.tmp.$$"          # a writer still running (this shell): kept
out=$("$DAMA" "${TINY[@]}" out="$run" resume=true max_steps=6 2>&1)
expect_match 'resume continues from the checkpoint' 'resumed from .* step 4$' "$out"
expect_match 'and says it dropped the rows after it' 'dropped 5 row\(s\) logged after step 4' "$out"
expect 'metrics.jsonl holds each step once' '1 2 3 4 5 6' \
  "$(sed -n 's/.*"step":\([0-9]*\).*/\1/p' "$run/metrics.jsonl" | tr '\n' ' ' | sed 's/ $//')"
expect 'a stale temporary of a gone writer is removed' 'no' "$([ -e "$run/checkpoint.safetensors.tmp.2147483647" ] && echo yes || echo no)"
expect "a running writer's temporary is kept" 'yes' "$([ -e "$run/checkpoint.safetensors.tmp.$$" ] && echo yes || echo no)"
rm -f "$run/checkpoint.safetensors.tmp.$$"

# --- overwrite=true starts over
out=$("$DAMA" "${TINY[@]}" out="$run" overwrite=true max_steps=3 2>&1)
expect_match 'overwrite=true starts over' 'done: 3 steps' "$out"
expect 'with a new metrics log' 3 "$(wc -l < "$run/metrics.jsonl")"

# --- resume=true without a checkpoint
out=$("$DAMA" "${TINY[@]}" out="$tmp/empty" resume=true 2>&1); rc=$?
expect_match 'resume=true on a folder without a checkpoint fails' '^[1-9]' "$rc"
expect_match 'and says so' "resume=true, but '$tmp/empty' holds no checkpoint; start the run without resume=true" "$out"
mkdir -p "$tmp/early" && printf '{"step":1,"total":1}\n{"step":2,"total":1}\n' > "$tmp/early/metrics.jsonl"
out=$("$DAMA" "${TINY[@]}" out="$tmp/early" resume=true 2>&1)
expect_match 'a run killed before its first checkpoint is named as such' \
  'metrics.jsonl logs 2 step\(s\): the run stopped before its first checkpoint' "$out"

# --- a data position the data cannot take names the checkpoint file
"$DAMA" -e "
  local ck = dama.checkpoint
  local ts, meta = ck.load_tensors('$run/checkpoint.safetensors')
  local info = ck.json_decode(meta.dama)
  info.cursor.index = 99999
  meta.dama = ck.json_encode(info)
  ck.save_tensors('$run/checkpoint.safetensors', ts, meta)" 2>&1
out=$("$DAMA" "${TINY[@]}" out="$run" resume=true 2>&1); rc=$?
expect_match 'an out-of-range data position fails' '^[1-9]' "$rc"
expect_match 'naming the checkpoint file and the position' \
  "checkpoint '$run/checkpoint.safetensors' holds the data position epoch 0, index 99999, which this data cannot take" "$out"

# --- ckpt_minutes= writes checkpoints while an epoch runs (here every ~30 ms, no epoch checkpoints)
rm -rf "$tmp/minutes"
perl -e 'exec @ARGV' "$DAMA" "${TINY[@]}" epochs=500 ckpt_every=0 ckpt_minutes=0.0005 out="$tmp/minutes" > "$tmp/minutes.log" 2>&1 &
pid=$!
deadline=$((SECONDS + 300))
until [ -f "$tmp/minutes/metrics.jsonl" ] && [ "$(wc -l < "$tmp/minutes/metrics.jsonl")" -ge 40 ]; do
  kill -0 $pid 2> /dev/null || break
  [ $SECONDS -ge $deadline ] && break
  sleep 0.05
done
kill -9 $pid; wait $pid 2> /dev/null
reason=$("$DAMA" -e "local f = dama.checkpoint.open('$tmp/minutes/checkpoint.safetensors')
  local d = dama.checkpoint.json_decode(f.metadata.dama); print(d.extra.reason, d.step > 0)" 2>&1)
expect 'after kill -9, a ckpt_minutes checkpoint is there' 'minutes	true' "$reason"
out=$("$DAMA" "${TINY[@]}" epochs=500 ckpt_every=0 out="$tmp/minutes" resume=true max_steps=50 2>&1)
expect_match 'and resumes' 'resumed from .* step [1-9][0-9]*$' "$out"

# --- every recipe has its own default folder, also with a preset
mkdir -p "$tmp/cwd" && cd "$tmp/cwd" || exit 1
for r in pretrain_set3 masking_playground mae; do
  "$DAMA" "$ROOT/recipes/$r.lua" preset=tiny max_steps=1 > "$tmp/$r.log" 2>&1
done
expect 'preset runs go to runs/<recipe>_<preset>' 'mae_tiny masking_playground_tiny pretrain_set3_tiny' \
  "$(ls runs | tr '\n' ' ' | sed 's/ $//')"
cd "$ROOT" || exit 1

echo "$failures failure(s)"
[ "$failures" -eq 0 ]
