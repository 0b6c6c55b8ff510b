#!/usr/bin/env bash
# The main job on the built-in default, end to end: generate the default synthetic MoE model
# (qwen3moe, 8 layers, 16 experts with planted dead, rare and weak experts), profile it on the
# shipped calibration sample, prune half of the experts by REAP, compare the pruned model with
# the original on held-out text, and write an HTML report of the statistics. Outputs in ./out/.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$here/scripts/setup.sh" "$@"
reap="${REAP_BUILD_DIR:-$here/build}/bin/reap"
out="$here/out"
mkdir -p "$out"
step() { printf '\n== %s\n' "$*"; }

step "1/6 synth: the default planted model"
"$reap" synth -o "$out/demo.gguf"
step "2/6 inspect"
"$reap" inspect "$out/demo.gguf" | sed -n '1,8p;/size after pruning/,$p'
step "3/6 profile on data/calibration/sample.jsonl"
"$reap" profile -m "$out/demo.gguf" --data "$here/data/calibration/sample.jsonl" -o "$out/demo-stats.json"
step "4/6 prune 50 % of the experts (criterion: reap) and, for comparison, by frequency"
"$reap" prune -m "$out/demo.gguf" --stats "$out/demo-stats.json" --keep-ratio 0.5 -o "$out/demo-reap50.gguf"
"$reap" prune -m "$out/demo.gguf" --stats "$out/demo-stats.json" --keep-ratio 0.5 --criterion frequency \
  -o "$out/demo-freq50.gguf"
step "5/6 eval on data/text/sample.txt (held out)"
"$reap" eval -m "$out/demo.gguf" --pruned "$out/demo-reap50.gguf" "$out/demo-freq50.gguf" \
  --data "$here/data/text/sample.txt" -c 128 -o "$out/demo-eval.json"
step "6/6 report"
"$reap" report "$out/demo-stats.json" --keep-ratio 0.5 -o "$out/demo-report.html" | tail -3
echo
echo "outputs in $out: demo.gguf, demo-stats.json, demo-reap50.gguf, demo-eval.json, demo-report.html"
