#!/usr/bin/env bash
# The report renders in a real browser: profile a synthetic model, write its report, take a
# screenshot with headless Chromium (offline; the page loads nothing) and check that the picture
# shows the heatmap: the top expert's yellow, the never-activated grey and the red drop crosses.
#   report_screenshot.sh REAP WORKDIR
# Exits 77 (skipped) when /usr/bin/chromium is not installed (Debian package `chromium`).
set -euo pipefail
reap=$1 work=$2
chromium=/usr/bin/chromium
python=/usr/bin/python3
if [ ! -x "$chromium" ]; then
  echo "skip: $chromium not found (apt-get install chromium)"; exit 77
fi
if [ ! -x "$python" ]; then
  echo "skip: $python not found"; exit 77
fi
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)
profile_dir=$(mktemp -d)
trap 'rm -rf "$profile_dir"' EXIT

"$reap" synth --arch qwen3moe -o "$work/model.gguf" >/dev/null
"$reap" profile -m "$work/model.gguf" --data "$here/../data/calibration/sample.jsonl" --max-samples 8 -t 1 \
  --no-progress -o "$work/stats.json" >/dev/null
rm "$work/model.gguf"  # the report reads only the stats; the folder stays small
"$reap" report "$work/stats.json" -o "$work/report.html" >"$work/summary.txt"
grep -q "^wrote $work/report.html\$" "$work/summary.txt" || { echo "FAIL: no 'wrote' line"; cat "$work/summary.txt"; exit 1; }

png="$work/report.png"
# The flags keep Chromium from reaching out (updates, sync, field trials) on machines without
# network; the page itself forbids every fetch with its Content-Security-Policy.
if ! timeout 180 "$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
     --disable-background-networking --disable-component-update --disable-sync \
     --user-data-dir="$profile_dir" --screenshot="$png" --window-size=1400,1000 \
     "file://$work/report.html" >"$work/chromium.log" 2>&1; then
  echo "FAIL: chromium exited non-zero"; tail -20 "$work/chromium.log"; exit 1
fi

# Debian's python3 has no PIL by default: decode the PNG with zlib and count colours.
"$python" - "$png" <<'EOF'
import struct, sys, zlib

path = sys.argv[1]
data = open(path, "rb").read()
if len(data) < 10000 or data[:8] != b"\x89PNG\r\n\x1a\n":
    sys.exit(f"FAIL: {path} is not a real PNG ({len(data)} bytes)")
pos, idat, hdr = 8, b"", None
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        hdr = struct.unpack(">IIBBBBB", body)
    elif kind == b"IDAT":
        idat += body
    pos += 12 + n
width, height, depth, ctype, _, _, interlace = hdr
if depth != 8 or ctype not in (2, 6) or interlace:
    sys.exit(f"FAIL: unexpected PNG format (depth {depth}, colour type {ctype}, interlace {interlace})")
bpp = 3 if ctype == 2 else 4
raw = zlib.decompress(idat)
stride = width * bpp
prev = bytearray(stride)
counts = {}
for y in range(height):
    f = raw[y * (stride + 1)]
    line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    if f == 1:
        for i in range(bpp, stride):
            line[i] = (line[i] + line[i - bpp]) & 255
    elif f == 2:
        for i in range(stride):
            line[i] = (line[i] + prev[i]) & 255
    elif f == 3:
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
    elif f == 4:
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    elif f != 0:
        sys.exit(f"FAIL: bad PNG filter {f} in row {y}")
    for x in range(0, stride, bpp):
        px = bytes(line[x:x + 3])
        counts[px] = counts.get(px, 0) + 1
    prev = line

def near(rgb, tol=8):
    return sum(n for px, n in counts.items() if all(abs(px[k] - rgb[k]) <= tol for k in range(3)))

total = width * height
background = max(counts.values())
checks = {
    "distinct colours >= 50": len(counts) >= 50,
    "background below 97% of the picture": background < 0.97 * total,
    "top-expert yellow #fde725 (>= 1000 px)": near((0xfd, 0xe7, 0x25)) >= 1000,
    "never-activated grey #c4c4c4 (>= 1000 px)": near((0xc4, 0xc4, 0xc4), 2) >= 1000,
    "drop-cross red #ff2d55 (>= 300 px)": near((0xff, 0x2d, 0x55), 24) >= 300,
}
print(f"{path}: {width}x{height}, {len(data)} bytes, {len(counts)} colours, background {100.0 * background / total:.1f}%")
for what, ok in checks.items():
    print(("ok   " if ok else "FAIL ") + what)
sys.exit(0 if all(checks.values()) else 1)
EOF
