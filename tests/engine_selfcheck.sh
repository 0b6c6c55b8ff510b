#!/usr/bin/env bash
# scripts/engine_selfcheck.sh (setup's check that the engine runs here, issue 20): passes on the
# engine this build links against, and reports an engine that dies of SIGILL in one line that
# names the prefix, the signal and what to do, exit 1.
#   engine_selfcheck.sh LIBLLAMA SIGILL_SHIM
set -uo pipefail
lib=$1 shim=$2
check="$(dirname "$0")/../scripts/engine_selfcheck.sh"
prefix=$(dirname "$lib")
while [ "$prefix" != / ] && [ ! -f "$prefix/include/llama.h" ]; do prefix=$(dirname "$prefix"); done
[ -f "$prefix/include/llama.h" ] || { echo "no include/llama.h above $lib" >&2; exit 1; }
fail=0

err=$("$check" "$prefix" "do this" 2>&1) || { echo "FAIL: the engine in use fails its self-check: $err"; fail=1; }

rc=0
err=$(LD_PRELOAD="$shim" "$check" "$prefix" "do this" 2>&1) || rc=$?
last=$(printf '%s\n' "$err" | tail -1)
[ "$rc" -eq 1 ] || { echo "FAIL: a SIGILL engine: exit $rc, expected 1"; fail=1; }
[ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] || { echo "FAIL: a SIGILL engine: expected one line, got:"; echo "$err"; fail=1; }
case "$last" in
  "[setup] error: the llama.cpp engine at $prefix dies with SIGILL"*"; do this") ;;
  *) echo "FAIL: a SIGILL engine: last line is: $last"; fail=1 ;;
esac
[ $fail -eq 0 ] && echo "engine self-check: passes here, reports SIGILL in one line"
exit $fail
