#!/usr/bin/env bash
# Does the llama.cpp engine at PREFIX run on this machine? Compiles scripts/engine_selfcheck.c
# against it and decodes 12 tokens of the committed tiny model on every core (~1 s).
#
#   scripts/engine_selfcheck.sh PREFIX "what the user should do if it does not"
#
# Exit 0 and one "[setup] engine self-check passed" line when it runs; otherwise exit 1 with one
# line naming the prefix, how it failed (the signal for a crash: SIGILL for an engine built for
# another CPU, SIGSEGV for the pinned release's AMX kernels) and what to do.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
prefix=${1:?usage: engine_selfcheck.sh PREFIX WHAT-TO-DO}
how=${2:-rebuild it for this machine}
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

lib=$(find "$prefix" -maxdepth 3 -name 'libllama.so' -print -quit 2>/dev/null)
[ -n "$lib" ] || die "no libllama.so under the llama.cpp prefix $prefix"
libdir=$(dirname "$lib")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc -std=c11 -O1 -o "$tmp/engine_selfcheck" "$here/scripts/engine_selfcheck.c" \
  -I"$prefix/include" -L"$libdir" -lllama -Wl,-rpath,"$libdir" 2>"$tmp/cc.log" \
  || { cat "$tmp/cc.log" >&2; die "cannot compile the engine self-check against $prefix"; }
rc=0
# In a subshell whose stderr is dropped: bash's own "Illegal instruction" job message would be a
# second line; the status (128 + signal) is all we need.
( LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
  timeout 120 "$tmp/engine_selfcheck" "$here/data/models/tiny-moe-q8_0.gguf" >"$tmp/out.log" 2>&1; exit $? ) 2>/dev/null || rc=$?
if [ "$rc" -eq 0 ]; then
  printf '[setup] engine self-check passed (%s)\n' "$prefix" >&2
  exit 0
fi
tail -5 "$tmp/out.log" >&2
[ "$rc" -eq 124 ] && die "the llama.cpp engine at $prefix did not decode 12 tokens of the tiny model in 120 s; $how"
if [ "$rc" -gt 128 ]; then
  sig="SIG$(kill -l $((rc - 128)) 2>/dev/null || echo $((rc - 128)))"
  die "the llama.cpp engine at $prefix dies with $sig decoding 12 tokens of the tiny model: it was built for another CPU or with kernels this machine does not allow; $how"
fi
die "the llama.cpp engine at $prefix fails to decode 12 tokens of the tiny model (exit $rc); $how"
