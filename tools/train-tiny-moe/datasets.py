"""The committed held-out and calibration sets (data/text/<domain>-heldout.txt,
data/calibration/<domain>.jsonl), cut from the documents of those splits (corpus.py)."""
import json
import os

HELDOUT_CHARS = 40_000   # per domain
CALIB_SAMPLES = 80       # per domain
CALIB_CHARS = 450        # per sample: about 200 tokens, under the model's 256-token context
PER_DOC_CHARS = 3_000    # at most this much of one document, so many documents are represented


def take_chars(docs, n):
    out, tot = [], 0
    for name, t in docs:
        if tot >= n:
            break
        out.append((name, t))
        tot += len(t)
    return out


def _cut(text, n):
    """At most n characters, ending at a line break where there is one."""
    if len(text) <= n:
        return text
    k = text.rfind("\n", 0, n)
    return text[:k + 1] if k > n // 2 else text[:n]


def committed_sets(split):
    held, held_names, tot = [], [], 0
    for name, t in split["heldout"]:
        piece = _cut(t, PER_DOC_CHARS)
        if tot + len(piece) > HELDOUT_CHARS:
            break
        held.append(piece)
        held_names.append(name)
        tot += len(piece)
    calib, calib_names = [], []
    for name, t in split["calibration"]:
        for part in (0, 1):  # up to two samples per document: its start and a later piece
            start = 0 if part == 0 else t.find("\n", len(t) // 2) + 1
            piece = _cut(t[start:], CALIB_CHARS).strip("\n") if start > 0 or part == 0 else ""
            if len(piece) > 100 and len(calib) < CALIB_SAMPLES:
                calib.append(piece)
                calib_names.append(name)
    return {"heldout_text": "\n".join(held), "calibration": calib, "heldout_docs": held_names,
            "calibration_docs": calib_names}


def write_committed(root, sets):
    for d, s in sets.items():
        with open(os.path.join(root, "data", "text", f"{d}-heldout.txt"), "w") as f:
            f.write(s["heldout_text"])
        with open(os.path.join(root, "data", "calibration", f"{d}.jsonl"), "w") as f:
            for t in s["calibration"]:
                f.write(json.dumps({"text": t}) + "\n")
        with open(os.path.join(root, "data", "text", f"{d}-sources.txt"), "w") as f:
            f.write(f"# documents of data/text/{d}-heldout.txt (held-out split), then of "
                    f"data/calibration/{d}.jsonl (calibration split); see tools/train-tiny-moe/corpus.py\n")
            f.write("".join(f"heldout {n}\n" for n in s["heldout_docs"]))
            f.write("".join(f"calibration {n}\n" for n in s["calibration_docs"]))
