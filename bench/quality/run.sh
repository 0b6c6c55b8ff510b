#!/usr/bin/env bash
# Quality benchmark (issue 5): on planted synthetic models of several architectures, prune 25 %
# and 50 % of the experts by each criterion and measure with reap eval how far each pruned model
# is from the base (KL divergence, top-1 agreement, perplexity) on held-out text. Also checks
# that REAP ranks every planted dead expert below every healthy one.
#   bench/quality/run.sh [BUILD_DIR] [WORK_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$here/build}
work=${2:-$(mktemp -d)}
mkdir -p "$work"
reap=$build/bin/reap
calib=$here/data/calibration/sample.jsonl
heldout=$here/data/text/sample.txt
criteria="reap reap-renorm ean frequency weighted-frequency random:1 random:2 random:3"

echo "### Quality: KL divergence base -> pruned on data/text/sample.txt ($(date -u +%Y-%m-%d))"
echo
echo "Calibration: data/calibration/sample.jsonl (80 samples); held-out: data/text/sample.txt (-c 128)."
echo "Lower KL and higher top-1 agreement are better. random: mean of seeds 1, 2, 3."
for arch in qwen3moe deepseek2 nemotron_h_moe gpt-oss; do
  m=$work/$arch.gguf
  "$reap" synth --arch "$arch" -o "$m" >/dev/null
  "$reap" profile -m "$m" --data "$calib" -o "$work/$arch.json" --no-progress >/dev/null
  "$reap" inspect --json "$m" > "$work/$arch.inspect.json"
  rm -f "$work/$arch.lgt"
  models=()
  for ratio in 0.75 0.5; do
    for c in $criteria; do
      crit=${c%%:*}; seed=${c#*:}; [ "$seed" = "$c" ] && seed=42
      out=$work/$arch-$crit-$seed-$ratio.gguf
      "$reap" prune -m "$m" --stats "$work/$arch.json" --keep-ratio "$ratio" --criterion "$crit" --seed "$seed" \
        -o "$out" --no-progress --plan-out "$out.plan.json" >/dev/null
      models+=("$out")
    done
  done
  "$reap" eval -m "$m" --pruned "${models[@]}" --data "$heldout" -c 128 --base-logits "$work/$arch.lgt" \
    -o "$work/$arch.eval.json" --no-progress >/dev/null
  /usr/bin/python3 - "$arch" "$work" <<'PY'
import json, sys, statistics
arch, work = sys.argv[1], sys.argv[2]
rows = {r["model"]: r for r in json.load(open(f"{work}/{arch}.eval.json"))}
info = json.load(open(f"{work}/{arch}.inspect.json"))
stats = json.load(open(f"{work}/{arch}.json"))
print(f"\n#### {arch}: {info['n_expert']} experts, {info['n_expert_used']} per token, MoE layers {info['moe_layers']}\n")
print("| criterion | prune 25 %: KL mean | KL p99 | top-1 | PPL | prune 50 %: KL mean | KL p99 | top-1 | PPL |")
print("|---|---|---|---|---|---|---|---|---|")
for crit in ["reap", "reap-renorm", "ean", "frequency", "weighted-frequency", "random"]:
    cells = []
    for ratio in ["0.75", "0.5"]:
        seeds = ["1", "2", "3"] if crit == "random" else ["42"]
        rs = [rows[f"{arch}-{crit}-{s}-{ratio}.gguf"] for s in seeds]
        mean = lambda k: statistics.mean(r[k] for r in rs)
        cells += [f"{mean('kl_mean'):.4f}", f"{mean('kl_p99'):.4f}", f"{mean('top1_agreement'):.3f}", f"{mean('ppl'):.1f}"]
    print(f"| {crit} | " + " | ".join(cells) + " |")
# Does REAP rank every planted dead expert below every healthy (unplanted) one?
ok, total = 0, 0
for il, p in info["planted"].items():
    reap = stats[il]["reap"]
    special = set(p["dead"] + p["rare"] + p["weak"])
    healthy = [reap[e] for e in range(len(reap)) if e not in special]
    total += 1
    ok += max(reap[e] for e in p["dead"]) < min(healthy)
print(f"\nREAP ranks all planted dead experts below all healthy experts in {ok}/{total} MoE layers.")
# Which planted experts each criterion drops at 25 %
for crit in ["reap", "reap-renorm", "frequency", "ean"]:
    plan = json.load(open(f"{work}/{arch}-{crit}-42-0.75.gguf.plan.json"))
    kinds = {"dead": 0, "rare": 0, "weak": 0, "healthy": 0}
    for il, lp in plan["layers"].items():
        p = info["planted"][il]
        for e in lp["dropped"]:
            k = "dead" if e in p["dead"] else "rare" if e in p["rare"] else "weak" if e in p["weak"] else "healthy"
            kinds[k] += 1
    print(f"- {crit} at 25 %: drops {kinds['dead']} dead, {kinds['rare']} rare, {kinds['weak']} weak, {kinds['healthy']} healthy experts")
PY
done
