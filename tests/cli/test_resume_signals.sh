#!/usr/bin/env bash
# Exact resume after every way a run can be stopped: SIGINT (Ctrl-C), SIGTERM and SIGUSR1 (batch
# schedulers) at random points, and kill -9 with a step-interval checkpoint (ckpt_steps=). Each chain
# of interrupted and resumed runs must end with the same per-step losses (metrics.jsonl, one row per
# step, none twice) and a final checkpoint whose every tensor is bit-identical to an uninterrupted run.
# Progress is read from metrics.jsonl (polled), so the test does not depend on the machine's speed.
# The REPL part: SIGTERM during a training chunk saves, then ends the process.
# Usage: bash tests/cli/test_resume_signals.sh path/to/dama [sigint|sigterm|kill9|repl|all]
set -u
DAMA=${1:?usage: test_resume_signals.sh path/to/dama [part]}
PART=${2:-all}
. "$(dirname "$0")/lib.sh"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
command -v perl > /dev/null || { echo "skip: perl missing"; exit 77; }

# 24 epochs of 8 steps; a reconstruction grid every 3 epochs (it draws random masks, so an interrupt
# near an epoch end must leave the RNG as the uninterrupted run has it); epoch checkpoints every 5.
RUN=(recipes/pretrain_set3.lua preset=tiny epochs=24 grid_every=3 ckpt_every=5 log_every=1000)
TOTAL=192

rows() { if [ -f "$1/metrics.jsonl" ]; then wc -l < "$1/metrics.jsonl"; else echo 0; fi; }

# The per-step record without the wall-clock fields.
losses() { sed -E 's/"(time|unix_time)":[-0-9.eE+]+,?//g; s/,}/}/' "$1/metrics.jsonl"; }

# Every tensor of two checkpoints byte for byte, and the resume state (step, epoch, cursor, RNG,
# optimizer groups and step counts) of their metadata.
compare_ckpt() { # a b
  A="$1" B="$2" "$DAMA" -e '
    local ffi = require "ffi"
    pcall(ffi.cdef, "int memcmp(const void *, const void *, size_t);")
    local SIZE = {f32 = 4, f64 = 8, bf16 = 2, f16 = 2, u8 = 1, u16 = 2, i32 = 4, i64 = 8}
    local ck = dama.checkpoint
    local fa, fb = ck.open(os.getenv("A")), ck.open(os.getenv("B"))
    local na, nb = fa:names(), fb:names()
    table.sort(na); table.sort(nb)
    assert(#na > 0, "no tensors in " .. os.getenv("A"))
    assert(table.concat(na, " ") == table.concat(nb, " "), "the tensor names differ")
    for _, n in ipairs(na) do
      local ia, ib = fa:info(n), fb:info(n)
      assert(ia.dtype == ib.dtype and table.concat(ia.shape, ",") == table.concat(ib.shape, ","), n .. ": dtype/shape differ")
      local ta, tb = fa:get(n):contiguous(), fb:get(n):contiguous()
      local pa, pb = ta:data(), tb:data()
      if ffi.C.memcmp(pa, pb, ta:numel() * SIZE[ia.dtype]) ~= 0 then error(n .. ": the bytes differ", 0) end
    end
    local ma = ck.json_decode(fa.metadata.dama)
    local mb = ck.json_decode(fb.metadata.dama)
    for _, k in ipairs{"step", "epoch", "cursor", "rng", "optimizer"} do
      local ea, eb = ck.json_encode(ma[k]), ck.json_encode(mb[k])
      if ea ~= eb then error("metadata " .. k .. " differs: " .. ea .. " vs " .. eb, 0) end
    end
    print(string.format("%d tensors identical", #na))'
}

# Start (or resume) a run in the background with default signal actions (a non-interactive shell's
# background job would otherwise ignore SIGINT).
start() { # out log extra...
  local out=$1 log=$2; shift 2
  perl -e '$SIG{INT} = "DEFAULT"; $SIG{TERM} = "DEFAULT"; exec @ARGV' "$DAMA" "${RUN[@]}" out="$out" "$@" > "$log" 2>&1 &
  pid=$!
}

# Wait until the run has logged at least $2 steps (or ended); 0 if it is still running then.
wait_rows() { # out target
  local deadline=$((SECONDS + 300))
  while [ "$(rows "$1")" -lt "$2" ]; do
    kill -0 $pid 2> /dev/null || return 1
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.02
  done
  kill -0 $pid 2> /dev/null
}

reference() {
  [ -f "$tmp/ref/checkpoint.safetensors" ] && return 0
  "$DAMA" "${RUN[@]}" out="$tmp/ref" > "$tmp/ref.log" 2>&1
  expect_match 'the uninterrupted run finishes' "done: $TOTAL steps" "$(cat "$tmp/ref.log")"
}

# A chain: fresh run, then stops by the given signals at random steps, each followed by resume=true,
# then a resume to the end; compared with the reference.
chain() { # name extra-args signal...
  local name=$1 extra=$2; shift 2
  local out="$tmp/$name" n=0 resume=()
  rm -rf "$out"
  for sig in "$@"; do
    n=$((n + 1))
    local have target
    have=$(rows "$out")
    target=$((have + 10 + RANDOM % 30))
    # shellcheck disable=SC2086
    start "$out" "$tmp/$name.$n.log" "${resume[@]}" $extra
    if ! wait_rows "$out" "$target"; then
      expect "$name $n: the run was still going at step $target" running stopped
      wait $pid; continue
    fi
    sleep "0.0$((RANDOM % 10))"
    kill -"$sig" $pid
    wait $pid 2> /dev/null
    local rc=$? log
    log=$(cat "$tmp/$name.$n.log")
    if [ "$sig" = KILL ]; then
      expect "$name $n: kill -9 kills" 137 "$rc"
    else
      # Ctrl-C: the script's error (1); SIGTERM/SIGUSR1: 128 + signal, as a death by it reads
      local want=1
      [ "$sig" = TERM ] && want=143
      [ "$sig" = USR1 ] && want=$((128 + $(kill -l USR1)))
      expect "$name $n: SIG$sig stops with status $want" "$want" "$rc"
      expect_match "$name $n: SIG$sig saves and names the checkpoint" \
        "interrupted at step [0-9]+: checkpoint saved to $out/checkpoint.safetensors" "$log"
      local step rows_now
      step=$(printf '%s\n' "$log" | sed -n 's/.*interrupted at step \([0-9]*\):.*/\1/p')
      rows_now=$(rows "$out")
      expect "$name $n: metrics.jsonl ends at the saved step" "$step" "$rows_now"
    fi
    resume=(resume=true)
  done
  # a temporary file left by a process killed while writing a checkpoint is removed on resume
  : > "$out/checkpoint.safetensors.tmp.2147483647"
  # shellcheck disable=SC2086
  "$DAMA" "${RUN[@]}" out="$out" resume=true $extra > "$tmp/$name.end.log" 2>&1
  expect_match "$name: the resumed run finishes" "done: $TOTAL steps" "$(cat "$tmp/$name.end.log")"
  local d
  d=$(diff <(losses "$tmp/ref") <(losses "$out") | head -n 6)
  expect "$name: per-step losses equal the uninterrupted run's (diff shown)" "" "$d"
  expect_match "$name: every final tensor is bit-identical" 'tensors identical$' \
    "$(compare_ckpt "$tmp/ref/checkpoint.safetensors" "$out/checkpoint.safetensors" 2>&1)"
  expect "$name: no temporary files are left" "" "$(cd "$out" && ls | grep '\.tmp\.' || true)"
}

# The REPL: SIGTERM while a chunk trains saves the checkpoint, then ends the process (the chunk's
# later lines do not run); at the prompt it ends the process at once.
repl() {
  local out="$tmp/repl"
  rm -rf "$out"; mkfifo "$tmp/fifo"
  perl -e '$SIG{INT} = "DEFAULT"; exec @ARGV' "$DAMA" < "$tmp/fifo" > "$tmp/repl.log" 2>&1 &
  pid=$!
  exec 3> "$tmp/fifo"
  printf 'arg = {[0] = "recipes/pretrain_set3.lua", "preset=tiny", "epochs=24", "log_every=1000", "out=%s"}\n' "$out" >&3
  printf 'dofile(arg[0])\nprint("the next line ran")\n' >&3
  if wait_rows "$out" 20; then
    kill -TERM $pid
    wait $pid 2> /dev/null
    local rc=$? log step
    log=$(cat "$tmp/repl.log")
    expect 'repl: SIGTERM during training ends the REPL with status 143' 143 "$rc"
    expect_match 'repl: after saving the checkpoint' "interrupted at step [0-9]+: checkpoint saved to $out/checkpoint.safetensors" "$log"
    expect_match 'repl: and saying why it ended' 'dama: terminated by SIGTERM' "$log"
    expect 'repl: the chunk after it does not run' '' "$(printf '%s\n' "$log" | grep 'the next line ran')"
    step=$(printf '%s\n' "$log" | sed -n 's/.*interrupted at step \([0-9]*\):.*/\1/p')
    expect 'repl: metrics.jsonl ends at the saved step' "$step" "$(rows "$out")"
  else
    expect 'repl: the training chunk was running' running stopped
    kill $pid; wait $pid 2> /dev/null
  fi
  exec 3>&-
  perl -e 'exec @ARGV' "$DAMA" < "$tmp/fifo" > "$tmp/repl2.log" 2>&1 &
  pid=$!
  exec 3> "$tmp/fifo"
  printf 'io.write("ready\\n") io.flush()\n' >&3
  local deadline=$((SECONDS + 120))
  until grep -q '^ready' "$tmp/repl2.log" || [ $SECONDS -ge $deadline ]; do sleep 0.05; done
  sleep 0.2   # back at the prompt, reading the next line
  kill -TERM $pid
  wait $pid 2> /dev/null
  expect 'repl: SIGTERM at the prompt ends the REPL (143)' 143 "$?"
  exec 3>&-
  rm -f "$tmp/fifo"
}

reference
case $PART in sigint | all) chain sigint '' INT INT INT INT ;; esac
case $PART in sigterm | all) chain sigterm '' TERM USR1 TERM ;; esac
case $PART in kill9 | all) chain kill9 'ckpt_steps=7' KILL INT KILL KILL ;; esac
case $PART in repl | all) repl ;; esac

echo "$failures failure(s)"
[ "$failures" -eq 0 ]
