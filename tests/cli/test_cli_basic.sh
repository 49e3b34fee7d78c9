#!/usr/bin/env bash
# The `dama` command line: --version, --help, -e, -l, -i, scripts with arguments (`arg` and `...` as
# luajit sets them), a script from stdin, exit codes and error messages.
# Usage: bash tests/cli/test_cli_basic.sh path/to/dama
set -u
DAMA=${1:?usage: test_cli_basic.sh path/to/dama}
DAMA=$(cd "$(dirname "$DAMA")" && pwd)/$(basename "$DAMA")
. "$(dirname "$0")/lib.sh"

# --version / --help
out=$("$DAMA" --version); rc=$?
expect_match "--version prints dama and LuaJIT versions" '^dama [0-9]+\.[0-9]+\.[0-9]+ \(LuaJIT 2\.1' "$out"
expect "--version exits 0" 0 "$rc"
out=$("$DAMA" --help); rc=$?
expect "--help exits 0" 0 "$rc"
for opt in '-e chunk' '-l name' '-i ' '-v ' '--version' '--help' '-- ' '  - '; do
  expect_match "--help lists '$opt'" "$(printf '%s' "$opt" | sed 's/[.-]/\\&/g')" "$out"
done
out=$("$DAMA" -h | head -1)
expect_match "-h prints usage" '^usage: dama' "$out"
"$DAMA" --bogus >/dev/null 2>"$tmp/err"; rc=$?
expect "unknown option exits 1" 1 "$rc"
expect_match "unknown option is named" "unrecognized option '--bogus'" "$(cat "$tmp/err")"
"$DAMA" -e >/dev/null 2>"$tmp/err"; rc=$?
expect "-e without a chunk exits 1" 1 "$rc"

# -e: repeatable, in order, with the dama global and require 'dama'
out=$("$DAMA" -e 'io.write(1)' -e 'io.write(2)' -e'print(3)')
expect "-e runs chunks in order" "123" "$out"
out=$("$DAMA" -e 'print(type(dama), require("dama") == dama)')
expect "dama is a global and require'able" "table	true" "$out"
out=$("$DAMA" -e 'print(1 + 1)' 2>/dev/null); rc=$?
expect "-e prints" "2" "$out"
expect "-e exits 0" 0 "$rc"
out=$("$DAMA" -e 'error("boom")' 2>&1 >/dev/null); rc=$?
expect "-e error exits 1" 1 "$rc"
expect_match "-e error message names the chunk" '^dama: \(command line\):1: boom' "$out"
expect_match "-e error has a traceback" 'stack traceback:' "$out"
out=$("$DAMA" -e 'error({})' 2>&1 >/dev/null); rc=$?
expect "non-string error exits 1" 1 "$rc"
expect_match "non-string error is described" 'error object is a table value' "$out"
out=$("$DAMA" -e 'x = ' 2>&1 >/dev/null); rc=$?
expect "-e syntax error exits 1" 1 "$rc"
expect_match "-e syntax error message" "^dama: \(command line\):1: unexpected symbol near '<eof>'" "$out"
out=$("$DAMA" -e 'print(arg[0], arg[-1], arg[-2], #arg, select("#", ...))')
expect "-e without a script: options at negative indices" "nil	print(arg[0], arg[-1], arg[-2], #arg, select(\"#\", ...))	-e	0	0" "$out"
out=$("$DAMA" -e 'os.exit(3)'); rc=$?
expect "os.exit code passes through" 3 "$rc"
out=$("$DAMA" -v -e 'print("x")')
expect_match "-v prints the version then goes on" '^dama .*LuaJIT.*'$'\n''x$' "$out"

# scripts: arg and ... exactly as luajit sets them
cat > "$tmp/args.lua" <<'LUA'
local t = {}
for i = -3, #arg do t[#t + 1] = tostring(i) .. '=' .. tostring(arg[i]) end
print(table.concat(t, ' '))
print(select('#', ...), ...)
LUA
out=$(cd "$tmp" && "$DAMA" args.lua a 'b c')
expect "script arg table" "-3=nil -2=nil -1=$DAMA 0=args.lua 1=a 2=b c
2	a	b c" "$out"
out=$(cd "$tmp" && "$DAMA" -e 'X = 5' args.lua z)
expect "script arg table after -e" "-3=$DAMA -2=-e -1=X = 5 0=args.lua 1=z
1	z" "$out"
out=$(cd "$tmp" && "$DAMA" -- args.lua -e)
expect "-- stops options" "-3=nil -2=$DAMA -1=-- 0=args.lua 1=-e
1	-e" "$out"
if command -v luajit >/dev/null; then
  ref=$(cd "$tmp" && luajit args.lua a 'b c' | sed "s|luajit|$DAMA|")
  out=$(cd "$tmp" && "$DAMA" args.lua a 'b c')
  expect "script arg table matches luajit's" "$ref" "$out"
fi
printf 'print("from script", X)\nerror("script failed")\n' > "$tmp/fail.lua"
out=$("$DAMA" -e 'X=1' "$tmp/fail.lua" 2>"$tmp/err"); rc=$?
expect "failing script's output" "from script	1" "$out"
expect "failing script exits 1" 1 "$rc"
expect_match "failing script: message" "^dama: $tmp/fail.lua:2: script failed" "$(cat "$tmp/err")"
expect_match "failing script: traceback" "in main chunk" "$(cat "$tmp/err")"
"$DAMA" "$tmp/missing.lua" 2>"$tmp/err"; rc=$?
expect "missing script exits 1" 1 "$rc"
expect_match "missing script message" "^dama: cannot open .*missing.lua" "$(cat "$tmp/err")"
printf '#!/usr/bin/env dama\nprint("shebang ok")\n' > "$tmp/shebang.lua"
out=$("$DAMA" "$tmp/shebang.lua")
expect "a #! line is skipped" "shebang ok" "$out"

# stdin as a script
out=$(printf 'local a = ...\nprint("stdin", a, arg[0])\n' | "$DAMA" - q)
expect "- runs stdin as a script with arguments" "stdin	q	-" "$out"
out=$(printf 'print(1)\nerror("x")\nprint(2)\n' | "$DAMA" - 2>/dev/null); rc=$?
expect "stdin script stops at an error" "1" "$out"
expect "stdin script error exits 1" 1 "$rc"

# -l and -i
mkdir -p "$tmp/mods"
printf 'return {answer = 42}\n' > "$tmp/mods/mymod.lua"
out=$(DAMA_LUA_PATH="$tmp/mods" "$DAMA" -l mymod -e 'print(mymod.answer)')
expect "-l requires into a global; DAMA_LUA_PATH is searched" "42" "$out"
out=$("$DAMA" -l no_such_module_x 2>&1); rc=$?
expect "-l of a missing module exits 1" 1 "$rc"
expect_match "-l missing module message" "module 'no_such_module_x' not found" "$out"
out=$(printf 'X + 1\n' | "$DAMA" -i -e 'X = 41')
expect "-i enters the REPL after -e" "42" "$out"
out=$(printf 'Y\n' | "$DAMA" -i "$tmp/fail.lua" 2>/dev/null)
expect "-i enters the REPL even after the script failed" "from script	nil
nil" "$out"

# -j / -O (LuaJIT controls)
out=$("$DAMA" -joff -e 'print((jit.status()))')
expect "-joff turns the JIT off" "false" "$out"
out=$("$DAMA" -O3 -e 'print(1)')
expect "-O3 is accepted" "1" "$out"

# package.path: the source tree's lua/ is searched; datasets.* resolves under the project root
out=$("$DAMA" -e 'print(package.searchpath("dama.repl", package.path) ~= nil)')
expect "dama.repl is on package.path" "true" "$out"
mkdir -p "$tmp/inst/bin" "$tmp/inst/datasets/sub"
cp "$DAMA" "$tmp/inst/bin/dama"
printf 'return "flat"\n' > "$tmp/inst/datasets/cli_test_ds.lua"
printf 'return "nested"\n' > "$tmp/inst/datasets/sub/init.lua"
out=$("$tmp/inst/bin/dama" -e 'print(require("datasets.cli_test_ds"), require("datasets.sub"))')
expect "datasets.x resolves to <root>/datasets/x.lua" "flat	nested" "$out"
out=$("$DAMA" -e 'require("datasets.no_such_dataset_x")' 2>&1)
expect_match "a missing datasets.x names the datasets paths" "datasets/no_such_dataset_x.lua" "$out"

# a user's mistake shows the message and the user's own frame, not the library's internals
printf 'local x = 1\ndama.schedule.warmup_cosine{lr = 1, epochs = 1, warmup_epochs = 1}\n' > "$tmp/mistake.lua"
out=$("$DAMA" "$tmp/mistake.lua" 2>&1)
expect_match "a user mistake names the user's line" "mistake.lua:2: warmup_cosine: epochs \(1\) must exceed warmup_epochs" "$out"
expect_match "its traceback keeps the user's frame" "mistake.lua:2: in main chunk" "$out"
expect "its traceback has no library frames" "0" "$(printf '%s' "$out" | grep -c -e 'lua/dama/' -e "function 'error'")"
out=$(DAMA_FULL_TRACEBACK=1 "$DAMA" "$tmp/mistake.lua" 2>&1)
expect_match "DAMA_FULL_TRACEBACK=1 keeps the library frames" "lua/dama/schedule.lua:[0-9]+: in function 'warmup_cosine'" "$out"

echo "$failures failure(s)"
[ "$failures" -eq 0 ]
