#!/usr/bin/env bash
# Cross-check with llama.cpp's own tool: llama-perplexity must run over a text file on the
# default synthetic model of every architecture, and on that model pruned to half its experts
# by reap profile + reap prune, and print a finite final estimate.
#   perplexity_synth.sh REAP LLAMA_PERPLEXITY WORKDIR
set -euo pipefail
reap=$1 ppl=$2 work=$3
mkdir -p "$work"
# 4 chunks of 128 tokens of plain English (the repository's own sample text, repeated).
text="$work/text.txt"
src="$(dirname "$0")/../data/text/sample.txt"
for _ in 1 2 3; do cat "$src"; done > "$text"
fail=0
calib="$(dirname "$0")/../data/calibration/sample.jsonl"
models=()
for arch in qwen3moe llama deepseek2 gpt-oss nemotron_h_moe; do
  "$reap" synth --arch "$arch" -o "$work/$arch.gguf" >/dev/null
  "$reap" profile -m "$work/$arch.gguf" --data "$calib" --max-samples 4 -o "$work/$arch.json" --no-progress >/dev/null
  "$reap" prune -m "$work/$arch.gguf" --stats "$work/$arch.json" --keep-ratio 0.5 -o "$work/$arch-pruned.gguf" \
    --no-progress >/dev/null
  models+=("$arch" "$arch-pruned")
done
for name in "${models[@]}"; do
  arch=$name
  model="$work/$name.gguf"
  log="$work/$name.log"
  # llama.cpp's logger prints from a background thread and can lose the last lines at exit
  # on a loaded machine (llama.cpp issue 22142), so a clean exit without the final line is retried.
  line=
  for attempt in 1 2 3 4 5 6 7 8; do
    if ! "$ppl" -m "$model" -f "$text" -c 128 -b 128 -t 2 --chunks 4 >"$log" 2>&1; then
      echo "FAIL $arch: llama-perplexity exited non-zero"; tail -5 "$log"; fail=1; continue 2
    fi
    line=$(grep -o 'Final estimate: PPL = [0-9.]*' "$log" || true)
    [ -n "$line" ] && break
  done
  if [ -z "$line" ]; then
    echo "FAIL $arch: no final estimate"; tail -5 "$log"; fail=1; continue
  fi
  echo "ok   $arch: $line"
done
# A passing run leaves nothing behind (the models are ~100 MB, and CI disks are small).
[ "$fail" = 0 ] && rm -rf "$work"
exit $fail
