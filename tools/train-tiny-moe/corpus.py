"""The two text domains, gathered from files any Debian machine with the project's setup has.

code:  C, C++ and Python source of the provisioned llama.cpp tree and of /usr/lib/python3*.
prose: English man pages (sections 1, 5, 7, 8) rendered to plain text by man(1).

Every document (one file or one man page) is assigned to a split by the sha256 of its name
(path relative to its root): bucket = int(sha256(name)[:8], 16) % 100;
bucket < 5 -> held-out, 5 <= bucket < 10 -> calibration, otherwise train. The split depends on
the name only, so it is the same on every machine and no document is in two splits.
"""
import glob
import gzip
import hashlib
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor

LLAMA_SRC = os.environ.get(
    "LLAMA_SRC", "/root/.cache/reap.cpp/llama.cpp/node-llama-cpp-3.22.1-36a9e7f1/src")


def split_of(name):
    b = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) % 100
    return "heldout" if b < 5 else "calibration" if b < 10 else "train"


def _read(path, limit=200_000):
    try:
        with open(path, "rb") as f:
            data = f.read(limit)
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def code_documents():
    """(name, text) for every source file, sorted by name."""
    docs = []
    exts = (".c", ".cpp", ".h", ".py")
    for root, tag in [(LLAMA_SRC, "llama.cpp"), *[(p, os.path.basename(p)) for p in sorted(glob.glob("/usr/lib/python3*"))]]:
        for dirpath, dirnames, files in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in ("build", "node_modules", ".git", "__pycache__"))
            for fn in sorted(files):
                if not fn.endswith(exts):
                    continue
                p = os.path.join(dirpath, fn)
                t = _read(p)
                if t and len(t) > 200:
                    docs.append((tag + "/" + os.path.relpath(p, root), t))
    docs.sort()
    return docs


def _render_man(path):
    env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8", MAN_KEEP_FORMATTING="")
    try:
        out = subprocess.run(["man", "-l", "-P", "cat", path], capture_output=True, env=env, timeout=20).stdout
        text = out.decode("utf-8", "replace")
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = re.sub(".\x08", "", text)  # overstrike bold/underline
    text = re.sub("[ \t]+\n", "\n", text)
    text = re.sub("\n{3,}", "\n\n", text)
    return text if len(text) > 500 else None


def prose_documents(max_pages=2500, workers=2):
    """(name, text) for English man pages, sorted by name. `max_pages` caps rendering time: the
    pages are taken in order of the hash of their name (a fixed, machine-independent sample)."""
    paths = []
    for sec in ("man1", "man5", "man7", "man8"):
        paths += glob.glob(f"/usr/share/man/{sec}/*")
    names = sorted(paths, key=lambda p: hashlib.sha256(os.path.relpath(p, "/usr/share/man").encode()).hexdigest())
    names = names[:max_pages]
    with ThreadPoolExecutor(workers) as ex:
        texts = list(ex.map(_render_man, names))
    docs = [("man/" + os.path.relpath(p, "/usr/share/man"), t) for p, t in zip(names, texts) if t]
    docs.sort()
    return docs


def by_split(docs):
    """The documents of each split, in order of the hash of their name (a fixed shuffle, so
    any prefix mixes the sources of a domain)."""
    out = {"train": [], "calibration": [], "heldout": []}
    key = lambda d: hashlib.sha256(d[0].encode()).hexdigest()
    for name, text in sorted(docs, key=key):
        out[split_of(name)].append((name, text))
    return out
