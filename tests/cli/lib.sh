# Shared by the tests/cli scripts: a temporary HOME, and expect/expect_match that count failures.
# Source it after setting DAMA: . "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export HOME="$tmp" DAMA_HISTORY="$tmp/history"
failures=0

expect() { # name expected actual
  if [ "$2" == "$3" ]; then
    echo "ok   $1"
  else
    echo "FAIL $1"
    echo "  expected: $(printf '%q' "$2")"
    echo "  got:      $(printf '%q' "$3")"
    failures=$((failures + 1))
  fi
}
expect_match() { # name extended-regex actual
  if printf '%s' "$3" | grep -Eq -- "$2"; then
    echo "ok   $1"
  else
    echo "FAIL $1: no match for /$2/ in:"
    printf '%s\n' "$3" | sed 's/^/    /'
    failures=$((failures + 1))
  fi
}
