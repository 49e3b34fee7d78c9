#!/usr/bin/env bash
# The REPL in a real terminal (a tmux pane): Ctrl-C stops a pure-Lua loop and a loop of long C
# operations and returns to the prompt, Ctrl-C at the prompt drops the line being typed (or the
# unfinished chunk), Tab completes, history is saved, Ctrl-D exits with status 0.
# Skipped (77) without tmux. Usage: bash tests/cli/test_repl_interrupt.sh path/to/dama
set -u
DAMA=${1:?usage: test_repl_interrupt.sh path/to/dama}
DAMA=$(cd "$(dirname "$DAMA")" && pwd)/$(basename "$DAMA")
command -v tmux >/dev/null || { echo "skip: tmux is not installed"; exit 77; }
tmp=$(mktemp -d)
S=(tmux -L "dama-cli-$$" -f /dev/null)
trap '"${S[@]}" kill-server 2>/dev/null; rm -rf "$tmp"' EXIT
failures=0

T=t  # the tmux session in use
screen() { "${S[@]}" capture-pane -p -J -S - -t "$T"; }
# Wait until the pane shows a line matching the regex (extended, grep -E) `count` times.
wait_for() { # regex timeout_s [count]
  local deadline=$((SECONDS + $2)) n
  while :; do
    n=$(screen | grep -Ec -- "$1")
    [ "$n" -ge "${3:-1}" ] && return 0
    [ "$SECONDS" -ge "$deadline" ] && return 1
    sleep 0.1
  done
}
check() { # name regex timeout_s [count]
  if wait_for "$2" "$3" "${4:-1}"; then
    echo "ok   $1"
  else
    echo "FAIL $1: no /$2/ (x${4:-1}) within $3 s; the pane shows:"
    screen | grep -v '^$' | tail -25 | sed 's/^/    | /'
    failures=$((failures + 1))
  fi
}
keys() { "${S[@]}" send-keys -t "$T" "$@"; }
type_line() { keys -l "$1"; keys Enter; }

"${S[@]}" new-session -d -s t -x 200 -y 50 \
  "env HOME='$tmp' DAMA_HISTORY='$tmp/history' '$DAMA'; echo \"EXITED rc=\$?\"; sleep 600"
"${S[@]}" set-option -t t remain-on-exit on >/dev/null
check "banner and prompt" '^dama> $' 20

# a pure-Lua loop typed at the prompt
type_line 'print("spin" .. 1); for i = 1, 1e12 do end'
check "the loop started" '^spin1$' 20
sleep 0.5
keys C-c
check "Ctrl-C stops a pure-Lua loop" '^stdin:1: interrupted' 15
type_line 'print(1 + 1)'
check "the REPL goes on after the interrupt" '^2$' 15

# a loop in a function defined at the prompt, calling library code
type_line 'function spin() local s = 0; while true do s = s + math.sin(s) end end'
type_line 'print("spin" .. 2); spin()'
check "the function started" '^spin2$' 20
sleep 0.5
keys C-c
check "Ctrl-C stops a loop in a function defined at the prompt" 'interrupted' 15 2
type_line 'print(2 + 2)'
check "the REPL goes on (2)" '^4$' 15

# long C operations in a loop (needs the tensor binding and matmul)
if "$DAMA" -e 'local a = dama.randn({8, 8}); a:matmul(a)' >/dev/null 2>&1; then
  type_line 'a = dama.randn({1000, 1000}); print("ready" .. 1)'
  check "a 1000x1000 tensor" '^ready1$' 20
  type_line 'print("looping" .. 1); for i = 1, 1e9 do a:matmul(a) end'
  check "the matmul loop started" '^looping1$' 20
  sleep 1
  keys C-c
  check "Ctrl-C stops a loop of 1000x1000 matmuls" 'interrupted' 20 3
  type_line 'print(3 + 3)'
  check "the REPL goes on (3)" '^6$' 15
  type_line 'ok, e = pcall(function() print("looping" .. 2); for i = 1, 1e9 do a:matmul(a) end end); print("caught:", ok, e)'
  check "the matmul loop in pcall started" '^looping2$' 20
  sleep 1
  keys C-c
  check "the interrupt is a Lua error that pcall catches" '^caught:[[:space:]]+false[[:space:]].*interrupted' 20
  type_line 'x = dama.randn({3, 4})'
  type_line 'x'
  check "a tensor result is pretty-printed" 'f32' 15
else
  echo "skip Ctrl-C of long C operations: dama.randn/matmul are not available yet"
fi

# Ctrl-C at the prompt drops the line being typed, and an unfinished chunk
keys -l 'print("dropped" .. "1")'
keys C-c
type_line 'print("kept" .. "1")'
check "Ctrl-C at the prompt: the next line runs" '^kept1$' 15
if screen | grep -q '^dropped1$'; then
  echo "FAIL Ctrl-C at the prompt: the dropped line ran"; failures=$((failures + 1))
else
  echo "ok   Ctrl-C at the prompt drops the line"
fi
type_line 'function unfinished()'
check "an unfinished chunk continues" '^  \.\.> $' 15
keys C-c
type_line 'print(6 * 7)'
check "Ctrl-C drops an unfinished chunk" '^42$' 15

# Tab completion of a field, and of a method after ':'
keys -l 'string.upp'
keys Tab
sleep 0.3
type_line '("tab")'
check "Tab completes fields" '^"TAB"$' 15
type_line 's = "abc"'
keys -l 's:rev'
keys Tab
sleep 0.3
type_line ')'
check "Tab completes methods with (" '^"cba"$' 15

# errors are survived
type_line 'error("oops")'
check "an error is reported with a traceback" '^stack traceback:' 15
type_line 'print(5 + 5)'
check "the REPL goes on after an error" '^10$' 15

# Ctrl-D exits cleanly and the history is saved
keys C-d
check "Ctrl-D exits with status 0" '^EXITED rc=0$' 15
if grep -q 'print(5' "$tmp/history" 2>/dev/null; then # libedit's file format escapes spaces
  echo "ok   history saved to DAMA_HISTORY"
else
  echo "FAIL history not saved to $tmp/history"; failures=$((failures + 1))
fi
# a new session recalls the last line with Up
"${S[@]}" new-session -d -s t2 -x 200 -y 50 \
  "env HOME='$tmp' DAMA_HISTORY='$tmp/history' '$DAMA'; echo \"EXITED rc=\$?\"; sleep 600"
"${S[@]}" kill-session -t t  # after t2 exists, so that the tmux server stays up
T=t2
check "restarted" '^dama> $' 20
keys Up
sleep 0.3
keys Enter
check "Up recalls the previous session's last line" '^10$' 15
keys C-d
check "Ctrl-D exits (2)" '^EXITED rc=0$' 15

echo "$failures failure(s)"
[ "$failures" -eq 0 ]
