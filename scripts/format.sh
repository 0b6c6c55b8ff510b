#!/usr/bin/env bash
# Formats every C++ file of the project with .clang-format (clang-format 14, Debian 12).
#   scripts/format.sh          rewrite in place
#   scripts/format.sh --check  list files that differ, exit 1 if any
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v clang-format >/dev/null 2>&1 || { echo "format.sh: clang-format not found (scripts/setup.sh installs it)" >&2; exit 1; }
mapfile -t files < <(git ls-files '*.cpp' '*.h')
if [ "${1:-}" = "--check" ]; then
  bad=0
  for f in "${files[@]}"; do
    clang-format --style=file "$f" | cmp -s - "$f" || { echo "$f"; bad=1; }
  done
  exit $bad
fi
clang-format --style=file -i "${files[@]}"
