#!/usr/bin/env bash
# The whole pipeline at a real model's size (issue 25 part 2): `reap synth --preset
# qwen3-30b-a3b` at full depth (48 layers, 128 experts top-8, n_embd 2048, expert FF 768, Qwen2
# vocabulary; ~17 GB in Q4_K), then, each as a ratio to llama.cpp's own tool (or cp) in the same run:
#  1. synth: time, peak RSS, file size (the RSS must not grow with the model: target < 2 GB).
#  2. reap profile tokens/s vs `llama-bench -p 512` (same build, threads, -b/-ub 512; target >= 0.9),
#     and profile's peak RSS vs the model file (target <= 1.3). The model is mmapped: the peak RSS
#     counts the file's pages the process touched (shared page cache) plus its own memory; the
#     anonymous part alone (RssAnon, sampled from /proc every second) is given too.
#  3. reap prune --keep-ratio 0.5: output MiB/s vs cp + sync of a file of the output's size
#     (target >= 0.8), and its peak RSS.
#  4. reap eval of base + pruned vs llama-perplexity --kl-divergence-base (base) +
#     --kl-divergence (pruned) over the same windows (-c 512, --chunks N, llama-perplexity's
#     second-half convention; target >= 0.9 as tokens/s, i.e. llama.cpp's time / reap's), and the
#     size of both base-logits files per token and vocabulary entry.
#  5. reap report at 48 x 128: time, HTML size, and a screenshot in headless Chromium (when
#     /usr/bin/chromium is installed) to look at; the stats file's size.
# Calibration: data/calibration/sample.jsonl cut at REAP_SCALE_CAL_TOKENS tokens (default 3072,
# six 512-token windows: about 10 minutes of profile on 2 shared cores of an AMD EPYC, where
# llama-bench -p 512 gave 5.1 tokens/s; bench/RESULTS.md).
#   bench/scale.sh [BUILD_DIR] [WORK_DIR]
# WORK_DIR (default bench-scale under the build folder) needs ~30 GB free; the model and the
# pruned copy are kept there for a rerun (steps whose output exists are not redone: delete the
# folder to start over). Prints a markdown section for bench/RESULTS.md.
# Environment: REAP_SCALE_THREADS (default nproc), REAP_SCALE_CAL_TOKENS, REAP_SCALE_CHUNKS (eval
# windows, default 4), REAP_SCALE_TYPE (Q4_K or Q8_0), REAP_SCALE_NGL (GPU layers for profile and
# llama-bench, default 0: bench/gpu.sh sets 99), REAP_SCALE_STEPS (default "synth profile prune eval
# report"; bench/gpu.sh runs "synth profile").
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$here/build}" && pwd)
work=${2:-$build/bench-scale}
mkdir -p "$work"
work=$(cd "$work" && pwd)
reap=$build/bin/reap
threads=${REAP_SCALE_THREADS:-$(nproc)}
cal_tokens=${REAP_SCALE_CAL_TOKENS:-3072}
chunks=${REAP_SCALE_CHUNKS:-4}
type=${REAP_SCALE_TYPE:-Q4_K}
ngl=${REAP_SCALE_NGL:-0}
steps=" ${REAP_SCALE_STEPS:-synth profile prune eval report} "
prefix=$(sed -n 's/^CMAKE_PREFIX_PATH[^=]*=//p' "$build/CMakeCache.txt" | cut -d';' -f1)
llama_bench=$prefix/bin/llama-bench
llama_ppl=$prefix/bin/llama-perplexity
for tool in "$reap" "$llama_bench" "$llama_ppl" /usr/bin/time; do
  [ -x "$tool" ] || { echo "scale.sh: $tool not found (scripts/setup.sh builds reap and llama.cpp's tools)" >&2; exit 1; }
done
has() { [[ "$steps" == *" $1 "* ]]; }

model=$work/qwen3-30b-a3b-$type.gguf
pruned=$work/qwen3-30b-a3b-$type-keep50.gguf
now() { date +%s.%N; }
secs() { awk "BEGIN{printf \"%.1f\", $2 - $1}"; }
ratio() { awk "BEGIN{printf \"%.2f\", $1 / $2}"; }
mib() { awk "BEGIN{printf \"%.0f\", $1 / 1048576}"; }
gib() { awk "BEGIN{printf \"%.2f\", $1 / 1073741824}"; }
rss_kb() { sed -n 's/.*Maximum resident set size (kbytes): \([0-9]*\)/\1/p' "$1"; }
tps() { sed -n 's/.*(\([0-9.]*\) tokens\/s).*/\1/p' "$1" | tail -1; }
# Runs "$@" under /usr/bin/time -v (log $1) while sampling the largest RssAnon of the process
# (KiB) into $1.anon: the memory that is the process's own, not the mapped model's page cache.
timed() {
  local log=$1; shift
  /usr/bin/time -v -o "$log" "$@" &
  local pid=$! anon=0 child
  while kill -0 "$pid" 2>/dev/null; do
    child=$(pgrep -P "$pid" | head -1 || true)
    if [ -n "$child" ]; then
      local a; a=$(sed -n 's/^RssAnon:\s*\([0-9]*\).*/\1/p' "/proc/$child/status" 2>/dev/null || echo 0)
      [ "${a:-0}" -gt "$anon" ] && anon=$a
    fi
    sleep 1
  done
  echo "$anon" > "$log.anon"
  wait "$pid"
}
load() { cut -d' ' -f1-3 /proc/loadavg; }
machine=$(lscpu | sed -n 's/^Model name:\s*//p' | head -1)
mem_gib=$(awk '/MemTotal/ {printf "%.0f", $2 / 1048576}' /proc/meminfo)

echo "### Qwen3-30B-A3B shape, full depth ($(date -u '+%Y-%m-%d %H:%M UTC'), $machine, $(nproc) cores, ${mem_gib} GiB, $threads threads, -ngl $ngl)"
echo
echo "Load average at start: $(load) (a shared machine: ratios within this run are what counts)."
echo

# ---- 1. synth ---------------------------------------------------------------------------------
if has synth; then
  if [ ! -f "$model" ]; then
    t0=$(now)
    timed "$work/synth.time" nice "$reap" synth --preset qwen3-30b-a3b --type "$type" -o "$model" > "$work/synth.log"
    t1=$(now)
    secs "$t0" "$t1" > "$work/synth.secs"
  fi
  model_bytes=$(stat -c %s "$model")
  echo "| synth | |"
  echo "|---|---|"
  echo "| command | \`reap synth --preset qwen3-30b-a3b --type $type\` |"
  echo "| file | $(gib "$model_bytes") GiB ($model_bytes bytes) |"
  if [ -f "$work/synth.secs" ]; then
    echo "| time | $(cat "$work/synth.secs") s |"
    echo "| peak RSS | $(( $(rss_kb "$work/synth.time") / 1024 )) MiB ($(awk "BEGIN{printf \"%.4f\", $(rss_kb "$work/synth.time") / ($model_bytes / 1024)}") of the file) |"
  fi
  echo "| summary | $(cat "$work/synth.log") |"
  echo
fi
model_bytes=$(stat -c %s "$model")
model_kb=$((model_bytes / 1024))

# ---- 2. profile vs llama-bench ----------------------------------------------------------------
# Calibration: the shipped sample, repeated, cut by --max-tokens.
for _ in 1 2 3 4; do cat "$here/data/calibration/sample.jsonl"; done > "$work/cal.jsonl"
if has profile; then
  bench_t0=$(now)
  "$llama_bench" -m "$model" -p 512 -n 0 -t "$threads" -b 512 -ub 512 -ngl "$ngl" -r 2 -o json \
    > "$work/bench.json" 2> "$work/bench.err"
  bench_t1=$(now)
  bench_tps=$(/usr/bin/python3 -c 'import json,sys; print("%.2f" % json.load(open(sys.argv[1]))[0]["avg_ts"])' "$work/bench.json")
  load_profile=$(load)
  t0=$(now)
  timed "$work/profile.time" "$reap" profile -m "$model" --data "$work/cal.jsonl" --max-tokens "$cal_tokens" \
    -c 512 -b 512 -ub 512 -t "$threads" -ngl "$ngl" --no-progress -o "$work/stats.json" > "$work/profile.log"
  t1=$(now)
  prof_tps=$(tps "$work/profile.log")
  prof_rss=$(rss_kb "$work/profile.time")
  echo "| profile ($(sed -n 's/^profiled \([0-9]*\)\/[0-9]* samples, \([0-9]*\) tokens.*/\1 samples, \2 tokens/p' "$work/profile.log"), $(secs "$t0" "$t1") s; load $load_profile) | llama-bench -p 512 -r 2 ($(secs "$bench_t0" "$bench_t1") s) | reap profile | ratio | target |"
  echo "|---|---|---|---|---|"
  echo "| tokens/s | $bench_tps | $prof_tps | $(ratio "$prof_tps" "$bench_tps") | >= 0.9 |"
  echo "| peak RSS (file pages of the mapped model + own memory) | model file $(mib "$model_bytes") MiB | $((prof_rss / 1024)) MiB | $(ratio "$prof_rss" "$model_kb") | <= 1.3 |"
  echo "| largest RssAnon (own memory only) | | $(( $(cat "$work/profile.time.anon") / 1024 )) MiB | $(ratio "$(cat "$work/profile.time.anon")" "$model_kb") | |"
  # The mapped model's pages count in RSS next to the CPU backend's repacked copy of the same
  # weights; with --no-mmap llama.cpp reads each weight into its (repacked) buffer and keeps no
  # second copy. One 512-token window is enough to see the peak.
  if [ "$ngl" = 0 ]; then
    timed "$work/profile-nommap.time" "$reap" profile -m "$model" --data "$work/cal.jsonl" --max-tokens 512 \
      -c 512 -b 512 -ub 512 -t "$threads" --no-mmap --no-progress -o "$work/stats-nommap.json" > "$work/profile-nommap.log"
    nommap_rss=$(rss_kb "$work/profile-nommap.time")
    echo "| peak RSS with --no-mmap (512 tokens) | | $((nommap_rss / 1024)) MiB | $(ratio "$nommap_rss" "$model_kb") | <= 1.3 |"
  fi
  echo
fi

# ---- 3. prune vs cp ----------------------------------------------------------------------------
if has prune; then
  rm -f "$pruned"
  # Both sides start with their input out of the page cache (GNU dd's nocache drops a file's
  # cached pages): a 17 GB model on a 24 GB machine is partly cached after the profile, while a
  # file just written is wholly cached, and cp would read RAM against prune's disk.
  drop_cache() { dd if="$1" iflag=nocache count=0 status=none; }
  drop_cache "$model"
  t0=$(now)
  timed "$work/prune.time" "$reap" prune -m "$model" --stats "$work/stats.json" --keep-ratio 0.5 -o "$pruned" \
    --no-progress > "$work/prune.log"
  t1=$(now)
  prune_s=$(secs "$t0" "$t1")
  out_bytes=$(stat -c %s "$pruned")
  # The baseline copies a file of the output's size (the model's first bytes), then syncs it:
  # prune fsyncs its output too.
  head -c "$out_bytes" "$model" > "$work/same-size.bin"
  rm -f "$work/copy.bin"
  sync "$work/same-size.bin"; drop_cache "$work/same-size.bin"
  t0=$(now); cp "$work/same-size.bin" "$work/copy.bin"; sync "$work/copy.bin"; t1=$(now)
  cp_s=$(secs "$t0" "$t1")
  rm -f "$work/same-size.bin" "$work/copy.bin"
  echo "| prune --keep-ratio 0.5 | cp + sync | reap prune | ratio | target |"
  echo "|---|---|---|---|---|"
  echo "| output MiB/s ($(mib "$out_bytes") MiB out) | $(awk "BEGIN{printf \"%.0f\", $out_bytes/1048576/$cp_s}") ($cp_s s) | $(awk "BEGIN{printf \"%.0f\", $out_bytes/1048576/$prune_s}") ($prune_s s) | $(ratio "$cp_s" "$prune_s") | >= 0.8 |"
  echo "| peak RSS (mapped input pages + own memory) / largest RssAnon | | $(( $(rss_kb "$work/prune.time") / 1024 )) MiB / $(( $(cat "$work/prune.time.anon") / 1024 )) MiB | | |"
  echo
fi

# ---- 4. eval vs llama-perplexity ---------------------------------------------------------------
if has eval; then
  text=$here/data/text/prose-heldout.txt
  rm -f "$work/base.kld" "$work/base.lgt"
  t0=$(now)
  "$llama_ppl" -m "$model" -f "$text" -c 512 --chunks "$chunks" -t "$threads" \
    --kl-divergence-base "$work/base.kld" > "$work/lp-base.log" 2>&1
  t1=$(now)
  "$llama_ppl" -m "$pruned" -f "$text" -c 512 --chunks "$chunks" -t "$threads" \
    --kl-divergence-base "$work/base.kld" --kl-divergence > "$work/lp-kl.log" 2>&1
  t2=$(now)
  lp_s=$(secs "$t0" "$t2")
  timed "$work/eval.time" "$reap" eval -m "$model" --pruned "$pruned" --data "$text" -c 512 --chunks "$chunks" \
    --ppl-convention second-half -t "$threads" --base-logits "$work/base.lgt" -o "$work/eval.json" > "$work/eval.log"
  t3=$(now)
  eval_s=$(secs "$t2" "$t3")
  scored=$(/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); m=d["models"] if isinstance(d,dict) and "models" in d else d; print(m[0].get("tokens_scored", 0))' "$work/eval.json" 2>/dev/null || echo 0)
  lp_kl=$(sed -n 's/^Mean\s*KLD:\s*\([0-9.e+-]*\).*/\1/p' "$work/lp-kl.log" | head -1)
  echo "| eval, $chunks windows of 512 (second half scored) | llama-perplexity base + --kl-divergence | reap eval base + pruned | ratio (time of llama.cpp / reap) | target |"
  echo "|---|---|---|---|---|"
  echo "| time | $lp_s s ($(secs "$t0" "$t1") + $(secs "$t1" "$t2")) | $eval_s s | $(ratio "$lp_s" "$eval_s") | >= 0.9 |"
  echo "| base logits file | $(mib "$(stat -c %s "$work/base.kld")") MiB | $(mib "$(stat -c %s "$work/base.lgt")") MiB | | <= 2 bytes per entry per token |"
  echo "| mean KL of the pruned model | ${lp_kl:-?} | $(/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); m=d["models"] if isinstance(d,dict) and "models" in d else d; print("%.4f" % m[-1]["kl_mean"])' "$work/eval.json" 2>/dev/null || echo "?") | | |"
  echo "| peak RSS / largest RssAnon | | $(( $(rss_kb "$work/eval.time") / 1024 )) MiB / $(( $(cat "$work/eval.time.anon") / 1024 )) MiB | | |"
  echo
  [ "$scored" = 0 ] || echo "Tokens scored per model: $scored."
  rm -f "$work/base.kld"
fi

# ---- 5. report at 48 x 128 ---------------------------------------------------------------------
if has report; then
  t0=$(now)
  timed "$work/report.time" "$reap" report "$work/stats.json" -o "$work/report.html" > "$work/report.txt"
  t1=$(now)
  shot="not taken (no /usr/bin/chromium)"
  if [ -x /usr/bin/chromium ]; then
    profile_dir=$(mktemp -d)
    if timeout 300 /usr/bin/chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync --user-data-dir="$profile_dir" \
        --screenshot="$work/report.png" --window-size=1400,2400 "file://$work/report.html" > "$work/chromium.log" 2>&1; then
      shot="$work/report.png ($(( $(stat -c %s "$work/report.png") / 1024 )) KiB)"
    else
      shot="chromium failed (see $work/chromium.log)"
    fi
    rm -rf "$profile_dir"
  fi
  echo "| report at 48 x 128 | |"
  echo "|---|---|"
  echo "| time | $(secs "$t0" "$t1") s, peak RSS $(( $(rss_kb "$work/report.time") / 1024 )) MiB |"
  echo "| HTML | $(( $(stat -c %s "$work/report.html") / 1024 )) KiB |"
  echo "| stats file | $(( $(stat -c %s "$work/stats.json") / 1024 )) KiB |"
  echo "| screenshot | $shot |"
  echo
fi
echo "Load average at the end: $(load)."
