#!/usr/bin/python3
"""Writes data/prompts/heldout.jsonl: generation prompts for `reap eval --prompts` / `reap sweep`.

From each held-out text (data/text/{code,prose}-heldout.txt) 12 prompts, evenly spaced through
the file: the 300 characters up to a line end, so the model continues at the start of a line as
in its training text. Held-out text only (never the calibration sets), deterministic: running it
again writes the same file.
"""
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
PER_DOMAIN = 12
CONTEXT_CHARS = 300


def prompts_of(text: str) -> list[str]:
    out = []
    for k in range(PER_DOMAIN):
        end = text.find("\n", (k + 1) * len(text) // (PER_DOMAIN + 1))
        if end < CONTEXT_CHARS:
            continue
        start = text.find("\n", end - CONTEXT_CHARS) + 1  # begin at a line start too
        out.append(text[start:end + 1])
    return out


def main() -> None:
    lines = []
    for domain in ("code", "prose"):
        text = (ROOT / "data" / "text" / f"{domain}-heldout.txt").read_text()
        lines += [json.dumps({"text": p}) for p in prompts_of(text)]
    out = ROOT / "data" / "prompts" / "heldout.jsonl"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"{out}: {len(lines)} prompts")


if __name__ == "__main__":
    main()
