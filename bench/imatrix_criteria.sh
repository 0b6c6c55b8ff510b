#!/usr/bin/env bash
# The imatrix criteria against reap's own (issue 30 item 5), on the committed trained model: an
# importance matrix from llama.cpp's llama-imatrix over the calibration text of code, prose and
# both, `reap prune --imatrix --criterion imatrix-sum|imatrix-mean` (no stats), against reap,
# reap-sum and reap-sq-sum from `reap profile` statistics of the same text (both: the two stats
# files by prune's default --stats-combine). Prints, as Markdown (bench/RESULTS.md):
#   - per MoE layer, Spearman's rank correlation of imatrix-sum vs ean-sum and of imatrix-mean vs
#     ean (the same calibration text; scores from the plans of --dry-run);
#   - the KL base -> pruned on held-out code and prose at 25 and 50 % pruned, worst domain marked,
#     as bench/quality_table.sh measures it.
#   bench/imatrix_criteria.sh [OUT_DIR]          (default: out/imatrix-criteria)
#   REAP_BIN=path/to/reap  LLAMA_IMATRIX=path/to/llama-imatrix
# Reuses what OUT_DIR holds: remove it to start again.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
reap=${REAP_BIN:-$here/build/bin/reap}
imatrix_bin=${LLAMA_IMATRIX:-$(cat "$here/build/llama-prefix.txt" 2>/dev/null)/bin/llama-imatrix}
model=$here/data/models/tiny-moe-q8_0.gguf
out=${1:-$here/out/imatrix-criteria}
mkdir -p "$out"
# The calibration sets' text as plain text, one sample after another, for llama-imatrix.
for d in code prose; do
  [ -f "$out/$d.txt" ] || /usr/bin/python3 -c '
import json, sys
print("\n\n".join(json.loads(l)["text"] for l in open(sys.argv[1]) if l.strip()))' \
    "$here/data/calibration/$d.jsonl" > "$out/$d.txt"
done
[ -f "$out/both.txt" ] || cat "$out/code.txt" "$out/prose.txt" > "$out/both.txt"
for d in code prose both; do
  [ -f "$out/$d.imatrix.gguf" ] || "$imatrix_bin" -m "$model" -f "$out/$d.txt" -c 128 -t 1 \
    -o "$out/$d.imatrix.gguf" > "$out/imatrix-$d.log" 2>&1
done
for d in code prose; do
  [ -f "$out/$d.json" ] || "$reap" profile -m "$model" --data "$here/data/calibration/$d.jsonl" -o "$out/$d.json" \
    -t 1 --no-progress > "$out/profile-$d.log" 2>&1
done
stats_of() {
  case $1 in
    code | prose) echo "--stats $out/$1.json" ;;
    both) echo "--stats $out/code.json --stats $out/prose.json" ;;
  esac
}
models=()
for cal in code prose both; do
  mkdir -p "$out/$cal"
  for c in reap reap-sum reap-sq-sum ean-sum ean imatrix-sum imatrix-mean; do
    if [[ $c == imatrix-* ]]; then src=(--imatrix "$out/$cal.imatrix.gguf"); else src=($(stats_of "$cal")); fi
    [ -f "$out/$cal/$c-plan.json" ] || "$reap" prune -m "$model" "${src[@]}" --criterion "$c" --keep-ratio 0.5 \
      --dry-run --plan-out "$out/$cal/$c-plan.json" > /dev/null 2>&1
    case $c in ean-sum | ean) continue ;; esac
    # Names unique over the calibrations: eval's table names a model by its file name.
    [ -f "$out/$cal/$cal-$c-keep0.50.gguf" ] || "$reap" prune -m "$model" "${src[@]}" --criterion "$c" \
      --keep-ratio 0.75,0.5 -o "$out/$cal/$cal-$c-keep{keep}.gguf" --no-progress > "$out/$cal/prune-$c.log" 2>&1
    models+=("$out/$cal/$cal-$c-keep0.75.gguf" "$out/$cal/$cal-$c-keep0.50.gguf")
  done
done
[ -f "$out/eval.json" ] || "$reap" eval -m "$model" --pruned "${models[@]}" \
  --data code="$here/data/text/code-heldout.txt" --data prose="$here/data/text/prose-heldout.txt" -c 128 -t 1 \
  --no-progress --base-logits "$out/base-logits" -o "$out/eval.json" > "$out/eval.log" 2>&1
/usr/bin/python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
def ranks(v):
    order = sorted(range(len(v)), key=lambda i: v[i])
    r = [0.0] * len(v)
    i = 0
    while i < len(order):  # ties share their mean rank
        j = i
        while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2
        i = j + 1
    return r
def spearman(a, b):
    ra, rb = ranks(a), ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    va = sum((x - ma) ** 2 for x in ra) ** 0.5
    vb = sum((y - mb) ** 2 for y in rb) ** 0.5
    return cov / (va * vb) if va and vb else float("nan")
def scores(cal, c):
    p = json.load(open(f"{out}/{cal}/{c}-plan.json"))
    out_ = {}
    for il, l in p["layers"].items():
        if "kept_scores" not in l:
            continue
        s = {**l["kept_scores"], **l["dropped_scores"]}
        out_[int(il)] = [s[str(e)] for e in range(len(s))]
    return out_
print("Spearman's rank correlation per MoE layer (min / mean / max over the layers):\n")
print("| calibration | imatrix-sum vs ean-sum | imatrix-mean vs ean | imatrix-sum vs reap-sum |")
print("|---|---|---|---|")
for cal in ("code", "prose", "both"):
    cells = []
    for a, b in (("imatrix-sum", "ean-sum"), ("imatrix-mean", "ean"), ("imatrix-sum", "reap-sum")):
        sa, sb = scores(cal, a), scores(cal, b)
        rho = [spearman(sa[il], sb[il]) for il in sorted(sa)]
        cells.append(f"{min(rho):.2f} / {sum(rho) / len(rho):.2f} / {max(rho):.2f}")
    print(f"| {cal} | " + " | ".join(cells) + " |")
ev = {r["model"]: r for r in json.load(open(f"{out}/eval.json"))}
print("\nKL divergence base -> pruned (nats/token) on held-out code / prose; **bold**: the worst domain;"
      " last columns: the worst domain's KL / reap's.\n")
print("| calibration | criterion | 25 %: code | prose | 50 %: code | prose | worst / reap's, 25 % | 50 % |")
print("|---|---|---|---|---|---|---|---|")
for cal in ("code", "prose", "both"):
    worst = {}
    rows = []
    for c in ("reap", "reap-sum", "reap-sq-sum", "imatrix-sum", "imatrix-mean"):
        cells = []
        for keep in ("0.75", "0.50"):
            m = ev[f"{cal}-{c}-keep{keep}.gguf"]
            kl = {d: m["domains"][d]["kl_mean"] for d in ("code", "prose")}
            worst[(c, keep)] = max(kl.values())
            cells += [f"**{v:.3f}**" if d == m["worst_kl_domain"] else f"{v:.3f}" for d, v in kl.items()]
        rows.append((c, cells))
    for c, cells in rows:
        ratio = [worst[(c, k)] / worst[("reap", k)] for k in ("0.75", "0.50")]
        print(f"| {cal} | {c} | " + " | ".join(cells) + " | " + " | ".join(f"{x:.2f}" for x in ratio) + " |")
PY
