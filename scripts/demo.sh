#!/usr/bin/env bash
# The main job on the built-in default: generate the default synthetic MoE model (qwen3moe,
# 8 layers, 16 experts, planted dead/rare/weak experts) and inspect it.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$here/scripts/setup.sh" "$@"
reap="${REAP_BUILD_DIR:-$here/build}/bin/reap"
out="$here/out"
mkdir -p "$out"
"$reap" synth -o "$out/demo-qwen3moe.gguf"
"$reap" inspect "$out/demo-qwen3moe.gguf"
