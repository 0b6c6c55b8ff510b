#!/usr/bin/env bash
# On the committed trained model (data/models/, tools/train-tiny-moe/): profile on the code
# calibration set, prune 25 % of the experts by reap, frequency and random (seed 1), and check
# on held-out code that REAP's pruned model is the closest to the original (lowest mean KL).
# This is the claim of the REAP paper on models whose routing was trained; on the planted
# synthetic models it does not hold (their weak experts are frequent and carry most gate mass).
# And (issue 32) half the experts merged by ream, from the same profile's merge statistics, give
# a finite KL below random pruning's at the same size (measured: 1.12 against 1.55).
#   trained_model.sh REAP WORKDIR
set -euo pipefail
reap=$1 work=$2
root="$(cd "$(dirname "$0")/.." && pwd)"
model="$root/data/models/tiny-moe-q8_0.gguf"
mkdir -p "$work"
"$reap" profile -m "$model" --data "$root/data/calibration/code.jsonl" -o "$work/stats.json" -t 1 --no-progress \
  --merge-stats 16 >/dev/null
pruned=()
for c in reap frequency random; do
  "$reap" prune -m "$model" --stats "$work/stats.json" --keep-ratio 0.75 --criterion "$c" --seed 1 \
    -o "$work/$c.gguf" --no-progress >/dev/null
  pruned+=("$work/$c.gguf")
done
"$reap" prune -m "$model" --stats "$work/stats.json" --keep-ratio 0.5 --merge ream -o "$work/ream-50.gguf" \
  --no-progress >/dev/null
"$reap" prune -m "$model" --stats "$work/stats.json" --keep-ratio 0.5 --criterion random --seed 1 \
  -o "$work/random-50.gguf" --no-progress >/dev/null
pruned+=("$work/ream-50.gguf" "$work/random-50.gguf")
"$reap" eval -m "$model" --pruned "${pruned[@]}" --data "$root/data/text/code-heldout.txt" -c 128 \
  -o "$work/eval.json" -t 1 --no-progress
# eval.json lists the models in the order given, one key per line: "kl_mean" before "model".
kl() { awk -v m="\"$1.gguf\"," '/"kl_mean"/ {k=$2} /"model"/ && $2==m {sub(",", "", k); print k}' "$work/eval.json"; }
reap_kl=$(kl reap) freq_kl=$(kl frequency) rand_kl=$(kl random)
echo "KL mean at 25 % pruned on held-out code: reap $reap_kl, frequency $freq_kl, random(1) $rand_kl"
[ -n "$reap_kl" ] && [ -n "$freq_kl" ] && [ -n "$rand_kl" ] || { echo "FAIL: could not read eval.json"; exit 1; }
awk -v r="$reap_kl" -v f="$freq_kl" -v x="$rand_kl" 'BEGIN { exit !(r < f && r < x) }' ||
  { echo "FAIL: REAP is not below frequency and random"; exit 1; }
ream_kl=$(kl ream-50) rand50_kl=$(kl random-50)
echo "KL mean at 50 % on held-out code: ream (merged) $ream_kl, random(1) $rand50_kl"
[ -n "$ream_kl" ] && [ -n "$rand50_kl" ] || { echo "FAIL: could not read eval.json"; exit 1; }
awk -v m="$ream_kl" -v x="$rand50_kl" 'BEGIN { exit !(m == m + 0 && m < x) }' ||
  { echo "FAIL: the merged model's KL is not finite and below random pruning's"; exit 1; }
rm -rf "$work"  # a passing run leaves nothing behind
echo "OK"
