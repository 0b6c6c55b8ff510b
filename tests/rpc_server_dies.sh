#!/usr/bin/env bash
# An rpc-server that goes away mid-profile (issue 21): reap no longer dies of SIGPIPE without a
# word (rc 141); it names the lost endpoint in one line and says that --resume continues from
# the checkpoint, before llama.cpp aborts.
#   rpc_server_dies.sh REAP RPC_SERVER WORKDIR
set -uo pipefail
reap=$1 rpc=$2 work=$3
root="$(cd "$(dirname "$0")/.." && pwd)"
rm -rf "$work" && mkdir -p "$work"
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
p1=$(free_port) p2=$(free_port)
# The servers themselves (no wrapper): killing $s2 must take the endpoint away. The trap ends both.
"$rpc" -H 127.0.0.1 -p "$p1" -t 1 >"$work/rpc1.log" 2>&1 & s1=$!
"$rpc" -H 127.0.0.1 -p "$p2" -t 1 >"$work/rpc2.log" 2>&1 & s2=$!
cleanup() { kill -KILL "$s1" "$s2" 2>/dev/null; wait 2>/dev/null; }
trap cleanup EXIT
for p in "$p1" "$p2"; do
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break; sleep 0.1; done
done
"$reap" synth -o "$work/a.gguf" --seed 1 >/dev/null || exit 1
"$reap" profile -m "$work/a.gguf" --data "$root/data/calibration/code.jsonl" -o "$work/s.json" --save-every 2 \
  -np 1 --no-progress -t 1 --rpc "127.0.0.1:$p1,127.0.0.1:$p2" >"$work/out.log" 2>"$work/err.log" & r=$!
for _ in $(seq 3000); do [ -s "$work/s.json" ] && break; kill -0 "$r" 2>/dev/null || break; sleep 0.01; done
[ -s "$work/s.json" ] || { echo "FAIL: no checkpoint before the run ended"; cat "$work/err.log"; exit 1; }
kill -KILL "$s2"
wait "$r"; rc=$?
echo "reap exit status $rc; stderr:"; cat "$work/err.log"
[ "$rc" -ne 141 ] || { echo "FAIL: reap died of SIGPIPE"; exit 1; }
[ "$rc" -ne 0 ] || { echo "FAIL: the run finished before the server went away"; exit 1; }
grep -q "^reap: fatal: lost the --rpc server 127.0.0.1:$p2 (cannot connect" "$work/err.log" ||
  { echo "FAIL: the lost endpoint is not named"; exit 1; }
grep -q -- "--resume" "$work/err.log" || { echo "FAIL: no word of --resume"; exit 1; }
rm -rf "$work"
echo "OK"
