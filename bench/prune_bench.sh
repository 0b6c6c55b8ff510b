#!/usr/bin/env bash
# Prune throughput and memory (issue 4), as ratios measured in the same run:
#  1. output bytes/s of `reap prune --keep-ratio 0.5` vs `cp` + `sync` of a file of the output's
#     size (prune fsyncs its output, so the baseline does too). Target >= 0.8.
#  2. peak RSS of the prune run vs the largest single tensor. Target < 2x.
# Model: a synthetic qwen3moe of about 1.3 GB (12 layers, n_embd 1024, 32 experts, Q8_0).
#   bench/prune_bench.sh [BUILD_DIR] [REPEATS] [WORK_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
reps=${2:-3}
work=${3:-$(mktemp -d)}
mkdir -p "$work"
reap=$build/bin/reap

model=$work/big.gguf
[ -f "$model" ] || "$reap" synth --layers 12 --n-embd 1024 --n-ff 1024 --n-expert 32 --n-expert-used 4 -o "$model" >/dev/null
[ -f "$work/stats.json" ] || "$reap" profile -m "$model" --data "$here/data/calibration/sample.jsonl" --max-samples 4 \
  -o "$work/stats.json" --no-progress >/dev/null
largest=$("$reap" inspect --json "$model" | /usr/bin/python3 -c 'import json,sys; print(max(t["bytes"] for t in json.load(sys.stdin)["expert_tensors"]))')

now() { date +%s.%N; }
prune_s=() cp_s=()
for i in $(seq "$reps"); do
  rm -f "$work/out.gguf"
  t0=$(now); "$reap" prune -m "$model" --stats "$work/stats.json" --keep-ratio 0.5 -o "$work/out.gguf" --no-progress >/dev/null; t1=$(now)
  prune_s+=("$(awk "BEGIN{print $t1 - $t0}")")
  out_bytes=$(stat -c %s "$work/out.gguf")
  [ -f "$work/same-size.bin" ] || head -c "$out_bytes" "$model" > "$work/same-size.bin"
  rm -f "$work/copy.bin"
  t0=$(now); cp "$work/same-size.bin" "$work/copy.bin"; sync "$work/copy.bin"; t1=$(now)
  cp_s+=("$(awk "BEGIN{print $t1 - $t0}")")
done
/usr/bin/time -v "$reap" prune -m "$model" --stats "$work/stats.json" --keep-ratio 0.5 -o "$work/out.gguf" --no-progress \
  >/dev/null 2> "$work/time.log"
rss_kb=$(sed -n 's/.*Maximum resident set size (kbytes): \([0-9]*\)/\1/p' "$work/time.log")

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
mp=$(median "${prune_s[@]}"); mc=$(median "${cp_s[@]}")
mib() { awk "BEGIN{printf \"%.1f\", $1/1048576}"; }
cat <<MD
### reap prune throughput ($(date -u +%Y-%m-%d), $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1))

Model: synthetic qwen3moe, 12 layers, n_embd 1024, 32 experts (4 per token), Q8_0, $(mib "$(stat -c %s "$model")") MiB;
prune --keep-ratio 0.5 -> $(mib "$out_bytes") MiB. Medians of $reps alternating runs (input in the page cache for both).

| measurement | baseline | reap prune | ratio | target |
|---|---|---|---|---|
| output MiB/s: prune vs cp + sync of a file of the output's size | $(awk "BEGIN{printf \"%.0f\", $out_bytes/1048576/$mc}") | $(awk "BEGIN{printf \"%.0f\", $out_bytes/1048576/$mp}") | $(awk "BEGIN{printf \"%.2f\", $mc/$mp}") | >= 0.8 |
| peak RSS vs largest single tensor | $(mib "$largest") MiB | $(mib $((rss_kb * 1024))) MiB | $(awk "BEGIN{printf \"%.2fx\", $rss_kb*1024/$largest}") | < 2x |

All runs (s): prune ${prune_s[*]}; cp+sync ${cp_s[*]}.
MD
