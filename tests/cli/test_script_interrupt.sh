#!/usr/bin/env bash
# Ctrl-C in a script (in a tmux pane): it raises "interrupted" in Lua, so a training loop can catch
# it and save a checkpoint (C operations work again in the handler); a second Ctrl-C that Lua has not
# answered (here: a JIT-compiled loop, which hooks cannot reach) kills the process (status 130).
# Skipped (77) without tmux. Usage: bash tests/cli/test_script_interrupt.sh path/to/dama
set -u
DAMA=${1:?usage: test_script_interrupt.sh path/to/dama}
DAMA=$(cd "$(dirname "$DAMA")" && pwd)/$(basename "$DAMA")
command -v tmux >/dev/null || { echo "skip: tmux is not installed"; exit 77; }
tmp=$(mktemp -d)
S=(tmux -L "dama-cli-$$" -f /dev/null)
trap '"${S[@]}" kill-server 2>/dev/null; rm -rf "$tmp"' EXIT
failures=0

screen() { "${S[@]}" capture-pane -p -J -S - -t t; }
wait_for() { # regex timeout_s
  local deadline=$((SECONDS + $2))
  until screen | grep -Eq -- "$1"; do
    [ "$SECONDS" -ge "$deadline" ] && return 1
    sleep 0.1
  done
}
check() { # name regex timeout_s
  if wait_for "$2" "$3"; then
    echo "ok   $1"
  else
    echo "FAIL $1: no /$2/ within $3 s; the pane shows:"
    screen | grep -v '^$' | tail -25 | sed 's/^/    | /'
    failures=$((failures + 1))
  fi
}

have_matmul=0
"$DAMA" -e 'local a = dama.randn({8, 8}); a:matmul(a)' >/dev/null 2>&1 && have_matmul=1
cat > "$tmp/train.lua" <<LUA
local have_matmul = $have_matmul == 1
-- 1. an interpreted Lua loop (jit.off for this function) is stopped by the hook
local function spin() local s = 0; while true do s = s + math.sin(s) end end
jit.off(spin)
print('phase 1 running')
local ok, err = pcall(spin)
print('phase 1 caught:', ok, err)
-- 2. a loop of C operations: the runtime's interrupt flag ends the op, Lua gets the error
if have_matmul then
  local a = dama.randn({1000, 1000})
  print('phase 2 running')
  ok, err = pcall(function() for i = 1, 1e9 do a = a:matmul(a):div(1000) end end)
  print('phase 2 caught:', ok, err)
  local b = dama.randn({500, 500}); b:matmul(b)  -- the "checkpoint": C ops run again
  print('checkpoint saved')
end
-- 3. a JIT-compiled loop never reaches a hook: the second Ctrl-C kills the process
print('phase 3 running')
for i = 1, 1e15 do end
print('phase 3 not killed')
LUA

"${S[@]}" new-session -d -s t -x 200 -y 50 \
  "bash -c \"trap 'true' INT; '$DAMA' '$tmp/train.lua'; echo EXITED rc=\\\$?; sleep 600\""
"${S[@]}" set-option -t t remain-on-exit on >/dev/null
check "script started" '^phase 1 running' 20
sleep 0.5
"${S[@]}" send-keys -t t C-c
check "Ctrl-C raises a catchable 'interrupted' in Lua" '^phase 1 caught:[[:space:]]+false[[:space:]].*interrupted' 15
if [ "$have_matmul" = 1 ]; then
  check "phase 2 started" '^phase 2 running' 20
  sleep 1
  "${S[@]}" send-keys -t t C-c
  check "Ctrl-C ends a loop of C operations with a catchable error" '^phase 2 caught:[[:space:]]+false[[:space:]].*interrupted' 20
  check "C operations work again after the interrupt" '^checkpoint saved' 20
else
  echo "skip phase 2: dama.randn/matmul are not available yet"
fi
check "phase 3 started" '^phase 3 running' 20
sleep 1.5
"${S[@]}" send-keys -t t C-c
sleep 1.5
"${S[@]}" send-keys -t t C-c
check "a second unanswered Ctrl-C kills the script (status 130)" '^EXITED rc=130$' 15
check "and says so" '^dama: killed by Ctrl-C' 1

echo "$failures failure(s)"
[ "$failures" -eq 0 ]
