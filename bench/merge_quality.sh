#!/usr/bin/env bash
# Merging against pruning at equal size (issue 32 item 4), on the committed trained model: one
# `reap sweep` per calibration set (code, prose, both) with the pruned points of reap, reap-sum
# and random and the merged points of ream and msmoe at 25/50/75 % of the experts removed, each
# evaluated on held-out code and prose (-c 128, every window), the held-out prompts (greedy, 48
# tokens: degeneration) and two task files. Prints one Markdown table (bench/RESULTS.md): per
# calibration, method and ratio the worst-domain KL, the task scores and the degeneration rate.
# Then what alignment buys: the code calibration's merged points again with --merge-align none,
# evaluated on the same windows (the sweep's base logits).
#   bench/merge_quality.sh [OUT_DIR]           (default: out/merge-quality)
#   REAP_BIN=path/to/reap
# Reuses a calibration's finished sweep (OUT_DIR/<cal>/sweep.json): remove it to measure again.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
reap=${REAP_BIN:-$here/build/bin/reap}
model=$here/data/models/tiny-moe-q8_0.gguf
out=${1:-$here/out/merge-quality}
mkdir -p "$out"
common=(--data code="$here/data/text/code-heldout.txt" --data prose="$here/data/text/prose-heldout.txt"
  --prompts "$here/data/prompts/heldout.jsonl" --gen-tokens 48
  --multiple-choice "$here/data/tasks/prose-continuation.bin" --hellaswag "$here/data/tasks/prose-hellaswag.txt"
  -c 128 --ratios 0.25,0.5,0.75 --criteria reap,reap-sum,random --merge ream,msmoe --max-kl 1.0 -t 1 --no-progress
  --keep-all)
for cal in code prose both; do
  [ -f "$out/$cal/sweep.json" ] && continue
  rm -rf "$out/$cal"
  case $cal in
    both) calib=(--calib "$here/data/calibration/code.jsonl" --calib "$here/data/calibration/prose.jsonl") ;;
    *) calib=(--calib "$here/data/calibration/$cal.jsonl") ;;
  esac
  /usr/bin/time -f "%e s" "$reap" sweep -m "$model" "${calib[@]}" "${common[@]}" -o "$out/$cal" \
    > "$out/$cal.log" 2>&1
done
noalign=()
for m in ream msmoe; do
  for keep in 0.75 0.5 0.25; do
    f="$out/noalign/$m-keep$keep.gguf"
    mkdir -p "$out/noalign"
    [ -f "$f" ] || "$reap" prune -m "$model" --stats "$out/code/stats.json" --keep-ratio "$keep" --merge "$m" \
      --merge-align none -o "$f" --no-progress > /dev/null 2>&1
    noalign+=("$f")
  done
done
[ -f "$out/noalign/eval.json" ] || "$reap" eval -m "$model" --pruned "${noalign[@]}" \
  --data code="$here/data/text/code-heldout.txt" --data prose="$here/data/text/prose-heldout.txt" -c 128 -t 1 \
  --base-logits "$out/code/base-logits" --no-progress -o "$out/noalign/eval.json" > "$out/noalign/eval.log" 2>&1
/usr/bin/python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
print("| calibration | method | removed | worst-domain KL | / reap's | multiple choice | hellaswag | degeneration |")
print("|---|---|---|---|---|---|---|---|")
for cal in ("code", "prose", "both"):
    r = json.load(open(f"{out}/{cal}/sweep.json"))
    base = r["base"]
    rows = {(m["criterion"], m["prune_ratio"]): m for m in r["models"] if m.get("quant", "none") == "none"}
    def task(m, name):
        t = m.get("tasks", {}).get(name)
        return f"{t['accuracy']:.3f}" if t else "-"
    def degen(m):
        g = m.get("generation")
        return f"{g['degeneration']:.3f}" if g else "-"
    print(f"| {cal} | base | 0 % | 0 | - | {task(base, 'multiple_choice')} | {task(base, 'hellaswag')} | {degen(base)} |")
    for ratio in (0.25, 0.5, 0.75):
        for method in ("reap", "reap-sum", "random", "ream", "msmoe"):
            m = rows[(method, ratio)]
            ratio_to_reap = m["worst_kl"] / rows[("reap", ratio)]["worst_kl"]
            print(f"| {cal} | {method} | {ratio * 100:g} % | {m['worst_kl']:.3f} ({m['worst_kl_domain']}) "
                  f"| {ratio_to_reap:.2f} | {task(m, 'multiple_choice')} | {task(m, 'hellaswag')} | {degen(m)} |")
print("\nWhat alignment buys (calibration: code): worst-domain KL with the members' neurons matched to the"
      " centroid's (weights, the default) and without (none).\n")
print("| method | removed | weights | none |")
print("|---|---|---|---|")
code = {(m["criterion"], m["prune_ratio"]): m for m in json.load(open(f"{out}/code/sweep.json"))["models"]}
ev = {r["model"]: r for r in json.load(open(f"{out}/noalign/eval.json"))}
for method in ("ream", "msmoe"):
    for keep, ratio in (("0.75", 0.25), ("0.5", 0.5), ("0.25", 0.75)):
        print(f"| {method} | {ratio * 100:g} % | {code[(method, ratio)]['worst_kl']:.3f} "
              f"| {ev[f'{method}-keep{keep}.gguf']['worst_kl']:.3f} |")
PY
