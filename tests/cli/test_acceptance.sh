#!/usr/bin/env bash
# The acceptance commands of the `dama` program's issue, run as written (the Ctrl-C ones are in
# test_repl_interrupt.sh). Usage: bash tests/cli/test_acceptance.sh path/to/dama
set -u
DAMA=${1:?usage: test_acceptance.sh path/to/dama}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export HOME="$tmp" DAMA_HISTORY="$tmp/history"
failures=0
ok() { echo "ok   $1"; }
fail() { echo "FAIL $1"; shift; printf '%s\n' "$@" | sed 's/^/    | /'; failures=$((failures + 1)); }

out=$("$DAMA" -e 'local t = dama.tensor{{1,2},{3,4}}; print(t:matmul(t):sum())' 2>&1); rc=$?
if [ "$rc" -eq 0 ] && printf '%s' "$out" | grep -Eq '(^|[^0-9.])54(\.0*)?([^0-9]|$)'; then
  ok "matmul(t):sum() prints 54"
else
  fail "matmul(t):sum() prints 54 (rc=$rc)" "$out"
fi

out=$(printf 'x = dama.randn({3,4})\nx\n' | "$DAMA" 2>&1); rc=$?
rows=$(printf '%s\n' "$out" | grep -Ec '^ ?\[+ *-?[0-9]')
if [ "$rc" -eq 0 ] && [ "$rows" -eq 3 ] && printf '%s' "$out" | grep -q 'f32' &&
   printf '%s' "$out" | grep -Eq '3 ?(×|x|,) ?4'; then
  ok "piped REPL prints a 3x4 f32 tensor"
else
  fail "piped REPL prints a 3x4 f32 tensor (rc=$rc, rows=$rows)" "$out"
fi

out=$("$DAMA" -e 'print(dama.tensor{1,2} + dama.tensor{1,2,3})' 2>&1); rc=$?
if [ "$rc" -ne 0 ] && printf '%s' "$out" | grep -q '2' && printf '%s' "$out" | grep -q '3' &&
   printf '%s' "$out" | grep -Eq '\[2\].*\[3\]|\(2\).*\(3\)|\[3\].*\[2\]'; then
  ok "a broadcast error exits non-zero and shows both shapes"
else
  fail "a broadcast error exits non-zero and shows both shapes (rc=$rc)" "$out"
fi

echo "$failures failure(s)"
[ "$failures" -eq 0 ]
