#!/usr/bin/env bash
# The quality table of the committed trained model (issue 24): every criterion of the registry
# (src/stats/criteria.cpp) x pruning 25/50/75 % of the experts x calibration on code, prose and
# both (two stats files combined by prune's default --stats-combine rule), each pruned model
# evaluated against the base on held-out code and prose (KL, top-1) and, with REAP_QT_TASKS=1, on
# one task file per domain (code-continuation multiple choice, prose winogrande; 150 tasks each,
# about 5x the cost of the KL). Prints the table as Markdown (bench/RESULTS.md).
#   bench/quality_table.sh [OUT_DIR] [CALIBRATION...]     (default: out/quality code prose both)
# A CALIBRATION both-tokens, both-mean or both-max combines code and prose by that --stats-combine
# rule (the comparison of the rules: REAP_QT_CRITERIA=reap ... both-tokens both-mean both-max).
#   REAP_BIN=path/to/reap  REAP_QT_TASKS=1  REAP_QT_CRITERIA="reap frequency"
# Reuses what OUT_DIR holds (stats, pruned models, evals): remove it to start again.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
reap=${REAP_BIN:-$here/build/bin/reap}
model=$here/data/models/tiny-moe-q8_0.gguf
out=${1:-$here/out/quality}
shift || true
cals=("$@")
[ ${#cals[@]} -gt 0 ] || cals=(code prose both)
# The registry's order (reap prune --help lists the same).
criteria=(${REAP_QT_CRITERIA:-reap ean frequency weighted-frequency reap-renorm reap-sum ean-sum max-activation random})
mkdir -p "$out"
# One thread: the model is tiny, and ggml's spinning barrier makes two threads slower on a busy machine.
for d in code prose; do
  [ -f "$out/$d.json" ] || "$reap" profile -m "$model" --data "$here/data/calibration/$d.jsonl" -o "$out/$d.json" \
    -t 1 --no-progress > "$out/profile-$d.log" 2>&1
done
for cal in "${cals[@]}"; do
  case $cal in
    code | prose) stats=(--stats "$out/$cal.json") ;;
    both) stats=(--stats "$out/code.json" --stats "$out/prose.json") ;;
    both-tokens | both-mean | both-max)
      stats=(--stats "$out/code.json" --stats "$out/prose.json" --stats-combine "${cal#both-}") ;;
    *) echo "calibration must be code, prose, both or both-RULE (tokens, mean, max), not $cal" >&2; exit 2 ;;
  esac
  mkdir -p "$out/$cal"
  models=()
  for c in "${criteria[@]}"; do
    [ -f "$out/$cal/$c-keep0.25.gguf" ] || "$reap" prune -m "$model" "${stats[@]}" --criterion "$c" \
      --keep-ratio 0.75,0.5,0.25 -o "$out/$cal/$c-keep{keep}.gguf" --no-progress > "$out/$cal/prune-$c.log" 2>&1
    models+=("$out/$cal/$c-keep0.75.gguf" "$out/$cal/$c-keep0.50.gguf" "$out/$cal/$c-keep0.25.gguf")
  done
  ev=(-m "$model" --pruned "${models[@]}" --data code="$here/data/text/code-heldout.txt"
    --data prose="$here/data/text/prose-heldout.txt" -c 128 -t 1 --no-progress)
  [ -f "$out/$cal.eval.json" ] || "$reap" eval "${ev[@]}" --base-logits "$out/base-logits" \
    -o "$out/$cal.eval.json" > "$out/$cal.eval.log" 2>&1
  if [ "${REAP_QT_TASKS:-0}" = 1 ] && [ ! -f "$out/$cal.tasks.json" ]; then
    "$reap" eval "${ev[@]}" --base-logits "$out/base-logits" --multiple-choice "$here/data/tasks/code-continuation.bin" \
      --winogrande "$here/data/tasks/prose-winogrande.csv" -o "$out/$cal.tasks.json" > "$out/$cal.tasks.log" 2>&1
  fi
done
/usr/bin/python3 - "$out" "${cals[@]}" <<'PY'
import json, os, sys
out, cals = sys.argv[1], sys.argv[2:]
def rows(path):
    return {r["model"]: r for r in json.load(open(path))} if os.path.exists(path) else {}
ratios = (("0.75", 25), ("0.50", 50), ("0.25", 75))
print("KL divergence base -> pruned (nats/token) on held-out code / prose; **bold**: the model's worst domain.\n")
print("| calibration | criterion | " + " | ".join(f"{p} %: code | prose" for _, p in ratios) + " |")
print("|---|---|" + "---|---|" * len(ratios))
tasks = []
for cal in cals:
    ev, ts = rows(f"{out}/{cal}.eval.json"), rows(f"{out}/{cal}.tasks.json")
    names = [n[: -len("-keep0.75.gguf")] for n in ev if n.endswith("-keep0.75.gguf")]
    for c in names:
        cells = []
        for keep, pct in ratios:
            m = ev[f"{c}-keep{keep}.gguf"]
            kl = {d: m["domains"][d]["kl_mean"] for d in ("code", "prose")}
            cells += [f"**{v:.3f}**" if d == m["worst_kl_domain"] else f"{v:.3f}" for d, v in kl.items()]
            t = ts.get(f"{c}-keep{keep}.gguf", {}).get("tasks")
            if t: tasks.append((cal, c, pct, t))
        print(f"| {cal} | {c} | " + " | ".join(cells) + " |")
    base = next((r for r in ts.values() if r.get("file_size") and "-keep" not in r["model"]), None)
    if base and not any(t[0] == "base" for t in tasks): tasks.insert(0, ("base", "", 0, base["tasks"]))
if tasks:
    print("\nTask accuracy (150 tasks a file, one standard error about 0.04): code-continuation (multiple choice,"
          " chance 0.25) and prose-winogrande (chance 0.5).\n")
    print("| calibration | criterion | pruned % | code continuation | prose winogrande |")
    print("|---|---|---|---|---|")
    for cal, c, pct, t in tasks:
        print(f"| {cal} | {c} | {pct or ''} | {t['multiple_choice']['accuracy']:.3f} | {t['winogrande']['accuracy']:.3f} |")
PY
