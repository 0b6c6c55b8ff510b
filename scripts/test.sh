#!/usr/bin/env bash
# Set up (if needed), build, and run the whole test suite. This is what CI runs.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$here/scripts/setup.sh" "$@"
ctest --test-dir "${REAP_BUILD_DIR:-$here/build}" -j "${REAP_JOBS:-$(nproc)}" --output-on-failure
