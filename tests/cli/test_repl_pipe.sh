#!/usr/bin/env bash
# The REPL with a pipe on stdin: no prompt or banner, expression results printed, multi-line input,
# errors reported and survived, `_`, the pretty printer, completion candidates, exit status.
# Usage: bash tests/cli/test_repl_pipe.sh path/to/dama
set -u
DAMA=${1:?usage: test_repl_pipe.sh path/to/dama}
. "$(dirname "$0")/lib.sh"
repl() { printf "$1" | "$DAMA" 2>"$tmp/err"; }

out=$(repl 'x = 1\nx\n'); rc=$?
expect "expression printed, statement silent, no prompt" "1" "$out"
expect "clean input exits 0" 0 "$rc"
expect "nothing on stderr" "" "$(cat "$tmp/err")"

out=$(repl 'function f(a)\n  local b = a * 2\n\n  return b\nend\nf(21)\n')
expect "multi-line function definition" "42" "$out"
out=$(repl 'local t = {\n1,\n2}\nreturn #t\n')
expect "multi-line statement" "" "$out"
out=$(repl '{\n1,\n2\n}\n')
expect "multi-line expression" "{1, 2}" "$out"
out=$(repl 'string.format(\n"%%d",\n5)\n')
expect "multi-line call" '"5"' "$out"
out=$(repl 's = [[a\nb]]\ns\n')
expect "multi-line long string" '"a\nb"' "$out"

out=$(repl 'y = 5\nerror("bad")\nprint(y + 1)\nnil + 1\ny\n'); rc=$?
expect "errors are survived" "6
5" "$out"
expect "a failed chunk makes the exit status 1" 1 "$rc"
err=$(cat "$tmp/err")
expect_match "error message with position" '^stdin:1: bad' "$err"
expect_match "error traceback" 'stack traceback:' "$err"
expect_match "traceback shows the chunk" 'stdin:1: in main chunk' "$err"
expect_match "arithmetic error" "stdin:1: attempt to perform arithmetic on a nil value" "$err"
out=$(repl 'x = = 1\nprint("after")\n')
expect "syntax error survived" "after" "$out"
expect_match "syntax error reported" "^stdin:1: unexpected symbol near '='" "$(cat "$tmp/err")"
out=$(repl 'for i = 1,\n'); rc=$?
expect "input ending inside a chunk" "" "$out"
expect_match "input ending inside a chunk: message" "'<eof>'" "$(cat "$tmp/err")"
expect "input ending inside a chunk exits 1" 1 "$rc"

out=$(repl '6 * 7\n_ + 1\nprint("x")\n_\n')
expect "_ holds the last result; statements leave it" "42
43
x
43" "$out"
out=$(repl '1, "two", nil\nnil\n')
expect "several results, tab-separated; nil printed" '1	"two"	nil
nil' "$out"
out=$(repl 'print(1)\n')
expect "a call returning nothing prints only its output" "1" "$out"
out=$(repl '"a\\tb\\"c"\n')
expect "strings quoted" '"a\tb\"c"' "$out"
out=$(repl '{3, 1, b = true, a = "x", [10] = 0, ["not id"] = 1, {}}\n')
expect "tables readably: array part, then sorted keys" '{3, 1, {}, [10] = 0, a = "x", b = true, ["not id"] = 1}' "$out"
out=$(repl 't = {}; t.self = t\nt\n')
expect_match "cycles marked" '^\{self = <cycle: table: 0x[0-9a-f]+>\}$' "$out"
out=$(repl '{a = {b = {c = {d = {}}}}}\n')
expect "depth limit" '{a = {b = {c = {...}}}}' "$out"
out=$(repl 'local t = {} for i = 1, 100 do t[i] = i end return t\n')
expect_match "size limit" '40,$' "$(printf '%s\n' "$out" | sed -n '41p')"
expect_match "size limit count" '\.\.\. \(60 more\)' "$out"
out=$(repl 'print\n')
expect_match "functions as function: 0x" '^builtin: |^function: ' "$out"
out=$(repl 'setmetatable({}, {__tostring = function() return "custom!" end})\n')
expect "__tostring used" "custom!" "$out"
out=$(repl 'setmetatable({}, {__tostring = function() error("no") end})\nprint("still")\n')
expect_match "a failing __tostring is reported, not fatal" 'still' "$out"

out=$(repl '{setmetatable({}, {__tostring = function() return "l1\\nl2" end})}\n')
expect "multi-line __tostring inside a table is indented" '{
  l1
  l2
}' "$out"
out=$(repl 'C = {summary = function(self) return "one line" end}; C.__index = C\n{v = setmetatable({}, C)}\n')
expect "inside a table, a value with :summary() shows as that line" '{v = one line}' "$out"
out=$(repl 'n = 0; debug.sethook(function() n = n + 1 end, "l")\nlocal x = 1\ndebug.sethook()\nn > 1\n')
expect "a debug.sethook set at the prompt survives to the next chunk" "true" "$out"
out=$(repl '=1 + 2\n')
expect "Lua 5.1 style =expr" "3" "$out"
out=$(repl 'dama ~= nil\n')
expect "dama is a global in the REPL" "true" "$out"
out=$(repl 'r = require "dama.repl"\nr.complete("pri")\nr.complete("string.up")\nr.complete("s:up")\n' | tr -d '\n')
expect "completion candidates (print and friends)" '{"print"}{"string.upper"}{}' "$out"
out=$(repl 's = "x"\nrequire("dama.repl").complete("s:up")\nrequire("dama.repl").complete("wh")\n')
expect "method completion on a value with a metatable; keywords" '{"s:upper("}
{"while"}' "$out"
mkdir -p "$tmp/mods/fakepkg/deep"
printf 'return {field = 1}\n' > "$tmp/mods/fakepkg/init.lua"
printf 'return 2\n' > "$tmp/mods/fakepkg/sub.lua"
printf 'return 3\n' > "$tmp/mods/fakepkg/deep/init.lua"
out=$(printf 'fakepkg = require "fakepkg"\nrequire("dama.repl").complete("fakepkg.")\n' | DAMA_LUA_PATH="$tmp/mods" "$DAMA")
expect "completion lists submodules not loaded yet" '{"fakepkg.deep", "fakepkg.field", "fakepkg.sub"}' "$out"
out=$(repl 'require("dama.repl").complete("dama.")\n')
expect_match "completion of dama fields" '"dama\.' "$out"

out=$(repl 'm = dama.nn.MAE{img = 32, patch = 8, chans = 3, dim = 16, depth = 2, heads = 2, dec_dim = 8, dec_depth = 1, dec_heads = 2}\nc = require("dama.repl").complete\nc("m:state_d")\nc("m.bl")\nc("m.blocks:num_p")\nc("m.pos_e")\n')
expect "completion of inherited module methods, submodules, children and buffers" '{"m:state_dict(", "m:state_dict_keys("}
{"m.blocks"}
{"m.blocks:num_parameters("}
{"m.pos_embed"}' "$out"

out=$(repl 'x = dama.randn(3); x.shape\nprint("next")\n'); rc=$?
expect "statements then an expression on one line: printed, no continuation" '{3}
next' "$out"
expect "statements then an expression: exit status" 0 "$rc"
out=$(repl 'a = 2; b = 3; a * b, "s;t"\n')
expect "the expression after the last ';' (a ';' in a string is no separator)" '6	"s;t"' "$out"
out=$(repl 'a = 1; a.b\n'); rc=$?
expect_match "a real error after ';' still reports" "attempt to index" "$(cat "$tmp/err")"

out=$(repl '?dama.zeros\nx = dama.randn(2)\n?x:sum\nhelp(dama.nn.Linear)\n?nope\nprint("after")\n'); rc=$?
expect_match "?f prints the signature and doc" '^dama\.zeros\(d0, d1, \.\.\.\[, dtype\]\)' "$out"
expect_match "?x:method on a tensor" 'x:sum\(\[dims\[, keepdim\]\]\)' "$out"
expect_match "help(class) in the REPL" 'dama\.nn\.Linear\(in_features, out_features, bias\)    \(class\)' "$out"
expect_match "?unknown is named, and the REPL goes on" "no dama function, module or method named 'nope'.*
after" "$out"
expect "help does not fail the session" 0 "$rc"
out=$(repl 'help()\n')
expect_match "help() lists the modules" 'dama\.nn\.functional' "$out"

echo "$failures failure(s)"
[ "$failures" -eq 0 ]
