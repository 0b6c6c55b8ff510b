#!/usr/bin/env bash
# The GPU steps of issue 25 (part 6) in one call, on a machine with an NVIDIA card:
#  1. builds llama.cpp with CUDA for this card's architecture only (scripts/setup.sh --
#     -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=<compute capability>) and reap against it, into
#     BUILD_DIR (default build-cuda, beside the CPU build);
#  2. the profile invariants (bench/profile_invariants.py: every MoE layer, every token, top-k
#     routings and gate sums per token, planted dead/rare/weak experts; and the statistics of the
#     CPU run within tolerance) on a synthetic qwen3moe with -ngl 99 and with --n-cpu-moe 4;
#  3. bench/scale.sh's profile ratio at -ngl 99 (reap profile vs llama-bench -p 512, target >= 0.8);
#  4. short samples (~64 tokens) packed into one batch vs one sample per decode, at -ngl 99:
#     the packing gain a CPU cannot show (there the decode itself dominates).
#   bench/gpu.sh [BUILD_DIR] [WORK_DIR]
# Prints a markdown section for bench/RESULTS.md; exits 1 at the first failed check.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build-cuda}
work=${2:-$build/bench-gpu}
command -v nvidia-smi > /dev/null || { echo "gpu.sh: no nvidia-smi: this script needs an NVIDIA GPU" >&2; exit 1; }
# "9.0" -> "90": the card's architecture only, so CUDA compiles one set of kernels.
arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d ' .')
card=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)

# ---- 1. build --------------------------------------------------------------------------------
REAP_BUILD_DIR=$build "$here/scripts/setup.sh" -- -DGGML_CUDA=ON "-DCMAKE_CUDA_ARCHITECTURES=$arch" \
  > "$build.setup.log" 2>&1 || { tail -30 "$build.setup.log"; echo "gpu.sh: setup failed ($build.setup.log)" >&2; exit 1; }
mkdir -p "$work"
work=$(cd "$work" && pwd)
reap=$build/bin/reap
threads=$(nproc)

echo "### GPU: $card (compute capability $arch), $(date -u '+%Y-%m-%d %H:%M UTC'), $(lscpu | sed -n 's/^Model name:\s*//p' | head -1), $threads threads"
echo

# ---- 2. profile invariants on the GPU --------------------------------------------------------
model=$work/q.gguf
"$reap" synth --arch qwen3moe --layers 8 --n-expert 16 --n-expert-used 4 -o "$model" --json > "$work/synth.json"
prof() { "$reap" profile -m "$model" --data "$here/data/calibration/sample.jsonl" --max-samples 24 -c 128 \
  -t "$threads" --no-progress "$@" > /dev/null; }
prof -ngl 0 -o "$work/cpu.json"
prof -ngl 99 -o "$work/gpu.json"
prof -ngl 99 --n-cpu-moe 4 -o "$work/cpu-moe.json"
echo "| profile invariants | result |"
echo "|---|---|"
for run in gpu cpu-moe; do
  /usr/bin/python3 "$here/bench/profile_invariants.py" "$work/synth.json" "$work/$run.json" "$work/cpu.json" \
    > "$work/$run.check" || { cat "$work/$run.check"; echo "gpu.sh: profile invariants failed ($run)" >&2; exit 1; }
  echo "| -ngl 99$([ "$run" = cpu-moe ] && echo " --n-cpu-moe 4") | $(tail -1 "$work/$run.check") |"
done
echo

# ---- 3. the scale benchmark's profile ratio at -ngl 99 ---------------------------------------
REAP_SCALE_NGL=99 REAP_SCALE_STEPS="synth profile" "$here/bench/scale.sh" "$build" "$work/scale"
echo

# ---- 4. packed short samples vs one per decode -----------------------------------------------
/usr/bin/python3 - "$here/data/calibration/sample.jsonl" "$work/short.jsonl" <<'PY'
import json, sys
words = []
for line in open(sys.argv[1], encoding="utf-8"):
    r = json.loads(line); words += (r["prompt"] + " " + r["response"]).split()
with open(sys.argv[2], "w", encoding="utf-8") as f:
    for i in range(0, min(len(words), 40 * 300), 40):
        f.write(json.dumps({"text": " ".join(words[i:i + 40])}) + "\n")
PY
"$reap" synth --layers 16 --n-embd 1024 --n-ff 512 --n-expert 64 --n-expert-used 8 -o "$work/m16.gguf" > /dev/null
tps() { sed -n 's/.*(\([0-9.]*\) tokens\/s).*/\1/p' "$1" | tail -1; }
short() { "$reap" profile -m "$work/m16.gguf" --data "$work/short.jsonl" -ngl 99 -t "$threads" --no-progress "$@"; }
packed=() single=()
for _ in 1 2 3; do
  short -o "$work/sp.json" > "$work/sp.log"; packed+=("$(tps "$work/sp.log")")
  short -o "$work/ss.json" --no-pack > "$work/ss.log"; single+=("$(tps "$work/ss.log")")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
mp=$(median "${packed[@]}") ms=$(median "${single[@]}")
echo "| ~64-token samples at -ngl 99 (16 layers, 64 experts top-8, n_embd 1024) | one per decode | packed | gain |"
echo "|---|---|---|---|"
echo "| tokens/s (median of 3) | $ms | $mp | $(awk "BEGIN{printf \"%.2fx\", $mp/$ms}") |"
echo
echo "Runs: packed ${packed[*]}; one per decode ${single[*]}."
