#!/usr/bin/env bash
# reap profile with every layer on a loopback rpc-server (llama.cpp's RPC backend: a real remote
# device, its buffers across a socket), issue 25:
#  1. bytes the client receives per token: the expert-output norms computed on the server
#     (default) vs the whole expert outputs copied to the client (REAP_DEVICE_NORMS=off, the
#     collector before issue 25). rchar of the client process (bench/read_bytes.py): everything it
#     read through read()/recv(), the socket's replies included, the mmapped model not; per token
#     as the difference of two runs of different length, so loading and discovery cancel out.
#  2. throughput: reap profile ÷ llama-bench -p 512 with the same --rpc server, all layers on it
#     (-ngl 99), the same threads on the server. Target >= 0.9.
# Rounds alternate llama-bench, profile (norms on the server), profile (outputs copied); medians.
#   bench/rpc_bench.sh [BUILD_DIR] [REPEATS]
# Environment: REAP_BENCH_THREADS (rpc-server threads, default nproc), REAP_BENCH_TOKENS (tokens
# per throughput run, default 2048; the bytes runs take 1/4 and 3/4 of it).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
reps=${2:-3}
reap=$build/bin/reap
prefix=$(sed -n 's/^CMAKE_PREFIX_PATH[^=]*=//p' "$build/CMakeCache.txt" | cut -d';' -f1)
rpc_server=$prefix/bin/rpc-server
llama_bench=$prefix/bin/llama-bench
for x in "$rpc_server" "$llama_bench"; do
  [ -x "$x" ] || { echo "rpc_bench.sh: $x not found (scripts/setup.sh builds it)" >&2; exit 1; }
done
threads=${REAP_BENCH_THREADS:-$(nproc)}
work=$(mktemp -d)
server=
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

"$reap" synth --layers 16 --n-embd 512 --n-ff 512 --n-expert 64 --n-expert-used 8 -o "$work/m.gguf" >/dev/null
for _ in 1 2 3 4; do cat "$here/data/calibration/sample.jsonl"; done > "$work/cal.jsonl"
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$rpc_server" -H 127.0.0.1 -p "$port" -t "$threads" > "$work/rpc.log" 2>&1 &
server=$!
for _ in $(seq 200); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
ep=127.0.0.1:$port

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# profile MAX_TOKENS [env...] -> "tokens tokens_per_s rchar collector_bytes" (the last: what the
# collector itself copied from device buffers, its "MB read from devices")
profile() {
  local n=$1; shift
  env "$@" /usr/bin/python3 "$here/bench/read_bytes.py" "$work/rchar" -- "$reap" profile -m "$work/m.gguf" \
    --rpc "$ep" -ngl 99 -t 1 --no-progress --data "$work/cal.jsonl" --max-tokens "$n" -o "$work/s.json" > "$work/p.log"
  echo "$(sed -n 's/.* samples, \([0-9]*\) tokens in.*/\1/p' "$work/p.log") $(sed -n 's/.*(\([0-9.]*\) tokens\/s).*/\1/p' "$work/p.log") $(cat "$work/rchar") $(sed -n 's/.*; \([0-9.]*\) MB read from devices/\1/p' "$work/p.log" | awk '{printf "%.0f", $1 * 1e6}')"
}
bench() {  # -> "tokens_per_s rchar" of llama-bench -p 512 -r 3
  /usr/bin/python3 "$here/bench/read_bytes.py" "$work/rchar" -- "$llama_bench" -m "$work/m.gguf" --rpc "$ep" \
    -ngl 99 -t 1 -p 512 -n 0 -b 512 -ub 512 -r 3 --no-warmup -o json > "$work/lb.json" 2>/dev/null
  echo "$(/usr/bin/python3 -c 'import json,sys; print("%.1f" % json.load(open(sys.argv[1]))[0]["avg_ts"])' "$work/lb.json") $(cat "$work/rchar")"
}
per_token() { awk "BEGIN{printf \"%.0f\", ($4 - $2) / ($3 - $1)}"; }  # tokens1 rchar1 tokens2 rchar2

n=${REAP_BENCH_TOKENS:-2048}
load0=$(cut -d' ' -f1-3 /proc/loadavg)
# Bytes per token: a short and a long run of each kind.
read -r ta _ ra ca < <(profile $((n / 4)))
read -r tb _ rb cb < <(profile $((n * 3 / 4)))
read -r tc _ rc cc < <(profile $((n / 4)) REAP_DEVICE_NORMS=off)
read -r td _ rd cd < <(profile $((n * 3 / 4)) REAP_DEVICE_NORMS=off)
dev_bpt=$(per_token "$ta" "$ra" "$tb" "$rb")
off_bpt=$(per_token "$tc" "$rc" "$td" "$rd")
dev_cpt=$(awk "BEGIN{printf \"%.0f\", $cb / $tb}")
off_cpt=$(awk "BEGIN{printf \"%.0f\", $cd / $td}")

lb=() pd=() po=()
for _ in $(seq "$reps"); do
  read -r t _ < <(bench); lb+=("$t")
  read -r _ t _ < <(profile "$n"); pd+=("$t")
  read -r _ t _ < <(profile "$n" REAP_DEVICE_NORMS=off); po+=("$t")
done
ml=$(median "${lb[@]}") md=$(median "${pd[@]}") mo=$(median "${po[@]}")
r() { awk "BEGIN{printf \"%.2f\", $1/$2}"; }
cat <<MD
### reap profile over --rpc ($(date -u +%Y-%m-%d), $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); load average $load0 at start, $(cut -d' ' -f1-3 /proc/loadavg) at the end)

Model: synthetic qwen3moe, 16 layers, 64 experts top-8, n_embd 512, n_ff 512, Q8_0, $(( $(stat -c %s "$work/m.gguf") / 1048576 )) MiB, every layer on one loopback rpc-server (-ngl 99, server -t $threads, client -t 1).
Calibration: data/calibration/sample.jsonl x4, --max-tokens as below. Medians of $reps alternating rounds.

| measurement | expert outputs copied (REAP_DEVICE_NORMS=off) | norms on the server (default) | ratio |
|---|---|---|---|
| bytes received by the client per token (rchar, $ta→$tb and $tc→$td tokens) | $off_bpt | $dev_bpt | $(r "$off_bpt" "$dev_bpt")x fewer |
| of which copied by the collector (its own count, $tb and $td tokens) | $off_cpt | $dev_cpt | $(r "$off_cpt" "$dev_cpt")x fewer |
| tokens/s, reap profile ($n tokens) | $mo | $md | |
| ÷ llama-bench -p 512, same server ($ml t/s) | $(r "$mo" "$ml") | **$(r "$md" "$ml")** | target >= 0.9 |

All runs (t/s): llama-bench ${lb[*]}; profile, norms on the server ${pd[*]}; outputs copied ${po[*]}.
Expected expert-output bytes per token: 16 layers x 8 slots x 512 floats x 4 = 262144 (copied) vs 16 x 8 x 16 = 2048 (norms).
MD
