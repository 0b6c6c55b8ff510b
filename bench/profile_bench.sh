#!/usr/bin/env bash
# Profiling throughput, measured as ratios against a baseline in the same run (issue 3):
#  1. reap profile vs. plain llama_decode of the same batches (same binary, `--no-collect`),
#     on a synthetic qwen3moe with 16 MoE layers. Target >= 0.90.
#  2. short samples (~64 tokens): packed into one batch vs. one sample per decode. Target >= 3x.
#  3. peak RSS of the profile run (/usr/bin/time -v).
# Runs alternate (baseline, profile, baseline, ...) and the medians are compared, so a slow
# moment of the machine hits both sides.
#   bench/profile_bench.sh [BUILD_DIR] [REPEATS]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
reps=${2:-3}
reap=$build/bin/reap
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
threads=${REAP_BENCH_THREADS:-$(nproc)}

"$reap" synth --layers 16 -o "$work/m16.gguf" >/dev/null
# Calibration: the shipped sample, 4 times (about 40k tokens).
for _ in 1 2 3 4; do cat "$here/data/calibration/sample.jsonl"; done > "$work/cal.jsonl"
# Short samples: the sample text cut into pieces of ~40 words (~64 tokens).
/usr/bin/python3 - "$here/data/calibration/sample.jsonl" "$work/short.jsonl" <<'PY'
import json, sys
words = []
for line in open(sys.argv[1], encoding="utf-8"):
    r = json.loads(line); words += (r["prompt"] + " " + r["response"]).split()
with open(sys.argv[2], "w", encoding="utf-8") as f:
    for i in range(0, min(len(words), 40 * 300), 40):
        f.write(json.dumps({"text": " ".join(words[i:i + 40])}) + "\n")
PY

tps() { sed -n 's/.*(\([0-9.]*\) tokens\/s).*/\1/p' "$1" | tail -1; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
run() { "$reap" profile -m "$work/m16.gguf" -t "$threads" --no-progress "$@"; }

base=() prof=()
for i in $(seq "$reps"); do
  run --data "$work/cal.jsonl" --no-collect > "$work/b.log"; base+=("$(tps "$work/b.log")")
  run --data "$work/cal.jsonl" -o "$work/s.json" > "$work/p.log"; prof+=("$(tps "$work/p.log")")
done
tokens=$(sed -n 's/.*samples, \([0-9]*\) tokens.*/\1/p' "$work/p.log" | tail -1)
/usr/bin/time -v "$reap" profile -m "$work/m16.gguf" -t "$threads" --no-progress --data "$work/cal.jsonl" \
  -o "$work/s.json" > /dev/null 2> "$work/time.log"
rss_kb=$(sed -n 's/.*Maximum resident set size (kbytes): \([0-9]*\)/\1/p' "$work/time.log")
model_kb=$(( $(stat -c %s "$work/m16.gguf") / 1024 ))

packed=() single=()
for i in $(seq "$reps"); do
  run --data "$work/short.jsonl" -o "$work/sp.json" > "$work/sp.log"; packed+=("$(tps "$work/sp.log")")
  run --data "$work/short.jsonl" -o "$work/ss.json" --no-pack > "$work/ss.log"; single+=("$(tps "$work/ss.log")")
done
short_tokens=$(sed -n 's/.*samples, \([0-9]*\) tokens.*/\1/p' "$work/sp.log" | tail -1)

mb=$(median "${base[@]}"); mp=$(median "${prof[@]}")
mpk=$(median "${packed[@]}"); ms=$(median "${single[@]}")
cat <<MD
### reap profile throughput ($(date -u +%Y-%m-%d), $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $threads threads)

Model: synthetic qwen3moe, 16 MoE layers, 16 experts (4 per token), n_embd 256, Q8_0, $((model_kb / 1024)) MiB.
Calibration: data/calibration/sample.jsonl x4 ($tokens tokens); medians of $reps alternating runs.

| measurement | baseline | reap profile | ratio | target |
|---|---|---|---|---|
| tokens/s, profile vs plain llama_decode of the same batches | $mb | $mp | $(awk "BEGIN{printf \"%.3f\", $mp/$mb}") | >= 0.90 |
| tokens/s, ~64-token samples: packed vs one per decode ($short_tokens tokens) | $ms | $mpk | $(awk "BEGIN{printf \"%.2fx\", $mpk/$ms}") | >= 3x |
| peak RSS of the profile run | model file $((model_kb / 1024)) MiB | $((rss_kb / 1024)) MiB | | |

All runs (tokens/s): baseline ${base[*]}; profile ${prof[*]}; packed ${packed[*]}; one-per-decode ${single[*]}.
MD
