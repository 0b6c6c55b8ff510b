#!/usr/bin/python3
"""Runs a command and writes the bytes it read through read()/recv() (rchar of /proc/PID/io, all
threads), polled every 10 ms while it runs (a multi-threaded zombie's counters read as 0): the
last few ms before it exits can be missed. Files mapped with mmap (a GGUF model) do not count;
sockets do.

  read_bytes.py OUT_FILE -- COMMAND [ARGS...]      exit status: the command's
"""
import subprocess
import time
import sys


def main() -> int:
    out, sep, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
    if sep != "--" or not cmd:
        print("usage: read_bytes.py OUT_FILE -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    p = subprocess.Popen(cmd)
    rchar = 0
    while p.poll() is None:
        try:
            with open(f"/proc/{p.pid}/io", encoding="ascii") as f:
                for line in f:
                    if line.startswith("rchar:"):
                        rchar = max(rchar, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.01)
    rc = p.returncode
    with open(out, "w", encoding="ascii") as f:
        f.write(f"{rchar}\n")
    return rc


if __name__ == "__main__":
    sys.exit(main())
