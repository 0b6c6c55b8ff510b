#!/usr/bin/env bash
# The cost of `reap profile --imatrix` (issue 30), as ratios against baselines in the same run:
#   a. reap profile without --imatrix (the target: --imatrix at >= 0.9x its throughput);
#   b. llama-imatrix of the same llama.cpp build on the same .txt, -c, -b, threads (--no-ppl);
#      it computes the output head for every token (all outputs), which the profile skips.
# Two models: a synthetic qwen3moe with 16 layers, 64 experts top-8, n_embd 512, n_ff 512 and a
# real vocabulary (llama.cpp's Qwen2 tokenizer, 151,936 tokens: bench/big_vocab_model.py), and the
# committed trained model (data/models/tiny-moe-q8_0.gguf, a small vocabulary).
# Calibration: data/text/*-heldout.txt, the first REAP_BENCH_BYTES (80000) bytes. Wall time of each whole command (load included);
# runs alternate (a, imatrix, b, a, ...) and the medians are compared.
#   bench/imatrix_bench.sh [BUILD_DIR] [REPEATS]
# Environment: REAP_BENCH_THREADS (default: nproc), REAP_BENCH_CTX (default 512),
# REAP_BENCH_VMODEL (the big-vocabulary model, already made), REAP_BENCH_BYTES.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
reps=${2:-3}
reap=$build/bin/reap
threads=${REAP_BENCH_THREADS:-$(nproc)}
ctx=${REAP_BENCH_CTX:-512}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$(sed -n 's/^CMAKE_PREFIX_PATH[^=]*=//p' "$build/CMakeCache.txt" | cut -d';' -f1)
imatrix=$prefix/bin/llama-imatrix
gguf_py=$(dirname "$(readlink -f "$prefix/bin/llama-perplexity")")/../../src/gguf-py
vocab=$gguf_py/../models/ggml-vocab-qwen2.gguf
[ -x "$imatrix" ] || { echo "no llama-imatrix in $prefix/bin: run scripts/setup.sh" >&2; exit 1; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
r() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
secs() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }; t1=$(date +%s.%N); awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'; }

# The held-out prose and code: about 20k tokens in the Qwen2 vocabulary (REAP_BENCH_BYTES cuts it).
cat "$here"/data/text/*-heldout.txt | head -c "${REAP_BENCH_BYTES:-80000}" > "$work/calib.txt"
if [ -n "${REAP_BENCH_VMODEL:-}" ]; then
  ln -s "$(readlink -f "$REAP_BENCH_VMODEL")" "$work/v.gguf"
else
  "$reap" synth --layers 16 --n-embd 512 --n-ff 512 --n-expert 64 --n-expert-used 8 -o "$work/s.gguf" >/dev/null
  PYTHONPATH=$gguf_py /usr/bin/python3 "$here/bench/big_vocab_model.py" "$work/s.gguf" "$vocab" "$work/v.gguf" >/dev/null
  rm -f "$work/s.gguf"
fi

echo "# imatrix_bench: $(date -u +%Y-%m-%d), $(lscpu | sed -n 's/^Model name: *//p'), $threads threads, -c $ctx -b $ctx"
echo
echo "| model | tokens | profile (s) | profile --imatrix (s) | llama-imatrix --no-ppl (s) | --imatrix / profile throughput | --imatrix vs llama-imatrix (speed-up) |"
echo "|---|---|---|---|---|---|---|"
for model in "$work/v.gguf" "$here/data/models/tiny-moe-q8_0.gguf"; do
  a=() m=() b=()
  for _ in $(seq "$reps"); do
    a+=("$(secs "$reap" profile -m "$model" --data "$work/calib.txt" -c "$ctx" -b "$ctx" -t "$threads" --no-progress -o "$work/a.json")")
    m+=("$(secs "$reap" profile -m "$model" --data "$work/calib.txt" -c "$ctx" -b "$ctx" -t "$threads" --no-progress -o "$work/m.json" --imatrix "$work/m.gguf")")
    b+=("$(secs "$imatrix" -m "$model" -f "$work/calib.txt" -c "$ctx" -b "$ctx" -t "$threads" --no-ppl -o "$work/ref.gguf")")
  done
  tokens=$(/usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['_meta']['tokens'])" "$work/m.json")
  ma=$(median "${a[@]}") mm=$(median "${m[@]}") mb=$(median "${b[@]}")
  name=$([ "$model" = "$work/v.gguf" ] && echo "synth qwen3moe 16L 64x8, 151,936-token vocab" || echo "committed trained model")
  echo "| $name | $tokens | $ma | $mm | $mb | $(r "$ma" "$mm") | $(r "$mb" "$mm")x |"
done
