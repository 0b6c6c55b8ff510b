#!/usr/bin/env bash
# The size/quality frontier of pruning x quantization on the committed trained model (issue 30,
# item 6): `reap sweep --quant` of data/models/tiny-moe-q8_0.gguf, pruned 0/25/50 % by reap and
# quantized to each type, every point evaluated against the original on held-out code and prose
# (-c 128, every window). Per calibration domain two sweeps with the same statistics: with the
# importance matrix (the sweep's own profile collects it; prune cuts it per pruned model) and
# without it (--stats of the first sweep, no --imatrix). Prints one Markdown table per
# calibration (bench/RESULTS.md) and the frontier of each sweep.
#   bench/quant_frontier.sh [OUT_DIR] [CALIBRATION...]   (default: out/quant-frontier code prose)
#   REAP_BIN=path/to/reap  REAP_QF_TYPES=Q8_0,Q5_0,Q4_0
# Starts each sweep afresh (removes its folder).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
reap=${REAP_BIN:-$here/build/bin/reap}
model=$here/data/models/tiny-moe-q8_0.gguf
out=${1:-$here/out/quant-frontier}
shift || true
cals=("$@")
[ ${#cals[@]} -gt 0 ] || cals=(code prose)
types=${REAP_QF_TYPES:-Q8_0,Q5_0,Q4_0}
mkdir -p "$out"
common=(--data code="$here/data/text/code-heldout.txt" --data prose="$here/data/text/prose-heldout.txt"
  -c 128 --ratios 0.25,0.5 --criteria reap --quant "$types" --max-kl 1.0 -t 1 --no-progress --keep-all)
for cal in "${cals[@]}"; do
  rm -rf "$out/$cal-imatrix" "$out/$cal-plain"
  /usr/bin/time -f "%e s" "$reap" sweep -m "$model" --calib "$here/data/calibration/$cal.jsonl" "${common[@]}" \
    -o "$out/$cal-imatrix" > "$out/$cal-imatrix.log" 2>&1
  cp "$out/$cal-imatrix/stats.json" "$out/$cal-stats.json"
  /usr/bin/time -f "%e s" "$reap" sweep -m "$model" --stats "$out/$cal-stats.json" "${common[@]}" \
    -o "$out/$cal-plain" > "$out/$cal-plain.log" 2>&1
done
python3 - "$out" "${cals[@]}" << 'EOF'
import json, sys
out, cals = sys.argv[1], sys.argv[2:]
def load(p):
    r = json.load(open(p))
    rows = {}
    for m in r["models"]:
        rows[(m["prune_ratio"], m["quant"])] = m
    return r, rows
for cal in cals:
    ri, wi = load(f"{out}/{cal}-imatrix/sweep.json")
    rp, wp = load(f"{out}/{cal}-plain/sweep.json")
    base = ri["base"]
    print(f"\ncalibration: {cal}; base {base['file_size']/2**20:.2f} MiB\n")
    print("| pruned % | quant | size MiB | KL code | KL prose | worst KL, imatrix | worst KL, no imatrix | frontier (imatrix) | frontier (none) |")
    print("|---|---|---|---|---|---|---|---|---|")
    keys = sorted(wi, key=lambda k: -wi[k]["file_size"])
    for k in keys:
        m, p = wi[k], wp.get(k)
        d = m["domains"]
        quant = k[1]
        print(f"| {k[0]*100:g} | {quant} | {m['file_size']/2**20:.2f} | {d['code']['kl_mean']:.4f} | {d['prose']['kl_mean']:.4f} | "
              f"{m['worst_kl']:.4f} | {(p['worst_kl'] if quant != 'none' else m['worst_kl']):.4f} | "
              f"{'yes' if m['on_frontier'] else ''} | {'yes' if p and p['on_frontier'] else ''} |")
    for name, r in (("imatrix", ri), ("no imatrix", rp)):
        print(f"\nanswer at worst KL <= 1.0 ({name}): {r['chosen'].split('/')[-1]}")
EOF
