#!/usr/bin/env bash
# The main job end to end, on the committed trained model (data/models/tiny-moe-q8_0.gguf: a
# small qwen3moe trained on source code and English man pages, tools/train-tiny-moe/): "how far
# can I prune it?". `reap sweep` profiles it once on one domain's calibration set, prunes 25,
# 50, 62.5 and 75 % of the experts by REAP and, for comparison, by frequency, evaluates every
# pruned model against the original on held-out code AND prose (the calibration domain matters
# as much as the criterion), on greedy continuations of held-out prompts and on two task files
# cut from the held-out text (data/tasks/), and names the smallest model within the tolerance.
# Then an HTML report of the statistics. Outputs in ./out/ (the sweep's page: out/sweep/sweep.html).
#   REAP_DEMO_DOMAIN=prose scripts/demo.sh   calibrate on prose instead of code
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The demo runs only `reap`: the 34 test executables are scripts/test.sh's (half the first build).
REAP_BUILD_TARGETS=${REAP_BUILD_TARGETS:-reap} "$here/scripts/setup.sh" "$@"
reap="${REAP_BUILD_DIR:-$here/build}/bin/reap"
model="$here/data/models/tiny-moe-q8_0.gguf"
cal=${REAP_DEMO_DOMAIN:-code}
case $cal in code | prose) ;; *) echo "REAP_DEMO_DOMAIN must be code or prose" >&2; exit 2 ;; esac
out="$here/out"
mkdir -p "$out"
rm -rf "$out/sweep"
step() { printf '\n== %s\n' "$*"; }
# One thread: the model is tiny (3.6 M parameters), and on a busy machine ggml's spinning
# thread barrier makes two threads many times slower than one.
threads=(-t 1)

step "1/3 inspect the trained model"
"$reap" inspect "$model" | sed -n '1,8p;/size after pruning/,$p'
step "2/3 sweep: calibrate on data/calibration/$cal.jsonl, prune by reap and frequency, evaluate on code and prose"
# Tolerance: worst-domain KL 1.0 nats/token (the model is tiny: every prune costs the other domain
# a lot), degeneration no more than 0.1 above the base's own, task accuracy at least 0.9 of the base's.
"$reap" sweep -m "$model" --calib "$here/data/calibration/$cal.jsonl" \
  --data code="$here/data/text/code-heldout.txt" --data prose="$here/data/text/prose-heldout.txt" \
  --prompts "$here/data/prompts/heldout.jsonl" --gen-tokens 48 \
  --multiple-choice "$here/data/tasks/prose-continuation.bin" --hellaswag "$here/data/tasks/prose-hellaswag.txt" \
  -c 128 --max-kl 1.0 -o "$out/sweep" "${threads[@]}"
step "3/3 report of the statistics"
"$reap" report "$out/sweep/stats.json" --keep-ratio 0.5 -o "$out/demo-report.html" | tail -3
echo
echo "outputs in $out: sweep/sweep.html (curves and table), sweep/sweep.json, the chosen model in sweep/, demo-report.html"
