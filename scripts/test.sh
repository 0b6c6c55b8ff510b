#!/usr/bin/env bash
# Set up (if needed), build, and run the whole test suite. This is what CI runs.
#
#   0. every C++ file is as clang-format leaves it (scripts/format.sh --check): before anything
#      else where clang-format is installed, so that a formatting slip fails in seconds; on a
#      fresh machine right after setup, which installs it;
#   1. the release build with warnings as errors, and every test (ctest, all cores);
#   2. a second build, with clang, AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/):
#      the GoogleTest suites under the sanitizers, and each libFuzzer harness (fuzz/) for a few
#      seconds over its committed corpus (set REAP_SKIP_SANITIZERS=1 to skip this step locally).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${REAP_BUILD_DIR:-$here/build}
jobs=${REAP_JOBS:-$(nproc)}

check_format() {
  "$here/scripts/format.sh" --check ||
    { echo "[test] the files above are not as clang-format leaves them: run scripts/format.sh" >&2; exit 1; }
}
format_checked=0
if command -v clang-format >/dev/null 2>&1; then check_format; format_checked=1; fi
REAP_CMAKE_FLAGS="-DREAP_WERROR=ON ${REAP_CMAKE_FLAGS:-}" "$here/scripts/setup.sh" "$@"
[ "$format_checked" = 1 ] || check_format
ctest --test-dir "$build_dir" -j "$jobs" --output-on-failure

if [ "${REAP_SKIP_SANITIZERS:-0}" != 1 ]; then
  asan_dir=${REAP_ASAN_BUILD_DIR:-$here/build-asan}
  prefix=$(cat "$build_dir/llama-prefix.txt")
  echo "[test] AddressSanitizer + UndefinedBehaviorSanitizer build in $asan_dir" >&2
  # -O1 with line tables only: what AddressSanitizer recommends, enough for file:line in every
  # report, and a shorter build than RelWithDebInfo's -O2 -g (the sanitizer build is the longest
  # step of CI). Each fuzz harness replays its corpus and mutates for REAP_FUZZ_SECONDS (10).
  CC=clang CXX=clang++ cmake -S "$here" -B "$asan_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -DNDEBUG" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -DNDEBUG" \
    -DREAP_FUZZ_SECONDS="${REAP_FUZZ_SECONDS:-10}" \
    -DCMAKE_PREFIX_PATH="$prefix" -DREAP_SANITIZE=ON -DREAP_FUZZ=ON -DREAP_WERROR=ON >/dev/null
  cmake --build "$asan_dir" -j "$jobs"
  # llama.cpp's own one-time allocations (backend registry) are not ours to free at exit.
  export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  # The architecture matrix (label "matrix": tests/test_arch_matrix.cpp) runs in the release pass
  # only: the same code paths as the unit tests, 50+ times over, too slow under the sanitizers.
  # So do the SIGKILL and SIGTERM kill/resume runs (~200 s each there; SIGINT goes through the
  # same handler, checkpoint and resume code), the SIGTERM half of the interrupted prune and eval
  # runs (SIGINT, kept, takes the same path) and the two statistics-equality runs of
  # test_llama_flags that profile a model twice. And the three slowest equality checks at scale
  # (SynthScale: synth's released shapes and its row-dictionary path, ~110 MB of weights a layer;
  # TaskEval against llama-perplexity's own accuracy): the same code as the small synth and task
  # tests, minutes under the sanitizers, with the suite at the 30-minute line.
  ctest --test-dir "$asan_dir" -j "$jobs" --output-on-failure -LE matrix \
    -E '^(Arch/LlamaPerplexityRuns\.SynthModelAndItsPrunedModel/.*|report_renders_in_chromium|Signals/Interrupt\.ResumeAfterAKillEqualsAnUninterruptedRun/(9|15)|Signals/InterruptedRun\..*/SIGTERM( .*)?|LlamaFlags\.(OutputHeadSkippedGivesIdenticalStatistics|FlashAttentionOnGivesTheSameStatistics)|SynthScale\..*|TaskEval\.AccuracyEqualsLlamaPerplexitysOwn)$'
fi
