"""Checks that llama.cpp computes what torch computes: the perplexity of llama-perplexity
(pinned llama.cpp, same chunking: -c n_ctx windows, the second half of each scored) on the
exported GGUF files against the same number from the torch model on llama.cpp's tokens."""
import hashlib
import math
import os
import re
import subprocess

import torch
import torch.nn.functional as F

from tokenizer import LLAMA_PREFIX


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def torch_perplexity(m, ids, n_ctx):
    """llama-perplexity's measure: chunks of n_ctx tokens (no BOS: the vocabulary adds none),
    NLL of the tokens after position n_ctx/2 of each chunk."""
    m.eval()
    nll, n = 0.0, 0
    first = n_ctx // 2
    with torch.no_grad():
        for k in range(len(ids) // n_ctx):
            x = torch.tensor(ids[k * n_ctx:(k + 1) * n_ctx], dtype=torch.long)[None]
            lg, _ = m(x)
            lp = F.log_softmax(lg[0, first:n_ctx - 1].double(), -1)
            nll -= lp.gather(1, x[0, first + 1:].unsqueeze(1)).sum().item()
            n += n_ctx - 1 - first
    m.train()
    return math.exp(nll / n)


def llama_perplexity(gguf_path, text_path, n_ctx):
    exe = os.path.join(LLAMA_PREFIX, "bin", "llama-perplexity")
    env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(LLAMA_PREFIX, "lib"))
    r = subprocess.run([exe, "-m", gguf_path, "-f", text_path, "-c", str(n_ctx), "-b", str(n_ctx), "-t", "1"],
                       capture_output=True, text=True, env=env)
    mt = re.search(r"Final estimate: PPL = ([0-9.]+)", r.stdout + r.stderr)
    if not mt:
        raise RuntimeError(f"llama-perplexity failed on {gguf_path}:\n{(r.stdout + r.stderr)[-2000:]}")
    return float(mt.group(1))


def llama_perplexity_tokens(tk, text):
    """The tokens llama-perplexity scores for `text` read from a file: its -f drops one
    trailing newline before tokenizing (common/arg.cpp), which can change the chunk count."""
    return tk.encode(text[:-1] if text.endswith("\n") else text)


def compare_perplexity(m, ids, paths, text_path, n_ctx=128):
    out = {"torch_ppl": torch_perplexity(m, ids, n_ctx), "n_ctx": n_ctx, "chunks": len(ids) // n_ctx}
    for k, p in paths.items():
        out[f"llama_{k}_ppl"] = llama_perplexity(p, text_path, n_ctx)
        out[f"llama_{k}_rel_diff"] = out[f"llama_{k}_ppl"] / out["torch_ppl"] - 1
    return out


def main():
    """Re-runs the check on a finished work directory (model.pt, the GGUF files, the held-out
    texts) and updates its summary.json."""
    import argparse
    import json
    import sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import model
    import tokenizer
    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--work", required=True)
    ap.add_argument("--name", default="tiny-moe")
    a = ap.parse_args()
    ck = torch.load(os.path.join(a.work, "model.pt"))
    m = model.TinyMoE(model.Config(**ck["config"]))
    m.load_state_dict(ck["state"])
    paths = {q: os.path.join(a.work, f"{a.name}-{q}.gguf") for q in ("f32", "q8_0")}
    tk = tokenizer.LlamaTokenizer(paths["f32"])
    summ_path = os.path.join(a.work, "summary.json")
    summary = json.load(open(summ_path))
    for d in ("code", "prose"):
        text_path = os.path.join(a.work, f"{d}-heldout.txt")
        ids = llama_perplexity_tokens(tk, open(text_path, encoding="utf-8", newline="").read())
        summary["verify"][d] = compare_perplexity(m, ids, paths, text_path, n_ctx=128)
        print(d, json.dumps(summary["verify"][d]), flush=True)
    with open(summ_path, "w") as f:
        json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
