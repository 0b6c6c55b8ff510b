#!/usr/bin/env bash
# HF prune throughput and memory (issue 11), as ratios measured in the same run:
#  1. output bytes/s of `reap prune -m MODEL_DIR --keep-ratio 0.5` vs `cp -r` + `sync` of the
#     same bytes (the pruned folder; prune fdatasyncs its shards, so the baseline syncs too).
#     Target >= 0.8.
#  2. peak RSS of the prune run vs the largest single tensor. Target < 2x.
# Model: a synthetic qwen3moe written by `reap synth --hf-out` as a sharded BF16 checkpoint of
# about 1.2 GB with Qwen3-30B-A3B's widths (n_embd 2048, expert FF 768) and 32 experts in 4
# layers, 500 MB shards; LAYOUT fused (gate_up_proj/down_proj) or per-expert. Real widths matter:
# a dropped slice or router-row set is then a multiple of 64 KiB, as in the released model, and
# the kernel copies whole page-cache folios (safetensors.h, k_copy_alignment).
#   bench/hf_prune_bench.sh [BUILD_DIR] [REPEATS] [WORK_DIR] [LAYOUT]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
reps=${2:-3}
work=${3:-$(mktemp -d)}
layout=${4:-fused}
mkdir -p "$work"
reap=$build/bin/reap

model=$work/hf-$layout
[ -d "$model" ] || { rm -f "$work/big.gguf" "$work/stats.json"; "$reap" synth --layers 4 --n-embd 2048 --n-ff 768 --n-expert 32 --n-expert-used 8 \
  -o "$work/big.gguf" --hf-out "$model" --hf-layout "$layout" --hf-shard-size 500M >/dev/null; }
[ -f "$work/stats.json" ] || "$reap" profile -m "$work/big.gguf" --data "$here/data/calibration/sample.jsonl" --max-samples 4 \
  -o "$work/stats.json" --no-progress >/dev/null
largest=$(/usr/bin/python3 - "$model" <<'PY'
import json, struct, sys, glob
m = 0
for f in glob.glob(sys.argv[1] + "/*.safetensors"):
    with open(f, "rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        h = json.loads(fh.read(n))
    m = max([m] + [v["data_offsets"][1] - v["data_offsets"][0] for k, v in h.items() if k != "__metadata__"])
print(m)
PY
)
in_bytes=$(cat "$model"/*.safetensors | wc -c)  # also brings the input into the page cache

now() { date +%s.%N; }
prune_s=() cp_s=()
for i in $(seq "$reps"); do
  rm -rf "$work/out"
  t0=$(now); "$reap" prune -m "$model" --stats "$work/stats.json" --keep-ratio 0.5 -o "$work/out" --no-progress >/dev/null; t1=$(now)
  prune_s+=("$(awk "BEGIN{print $t1 - $t0}")")
  out_bytes=$(cat "$work/out"/*.safetensors | wc -c)
  rm -rf "$work/copy"
  t0=$(now); cp -r "$work/out" "$work/copy"; sync "$work/copy"/*; t1=$(now)
  cp_s+=("$(awk "BEGIN{print $t1 - $t0}")")
done
rm -rf "$work/out"
/usr/bin/time -v "$reap" prune -m "$model" --stats "$work/stats.json" --keep-ratio 0.5 -o "$work/out" --no-progress \
  >/dev/null 2> "$work/time.log"
rss_kb=$(sed -n 's/.*Maximum resident set size (kbytes): \([0-9]*\)/\1/p' "$work/time.log")
# The same process without the copy (--dry-run reads the headers, stats and routers, plans, and
# writes the plan): what the executable, its libraries and the plan cost by themselves.
/usr/bin/time -v "$reap" prune -m "$model" --stats "$work/stats.json" --keep-ratio 0.5 -o "$work/dry" --dry-run \
  --no-progress >/dev/null 2> "$work/time-dry.log"
dry_kb=$(sed -n 's/.*Maximum resident set size (kbytes): \([0-9]*\)/\1/p' "$work/time-dry.log")

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
mp=$(median "${prune_s[@]}"); mc=$(median "${cp_s[@]}")
minimum() { printf '%s\n' "$@" | sort -g | head -1; }
bp=$(minimum "${prune_s[@]}"); bc=$(minimum "${cp_s[@]}")
mib() { awk "BEGIN{printf \"%.1f\", $1/1048576}"; }
cat <<MD
### reap prune on a Hugging Face folder ($(date -u +%Y-%m-%d), $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1))

Model: synthetic qwen3moe as an HF checkpoint ($layout experts), 4 layers, n_embd 2048, expert FF 768, 32 experts, BF16,
$(ls "$model"/*.safetensors | wc -l) shards, $(mib "$in_bytes") MiB; prune --keep-ratio 0.5 -> $(mib "$out_bytes") MiB in $(ls "$work/out"/*.safetensors | wc -l) shards.
Medians of $reps alternating runs (input read into the page cache once before them; the baseline copies the folder prune just wrote).

| measurement | baseline | reap prune | ratio | target |
|---|---|---|---|---|
| output MiB/s: prune vs cp -r + sync of the pruned folder | $(awk "BEGIN{printf \"%.0f\", $out_bytes/1048576/$mc}") | $(awk "BEGIN{printf \"%.0f\", $out_bytes/1048576/$mp}") | $(awk "BEGIN{printf \"%.2f\", $mc/$mp}") | >= 0.8 |
| output MiB/s, fastest of the runs (less sensitive to other load on the machine) | $(awk "BEGIN{printf \"%.0f\", $out_bytes/1048576/$bc}") | $(awk "BEGIN{printf \"%.0f\", $out_bytes/1048576/$bp}") | $(awk "BEGIN{printf \"%.2f\", $bc/$bp}") | >= 0.8 |
| peak RSS vs largest single tensor | $(mib "$largest") MiB | $(mib $((rss_kb * 1024))) MiB | $(awk "BEGIN{printf \"%.2fx\", $rss_kb*1024/$largest}") | < 2x |
| peak RSS of the same command with --dry-run (no copy) | | $(mib $((dry_kb * 1024))) MiB | | |

All runs (s): prune ${prune_s[*]}; cp -r + sync ${cp_s[*]}.
MD
