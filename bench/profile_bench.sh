#!/usr/bin/env bash
# Profiling throughput, measured as ratios against a baseline in the same run (issue 3):
#  1. reap profile vs. plain llama_decode of the same batches (same binary, `--no-collect`),
#     on a synthetic qwen3moe with 16 MoE layers. Target >= 0.90.
#  2. short samples (~64 tokens): packed into one batch vs. one sample per decode. Target >= 3x.
#  3. peak RSS of the profile run (/usr/bin/time -v).
#  4. a model with a real vocabulary (llama.cpp's Qwen2 tokenizer, 151,936 tokens; bench/
#     big_vocab_model.py on a synth qwen3moe with 16 layers, 64 experts top-8, n_embd 512):
#     reap profile vs `llama-bench -p UB` of the same llama.cpp build (same model, threads and
#     micro-batch UB, -b UB), and vs reap profile --no-skip-head (the output head computed for
#     every token, as before issue 14); peak RSS of both against the model file. Targets: >= 0.9
#     of llama-bench, RSS <= 1.3x the model. Skipped (with a note) without llama-bench/gguf-py.
#     Two kinds of calibration (issue 25): long samples that fill every micro-batch, and 30 short
#     prompt/response pairs of ~125 tokens (packed 4 to a batch, the last batch partial).
# Runs alternate (baseline, profile, baseline, ...) and the medians are compared, so a slow
# moment of the machine hits both sides.
#   bench/profile_bench.sh [BUILD_DIR] [REPEATS]
# Environment: REAP_BENCH_UBATCH (default 512, several allowed: "256 512"), REAP_BENCH_THREADS,
# REAP_BENCH_ONLY_VOCAB=1 (only part 4), REAP_BENCH_VMODEL (part 4's model, already made).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
reps=${2:-3}
reap=$build/bin/reap
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
threads=${REAP_BENCH_THREADS:-$(nproc)}
tps() { sed -n 's/.*(\([0-9.]*\) tokens\/s).*/\1/p' "$1" | tail -1; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
run() { "$reap" profile -m "$work/m16.gguf" -t "$threads" --no-progress "$@"; }

# Calibration: the shipped sample, 4 times (about 40k tokens).
for _ in 1 2 3 4; do cat "$here/data/calibration/sample.jsonl"; done > "$work/cal.jsonl"

if [ "${REAP_BENCH_ONLY_VOCAB:-0}" != 1 ]; then

"$reap" synth --layers 16 -o "$work/m16.gguf" >/dev/null
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
fi

# ---- 4. a real vocabulary: reap profile vs llama-bench of the same build ----------------------
prefix=$(sed -n 's/^CMAKE_PREFIX_PATH[^=]*=//p' "$build/CMakeCache.txt" | cut -d';' -f1)
llama_bench=${REAP_LLAMA_BENCH:-$prefix/bin/llama-bench}
gguf_py=$(dirname "$(readlink -f "$prefix/bin/llama-bench" 2>/dev/null || echo /nonexistent)")/../../src/gguf-py
vocab=$gguf_py/../models/ggml-vocab-qwen2.gguf
if [ ! -x "$llama_bench" ] || [ ! -f "$vocab" ]; then
  echo "(part 4 skipped: no llama-bench or Qwen2 vocab next to $prefix; scripts/setup.sh builds them)"
  exit 0
fi
if [ -n "${REAP_BENCH_VMODEL:-}" ]; then
  ln -s "$(readlink -f "$REAP_BENCH_VMODEL")" "$work/v.gguf"
else
  "$reap" synth --layers 16 --n-embd 512 --n-ff 512 --n-expert 64 --n-expert-used 8 -o "$work/s.gguf" >/dev/null
  PYTHONPATH=$gguf_py /usr/bin/python3 "$here/bench/big_vocab_model.py" "$work/s.gguf" "$vocab" "$work/v.gguf" >/dev/null
  rm -f "$work/s.gguf"
fi
vmodel_kb=$(( $(stat -L -c %s "$work/v.gguf") / 1024 ))
# Wall-clock tokens/s (as llama-bench reports it) and tokens per CPU-second of user time: on a
# machine shared with other work the second is the steadier measure (with -t 1 no thread spins).
utime() { sed -n 's/.*User time (seconds): \([0-9.]*\)/\1/p' "$1"; }
bench_run() {  # UB -> "wall_tps cpu_tps": llama-bench -p UB, 3 repetitions, no warm-up
  /usr/bin/time -v "$llama_bench" -m "$work/v.gguf" -p "$1" -n 0 -t "$threads" -b "$1" -ub "$1" -r 3 --no-warmup \
    -o json > "$work/lb.json" 2> "$work/lbtime.log"
  local wall; wall=$(/usr/bin/python3 -c 'import json,sys; print("%.1f" % json.load(open(sys.argv[1]))[0]["avg_ts"])' "$work/lb.json")
  echo "$wall $(awk "BEGIN{printf \"%.1f\", 3*$1/$(utime "$work/lbtime.log")}")"
}
vprofile() {  # UB DATA extra flags... -> "wall_tps cpu_tps rss_kb"
  local ub=$1 data=$2; shift 2
  /usr/bin/time -v "$reap" profile -m "$work/v.gguf" -t "$threads" --no-progress --data "$data" \
    --max-tokens $((ub * 8)) -b "$ub" -ub "$ub" -o "$work/v.json" "$@" > "$work/vp.log" 2> "$work/vtime.log"
  local n; n=$(sed -n 's/.* samples, \([0-9]*\) tokens in.*/\1/p' "$work/vp.log")
  echo "$(tps "$work/vp.log") $(awk "BEGIN{printf \"%.1f\", $n/$(utime "$work/vtime.log")}") $(sed -n 's/.*Maximum resident set size (kbytes): \([0-9]*\)/\1/p' "$work/vtime.log")"
}
cp "$here/data/calibration/sample.jsonl" "$work/vcal.jsonl"  # little to tokenize: CPU time is decode time
# Short samples, as calibration files usually are: 30 prompt/response pairs of 80 words (~125 tokens).
/usr/bin/python3 - "$here/data/calibration/sample.jsonl" "$work/vshort.jsonl" <<'PY'
import json, sys
words = []
for line in open(sys.argv[1], encoding="utf-8"):
    r = json.loads(line); words += (r["prompt"] + " " + r["response"]).split()
with open(sys.argv[2], "w", encoding="utf-8") as f:
    for i in range(30):
        w = words[i * 80:(i + 1) * 80]
        f.write(json.dumps({"prompt": " ".join(w[:30]), "response": " ".join(w[30:])}) + "\n")
PY
echo "### reap profile vs llama-bench, 151,936-token vocabulary ($(date -u +%Y-%m-%d), $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $threads threads, load average at start $(cut -d' ' -f1-3 /proc/loadavg))"
echo
echo "Model: synthetic qwen3moe, 16 layers, 64 experts top-8, n_embd 512, n_ff 512, Q8_0, Qwen2 vocabulary (151,936 tokens), $((vmodel_kb / 1024)) MiB."
echo "Medians of $reps alternating rounds (llama-bench -r 3, reap profile on long samples (8 micro-batches), on 30 short samples (~125 tokens each), reap profile --no-skip-head on the long ones)."
echo "t/s: wall clock; t/CPU-s: tokens per second of user CPU time."
echo
echo "| micro-batch | llama-bench t/s, t/CPU-s | reap profile, long samples: t/s, t/CPU-s | ratio wall, CPU | short samples: t/s, t/CPU-s | ratio wall, CPU | --no-skip-head (long) t/s, t/CPU-s | ratio wall, CPU | peak RSS / model: long, short, --no-skip-head |"
echo "|---|---|---|---|---|---|---|---|---|"
for ub in ${REAP_BENCH_UBATCH:-512}; do
  lw=() lc=() pw=() pc=() sw=() sc=() fw=() fc=() rss=0 rsss=0 rssf=0
  for i in $(seq "$reps"); do
    read -r w c < <(bench_run "$ub"); lw+=("$w"); lc+=("$c")
    read -r w c rss < <(vprofile "$ub" "$work/vcal.jsonl"); pw+=("$w"); pc+=("$c")
    read -r w c rsss < <(vprofile "$ub" "$work/vshort.jsonl"); sw+=("$w"); sc+=("$c")
    read -r w c rssf < <(vprofile "$ub" "$work/vcal.jsonl" --no-skip-head); fw+=("$w"); fc+=("$c")
  done
  m() { median "$@"; }
  r() { awk "BEGIN{printf \"%.2f\", $1/$2}"; }
  a=$(m "${lw[@]}") b=$(m "${lc[@]}") c=$(m "${pw[@]}") d=$(m "${pc[@]}") e=$(m "${fw[@]}") f=$(m "${fc[@]}")
  g=$(m "${sw[@]}") h=$(m "${sc[@]}")
  echo "| $ub | $a, $b | $c, $d | $(r "$c" "$a"), $(r "$d" "$b") | $g, $h | $(r "$g" "$a"), $(r "$h" "$b") | $e, $f | $(r "$e" "$a"), $(r "$f" "$b") | $(r "$rss" "$vmodel_kb")x, $(r "$rsss" "$vmodel_kb")x, $(r "$rssf" "$vmodel_kb")x |"
  echo "<!-- ub $ub runs (wall/CPU): llama-bench ${lw[*]} / ${lc[*]}; profile long ${pw[*]} / ${pc[*]}; short ${sw[*]} / ${sc[*]}; --no-skip-head ${fw[*]} / ${fc[*]} -->" >&2
  # Each round runs llama-bench and the profiles back to back, so a round's own ratio cancels the
  # machine's drift between rounds (this VM's speed wanders by up to 20 %): their median too.
  pl=() ps=()
  for i in "${!lw[@]}"; do pl+=("$(r "${pw[$i]}" "${lw[$i]}")"); ps+=("$(r "${sw[$i]}" "${lw[$i]}")"); done
  echo
  echo "Per-round wall ratios (profile ÷ llama-bench of the same round): long ${pl[*]} (median $(m "${pl[@]}")); short ${ps[*]} (median $(m "${ps[@]}"))."
done
