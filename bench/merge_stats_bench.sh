#!/usr/bin/env bash
# The cost of `reap profile --merge-stats N` against a plain profile in the same run: wall time of
# each whole command (load included), runs alternating (plain, --merge-stats, plain, ...), medians
# compared. Two models: the committed trained model (data/models/tiny-moe-q8_0.gguf: qwen3moe,
# 4 layers, 16 experts top-4, n_embd 128) and a synthetic qwen3moe (16 layers, 64 experts top-8,
# n_embd 512, n_ff 512, Q8_0; synth's small vocabulary: the profile skips the head anyway).
# Calibration: data/text/*-heldout.txt, the first REAP_BENCH_BYTES (80000) bytes, -c/-b 512.
#   bench/merge_stats_bench.sh [BUILD_DIR] [REPEATS]
# Environment: REAP_BENCH_THREADS (default: nproc), REAP_BENCH_N (default 16), REAP_BENCH_BYTES.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
reps=${2:-3}
reap=$build/bin/reap
threads=${REAP_BENCH_THREADS:-$(nproc)}
n=${REAP_BENCH_N:-16}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
r() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
secs() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }; t1=$(date +%s.%N); awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'; }

cat "$here"/data/text/*-heldout.txt > "$work/all.txt"  # not piped into head: pipefail would stop on cat's SIGPIPE
head -c "${REAP_BENCH_BYTES:-80000}" "$work/all.txt" > "$work/calib.txt"
"$reap" synth --layers 16 --n-embd 512 --n-ff 512 --n-expert 64 --n-expert-used 8 -o "$work/s.gguf" >/dev/null

echo "# merge_stats_bench: $(date -u +%Y-%m-%d), $(lscpu | sed -n 's/^Model name: *//p'), $threads threads, -c 512 -b 512, --merge-stats $n"
echo
echo "| model | tokens | profile (s) | profile --merge-stats $n (s) | ratio | stats file (plain / merge) |"
echo "|---|---|---|---|---|---|"
for model in "$here/data/models/tiny-moe-q8_0.gguf" "$work/s.gguf"; do
  a=() m=()
  for _ in $(seq "$reps"); do
    a+=("$(secs "$reap" profile -m "$model" --data "$work/calib.txt" -c 512 -b 512 -t "$threads" --no-progress -o "$work/a.json")")
    m+=("$(secs "$reap" profile -m "$model" --data "$work/calib.txt" -c 512 -b 512 -t "$threads" --no-progress -o "$work/m.json" --merge-stats "$n")")
  done
  tokens=$(/usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['_meta']['tokens'])" "$work/m.json")
  ma=$(median "${a[@]}") mm=$(median "${m[@]}")
  name=$([ "$model" = "$work/s.gguf" ] && echo "synth qwen3moe 16L 64x8, n_embd 512" || echo "committed trained model (4L 16x4, n_embd 128)")
  echo "| $name | $tokens | $ma | $mm | $(r "$mm" "$ma")x | $(du -k "$work/a.json" | cut -f1) KB / $(du -k "$work/m.json" | cut -f1) KB |"
done
