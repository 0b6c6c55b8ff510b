#!/usr/bin/env bash
# The main job end to end, on the committed trained model (data/models/tiny-moe-q8_0.gguf: a
# small qwen3moe trained on source code and English man pages, tools/train-tiny-moe/). Profile
# it on one domain's calibration set, prune 25 % and 50 % of the experts by REAP and, for
# comparison, by frequency, evaluate every pruned model against the original on held-out text of
# the same domain and of the other one (the calibration domain matters as much as the
# criterion), and write an HTML report of the statistics. Outputs in ./out/.
#   REAP_DEMO_DOMAIN=prose scripts/demo.sh   calibrate on prose instead of code
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$here/scripts/setup.sh" "$@"
reap="${REAP_BUILD_DIR:-$here/build}/bin/reap"
model="$here/data/models/tiny-moe-q8_0.gguf"
cal=${REAP_DEMO_DOMAIN:-code}
case $cal in code) other=prose ;; prose) other=code ;; *) echo "REAP_DEMO_DOMAIN must be code or prose" >&2; exit 2 ;; esac
out="$here/out"
mkdir -p "$out"
step() { printf '\n== %s\n' "$*"; }
# One thread: the model is tiny (3.6 M parameters), and on a busy machine ggml's spinning
# thread barrier makes two threads many times slower than one.
threads=(-t 1)

step "1/6 inspect the trained model"
"$reap" inspect "$model" | sed -n '1,8p;/size after pruning/,$p'
step "2/6 profile on data/calibration/$cal.jsonl"
"$reap" profile -m "$model" --data "$here/data/calibration/$cal.jsonl" -o "$out/demo-stats.json" "${threads[@]}"
step "3/6 prune 25 % and 50 % of the experts by reap and, for comparison, by frequency"
pruned=()
for keep in 0.75 0.5; do
  pct=$(awk -v k="$keep" 'BEGIN { printf "%d", (1 - k) * 100 + 0.5 }')
  for c in reap frequency; do
    "$reap" prune -m "$model" --stats "$out/demo-stats.json" --keep-ratio "$keep" --criterion "$c" \
      -o "$out/demo-$c$pct.gguf" --no-progress | tail -1
    pruned+=("$out/demo-$c$pct.gguf")
  done
done
step "4/6 eval on data/text/$cal-heldout.txt (held out, the calibration's domain)"
"$reap" eval -m "$model" --pruned "${pruned[@]}" --data "$here/data/text/$cal-heldout.txt" -c 128 \
  -o "$out/demo-eval-$cal.json" "${threads[@]}" --no-progress
step "5/6 eval on data/text/$other-heldout.txt (held out, the other domain)"
"$reap" eval -m "$model" --pruned "${pruned[@]}" --data "$here/data/text/$other-heldout.txt" -c 128 \
  -o "$out/demo-eval-$other.json" "${threads[@]}" --no-progress
step "6/6 report"
"$reap" report "$out/demo-stats.json" --keep-ratio 0.5 -o "$out/demo-report.html" | tail -3
echo
echo "outputs in $out: demo-stats.json, demo-{reap,frequency}{25,50}.gguf, demo-eval-{code,prose}.json, demo-report.html"
