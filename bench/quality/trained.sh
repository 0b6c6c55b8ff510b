#!/usr/bin/env bash
# Quality benchmark on the committed trained model (issue 13): profile on one domain's
# calibration set, prune 25 %, 50 % and 75 % of the experts by every criterion (random: seeds
# 1, 2, 3, averaged), and measure with reap eval how far each pruned model is from the base on
# held-out text of both domains. Prints markdown tables for bench/RESULTS.md.
#   bench/quality/trained.sh [BUILD_DIR] [WORK_DIR] [MODEL] [CALIBRATION DOMAINS...]
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$here/build}
work=${2:-$(mktemp -d)}
model=${3:-$here/data/models/tiny-moe-q8_0.gguf}
shift $(( $# < 3 ? $# : 3 ))
calibs=("${@:-code}")
[ ${#calibs[@]} -gt 0 ] || calibs=(code)
mkdir -p "$work"
reap=$build/bin/reap
criteria="reap reap-renorm ean frequency weighted-frequency random:1 random:2 random:3"
echo "### Quality on the trained model $(basename "$model") ($(date -u +%Y-%m-%d), $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
for cal in "${calibs[@]}"; do
  stats=$work/$cal.json
  "$reap" profile -m "$model" --data "$here/data/calibration/$cal.jsonl" -o "$stats" -t 1 --no-progress >/dev/null
  models=()
  for ratio in 0.75 0.5 0.25; do
    for c in $criteria; do
      crit=${c%%:*}; seed=${c#*:}; [ "$seed" = "$c" ] && seed=42
      out=$work/$cal-$crit-$seed-$ratio.gguf
      "$reap" prune -m "$model" --stats "$stats" --keep-ratio "$ratio" --criterion "$crit" --seed "$seed" \
        -o "$out" --no-progress >/dev/null
      models+=("$out")
    done
  done
  for dom in code prose; do
    "$reap" eval -m "$model" --pruned "${models[@]}" --data "$here/data/text/$dom-heldout.txt" -c 128 \
      --base-logits "$work/$dom.lgt" -o "$work/$cal-on-$dom.eval.json" -t 1 --no-progress >/dev/null
    /usr/bin/python3 - "$work" "$cal" "$dom" <<'PY'
import json, sys, statistics
work, cal, dom = sys.argv[1:4]
rows = {r["model"]: r for r in json.load(open(f"{work}/{cal}-on-{dom}.eval.json"))}
base = next(iter(rows.values()))
print(f"\n#### calibrated on {cal}, evaluated on held-out {dom} (base PPL {base['ppl']:.3f}, {base['tokens_scored']} tokens)\n")
print("| criterion | 25 %: KL mean | KL p99 | top-1 | PPL | 50 %: KL mean | KL p99 | top-1 | PPL | 75 %: KL mean | KL p99 | top-1 | PPL |")
print("|---|" + "---|" * 12)
for crit in ["reap", "reap-renorm", "ean", "frequency", "weighted-frequency", "random"]:
    cells = []
    for ratio in ["0.75", "0.5", "0.25"]:
        seeds = ["1", "2", "3"] if crit == "random" else ["42"]
        rs = [rows[f"{cal}-{crit}-{s}-{ratio}.gguf"] for s in seeds]
        mean = lambda k: statistics.mean(r[k] for r in rs)
        cells += [f"{mean('kl_mean'):.4f}", f"{mean('kl_p99'):.3f}", f"{mean('top1_agreement'):.3f}", f"{mean('ppl'):.2f}"]
    print(f"| {crit}{' (mean of seeds 1-3)' if crit == 'random' else ''} | " + " | ".join(cells) + " |")
PY
  done
done
