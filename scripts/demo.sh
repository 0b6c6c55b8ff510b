#!/usr/bin/env bash
# The main job on the built-in default: generate the default synthetic MoE model (qwen3moe,
# 8 layers, 16 experts, planted dead/rare/weak experts), inspect it, and profile it on the
# shipped calibration sample (REAP statistics per expert), then prune half of the experts.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$here/scripts/setup.sh" "$@"
reap="${REAP_BUILD_DIR:-$here/build}/bin/reap"
out="$here/out"
mkdir -p "$out"
"$reap" synth -o "$out/demo-qwen3moe.gguf"
"$reap" inspect "$out/demo-qwen3moe.gguf"
"$reap" profile -m "$out/demo-qwen3moe.gguf" --data "$here/data/calibration/sample.jsonl" -o "$out/demo-stats.json"
/usr/bin/python3 - "$out/demo-stats.json" <<'PY' || true
import json, sys
s = json.load(open(sys.argv[1]))["0"]
order = sorted(range(len(s["reap"])), key=lambda e: s["reap"][e])
print("layer 0 experts by REAP score, lowest first:", order)
PY
"$reap" prune -m "$out/demo-qwen3moe.gguf" --stats "$out/demo-stats.json" --keep-ratio 0.5 -o "$out/demo-qwen3moe-pruned.gguf"
"$reap" inspect "$out/demo-qwen3moe-pruned.gguf" | head -6
