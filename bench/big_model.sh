#!/usr/bin/env bash
# A model larger than the machine's memory (issue 31): `reap synth --preset qwen3-30b-a3b --type
# Q8_0` (~32 GB, about 1.4x a 24 GiB machine), then, with the weights mapped and --no-repack (the
# CPU backend's repacked copy would have to fit in memory):
#  1. the disk's own sequential read rate: dd of the model with O_DIRECT (8 GiB of it);
#  2. reap profile over REAP_BIG_TOKENS (2048) calibration tokens at -b = -ub 512, 2048 and 8192:
#     completes or not, peak RSS, tokens/s, bytes read from disk (/usr/bin/time's file system
#     inputs) per token and as passes over the file. Each micro-batch routes its tokens to almost
#     every expert, so each reads almost the whole file: tokens/s should be about
#     ub x disk rate / file size, until the compute of the micro-batch is the longer part;
#  3. reap prune --keep-ratio 0.75 (peak RSS, time);
#  4. reap eval of the base and the pruned model (--no-repack, -c 512, REAP_BIG_CHUNKS windows).
# The page cache is dropped before every step (needs root), so each starts from the disk.
#   bench/big_model.sh [BUILD_DIR] [WORK_DIR]
# WORK_DIR (default bench-big under the build folder) needs ~60 GB free; the model and the pruned
# copy are kept for a rerun (a step whose output exists is not redone: delete it to start over).
# Prints a markdown section for bench/RESULTS.md.
# Environment: REAP_BIG_THREADS (default nproc), REAP_BIG_TOKENS, REAP_BIG_CHUNKS (default 2),
# REAP_BIG_UBATCHES (default "512 2048 8192"), REAP_BIG_STEPS (default "synth disk profile prune
# eval").
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$here/build}" && pwd)
work=${2:-$build/bench-big}
mkdir -p "$work"
work=$(cd "$work" && pwd)
reap=$build/bin/reap
threads=${REAP_BIG_THREADS:-$(nproc)}
tokens=${REAP_BIG_TOKENS:-2048}
chunks=${REAP_BIG_CHUNKS:-2}
ubatches=${REAP_BIG_UBATCHES:-512 2048 8192}
steps=" ${REAP_BIG_STEPS:-synth disk profile prune eval} "
for tool in "$reap" /usr/bin/time; do
  [ -x "$tool" ] || { echo "big_model.sh: $tool not found (scripts/setup.sh builds reap)" >&2; exit 1; }
done
has() { [[ "$steps" == *" $1 "* ]]; }

model=$work/qwen3-30b-a3b-Q8_0.gguf
pruned=$work/qwen3-30b-a3b-Q8_0-keep75.gguf
now() { date +%s.%N; }
secs() { awk "BEGIN{printf \"%.1f\", $2 - $1}"; }
gib() { awk "BEGIN{printf \"%.2f\", $1 / 1073741824}"; }
rss_kb() { sed -n 's/.*Maximum resident set size (kbytes): \([0-9]*\)/\1/p' "$1"; }
# Bytes the process read from block devices: /usr/bin/time's "File system inputs" (512-byte units).
read_bytes() { awk '/File system inputs:/ {printf "%.0f", $4 * 512}' "$1"; }
exit_of() { sed -n 's/.*Exit status: \([0-9]*\)/\1/p' "$1"; }
tps() { sed -n 's/.*(\([0-9.]*\) tokens\/s).*/\1/p' "$1" | tail -1; }
drop_cache() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || echo "(page cache not dropped: not root)" >&2; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
machine=$(lscpu | sed -n 's/^Model name:\s*//p' | head -1)
mem_gib=$(awk '/MemTotal/ {printf "%.1f", $2 / 1048576}' /proc/meminfo)

echo "### A model larger than the RAM: Qwen3-30B-A3B shape at Q8_0 ($(date -u '+%Y-%m-%d %H:%M UTC'), $machine, $(nproc) cores, ${mem_gib} GiB, $threads threads)"
echo

# ---- synth -------------------------------------------------------------------------------------
if has synth && [ ! -f "$model" ]; then
  t0=$(now)
  /usr/bin/time -v -o "$work/synth.time" nice "$reap" synth --preset qwen3-30b-a3b --type Q8_0 -o "$model" \
    > "$work/synth.log"
  secs "$t0" "$(now)" > "$work/synth.secs"
fi
model_bytes=$(stat -c %s "$model")
echo "Model: \`reap synth --preset qwen3-30b-a3b --type Q8_0\`, $(gib "$model_bytes") GiB ($model_bytes bytes),"
echo "$(awk "BEGIN{printf \"%.2f\", $model_bytes / ($mem_gib * 1073741824)}")x the machine's memory.$([ -f "$work/synth.secs" ] && echo " Synth: $(cat "$work/synth.secs") s, peak RSS $(( $(rss_kb "$work/synth.time") / 1024 )) MiB.")"
echo

# ---- disk --------------------------------------------------------------------------------------
if has disk; then
  drop_cache
  dd if="$model" of=/dev/null bs=16M count=512 iflag=direct 2> "$work/dd.log"
  disk=$(awk '/copied/ {print $(NF-1), $NF}' "$work/dd.log")
  echo "Disk: $disk sequential (dd of 8 GiB of the model, O_DIRECT). At that rate one pass over the file"
  echo "takes $(awk -v b="$model_bytes" -v r="$disk" 'BEGIN{split(r, a, " "); m = a[2] == "GB/s" ? 1e9 : a[2] == "MB/s" ? 1e6 : 1; printf "%.0f", b / (a[1] * m)}') s."
  echo
fi

# ---- profile at three micro-batch sizes ---------------------------------------------------------
for _ in 1 2 3 4 5 6 7 8; do cat "$here/data/calibration/sample.jsonl"; done > "$work/cal.jsonl"
if has profile; then
  echo "| profile, $tokens tokens, mmap + --no-repack | -b = -ub 512 | 2048 | 8192 |" | sed "s/| 2048 | 8192 |/$(for u in $ubatches; do [ "$u" = 512 ] || printf '| %s ' "$u"; done)|/"
  echo "|---|$(for _ in $ubatches; do printf -- '---|'; done)"
  row_exit="| completes (exit status) |" row_rss="| peak RSS |" row_tps="| tokens/s |" row_read="| read from disk |"
  row_tok="| read per token |" row_pass="| passes over the file |" row_time="| time |" row_load="| load before |"
  for ub in $ubatches; do
    if [ ! -f "$work/profile-$ub.time" ]; then
      drop_cache
      load_before=$(load)
      t0=$(now)
      /usr/bin/time -v -o "$work/profile-$ub.time" "$reap" profile -m "$model" --data "$work/cal.jsonl" \
        --max-tokens "$tokens" -c 512 -b "$ub" -ub "$ub" -t "$threads" --no-repack --no-progress \
        -o "$work/stats-$ub.json" > "$work/profile-$ub.log" 2> "$work/profile-$ub.err" || true
      secs "$t0" "$(now)" > "$work/profile-$ub.secs"
      echo "$load_before" > "$work/profile-$ub.load"
    fi
    rb=$(read_bytes "$work/profile-$ub.time")
    row_exit+=" $(exit_of "$work/profile-$ub.time") |"
    row_rss+=" $(( $(rss_kb "$work/profile-$ub.time") / 1024 )) MiB |"
    row_tps+=" $(tps "$work/profile-$ub.log") |"
    row_read+=" $(gib "$rb") GiB |"
    row_tok+=" $(awk "BEGIN{printf \"%.1f\", $rb / $tokens / 1048576}") MiB |"
    row_pass+=" $(awk "BEGIN{printf \"%.2f\", $rb / $model_bytes}") |"
    row_time+=" $(cat "$work/profile-$ub.secs") s |"
    row_load+=" $(cat "$work/profile-$ub.load") |"
  done
  printf '%s\n' "$row_exit" "$row_time" "$row_tps" "$row_rss" "$row_read" "$row_tok" "$row_pass" "$row_load"
  echo
fi

# ---- prune -------------------------------------------------------------------------------------
stats=$(ls "$work"/stats-*.json 2>/dev/null | head -1 || true)
if has prune && [ -n "$stats" ]; then
  if [ ! -f "$pruned" ]; then
    drop_cache
    t0=$(now)
    /usr/bin/time -v -o "$work/prune.time" "$reap" prune -m "$model" --stats "$stats" --keep-ratio 0.75 \
      -o "$pruned" --no-progress > "$work/prune.log" 2>&1
    secs "$t0" "$(now)" > "$work/prune.secs"
  fi
  echo "Prune (--keep-ratio 0.75, $(gib "$(stat -c %s "$pruned")") GiB out): $(cat "$work/prune.secs") s, peak RSS $(( $(rss_kb "$work/prune.time") / 1024 )) MiB."
  echo
fi

# ---- eval --------------------------------------------------------------------------------------
if has eval && [ -f "$pruned" ]; then
  if [ ! -f "$work/eval.time" ]; then
    drop_cache
    t0=$(now)
    /usr/bin/time -v -o "$work/eval.time" "$reap" eval -m "$model" --pruned "$pruned" \
      --data "$here/data/text/prose-heldout.txt" -c 512 --chunks "$chunks" -t "$threads" --no-repack --no-progress \
      > "$work/eval.log" 2> "$work/eval.err" || true
    secs "$t0" "$(now)" > "$work/eval.secs"
  fi
  rb=$(read_bytes "$work/eval.time")
  echo "Eval of the base and the pruned model (--no-repack, -c 512, $chunks windows: $((512 * chunks)) tokens each): exit $(exit_of "$work/eval.time"),"
  echo "$(cat "$work/eval.secs") s, peak RSS $(( $(rss_kb "$work/eval.time") / 1024 )) MiB, $(gib "$rb") GiB read from disk."
  echo
  echo '```'
  cat "$work/eval.log"
  echo '```'
fi
