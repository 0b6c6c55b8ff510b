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


def compare_perplexity(m, ids, paths, text_path, n_ctx=128):
    out = {"torch_ppl": torch_perplexity(m, ids, n_ctx), "n_ctx": n_ctx}
    for k, p in paths.items():
        out[f"llama_{k}_ppl"] = llama_perplexity(p, text_path, n_ctx)
        out[f"llama_{k}_rel_diff"] = out[f"llama_{k}_ppl"] / out["torch_ppl"] - 1
    return out
