#!/usr/bin/env bash
# `reap synth --hf-out` folders, and an HF-pruned folder, read by llama.cpp's own converter give
# the tensors of the GGUF they came from (tests/hf_convert_crosscheck.py). Skipped (77) without
# torch. Every architecture and layout llama.cpp's converter reads (it does not read DeepSeek's
# fused layout).
#   tests/hf_convert_crosscheck.sh REAP LLAMA_SRC WORK_DIR
set -euo pipefail
reap=$1 src=$2 work=$3
here=$(cd "$(dirname "$0")" && pwd)
/usr/bin/python3 -c 'import torch, numpy' 2>/dev/null || exit 77
rm -rf "$work" && mkdir -p "$work"
check() { /usr/bin/python3 "$here/hf_convert_crosscheck.py" "$src" "$1" "$2" "$work"; }
for spec in qwen3moe:per-expert:2 qwen3moe:fused:2 llama:per-expert:2 deepseek2:per-expert:3 gpt-oss:fused:2 \
            nemotron_h_moe:per-expert:6; do
  IFS=: read -r arch layout layers <<< "$spec"
  m=$work/$arch-$layout
  "$reap" synth --arch "$arch" --layers "$layers" -o "$m.gguf" --hf-out "$m" --hf-layout "$layout" >/dev/null
  check "$m" "$m.gguf"
done
# A pruned folder converts to the GGUF pruned with the same plan (2 of every 4 experts kept).
m=$work/deepseek2-per-expert
/usr/bin/python3 -c '
import json
layer = lambda o: {"kept": [e for e in range(16) if (e + o) % 4 < 2], "dropped": [e for e in range(16) if (e + o) % 4 >= 2]}
print(json.dumps({"criterion": "test", "keep_ratio": 0.5, "n_expert": 16, "kept_experts": 8, "seed": 0,
                  "model": "", "stats": "", "layers": {"1": layer(0), "2": layer(1)}}))' > "$work/plan.json"
"$reap" prune -m "$m.gguf" --plan "$work/plan.json" -o "$work/pruned.gguf" --no-progress >/dev/null
"$reap" prune -m "$m" --plan "$work/plan.json" -o "$work/pruned-hf" --no-progress >/dev/null
check "$work/pruned-hf" "$work/pruned.gguf"
rm -rf "$work"  # a passing run leaves nothing behind (set -e: a failure keeps it)
