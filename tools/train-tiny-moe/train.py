#!/usr/bin/python3
"""Trains the tiny qwen3moe model of data/models/ and exports it to GGUF (see README.md here).

  /usr/bin/python3 tools/train-tiny-moe/train.py [--work DIR] [--steps N] [--seed S] [--write-data]

Steps: gather the two domains (corpus.py) and split them by name hash; learn the BPE merges;
write a vocabulary-only GGUF and tokenize everything with llama.cpp itself (tokenizer.py);
train; export F32 and Q8_0 GGUF with gguf-py (export.py); check llama.cpp's perplexity on
both held-out sets against torch's (verify.py). --write-data (re)writes the committed
held-out and calibration sets under data/.
"""
import argparse
import json
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import corpus  # noqa: E402
import datasets  # noqa: E402
import export  # noqa: E402
import model  # noqa: E402
import tokenizer  # noqa: E402
import verify  # noqa: E402

DOMAINS = ("code", "prose")


def log(msg):
    print(msg, flush=True)


def heldout_nll(m, ids, seq):
    """Mean next-token NLL (nats) over non-overlapping windows of `seq` tokens."""
    m.eval()
    tot, n = 0.0, 0
    with torch.no_grad():
        for s in range(0, len(ids) - seq, seq):
            x = torch.from_numpy(ids[s:s + seq + 1].astype(np.int64))[None]
            lg, _ = m(x[:, :-1])
            tot += F.cross_entropy(lg[0], x[0, 1:], reduction="sum").item()
            n += seq
    m.train()
    return tot / max(n, 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=os.path.join(ROOT, "build", "tiny-moe"), help="work directory (default build/tiny-moe)")
    ap.add_argument("--steps", type=int, default=1000, help="optimizer steps (default 1000)")
    ap.add_argument("--batch", type=int, default=16, help="sequences per step (default 16)")
    ap.add_argument("--seq", type=int, default=256, help="tokens per training sequence (default 256)")
    ap.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (default 3e-3)")
    ap.add_argument("--aux", type=float, default=0.01, help="load-balancing loss weight (default 0.01)")
    ap.add_argument("--merges", type=int, default=767, help="BPE merges (default 767: 1024 tokens)")
    ap.add_argument("--train-chars", type=int, default=8_000_000, help="training text per domain (default 8e6)")
    ap.add_argument("--man-pages", type=int, default=2000, help="man pages rendered (default 2000)")
    ap.add_argument("--seed", type=int, default=1, help="torch seed (default 1)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: on a loaded 2-core machine OpenMP's barriers make 2 slower)")
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--n-embd", type=int, default=128)
    ap.add_argument("--n-expert", type=int, default=16)
    ap.add_argument("--n-expert-used", type=int, default=4)
    ap.add_argument("--n-ff-exp", type=int, default=128)
    ap.add_argument("--write-data", action="store_true", help="write the committed held-out/calibration sets")
    ap.add_argument("--name", default="tiny-moe", help="output file stem (default tiny-moe)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    os.makedirs(a.work, exist_ok=True)
    t_start = time.time()

    # 1. data
    log("gathering the domains ...")
    docs = {"code": corpus.by_split(corpus.code_documents()),
            "prose": corpus.by_split(corpus.prose_documents(a.man_pages))}
    for d in DOMAINS:
        log(f"  {d}: " + ", ".join(f"{k} {len(v)} docs {sum(len(t) for _, t in v)} chars" for k, v in docs[d].items()))
    train_docs = {d: datasets.take_chars(docs[d]["train"], a.train_chars) for d in DOMAINS}
    sets = {d: datasets.committed_sets(docs[d]) for d in DOMAINS}
    if a.write_data:
        datasets.write_committed(ROOT, sets)

    # 2. tokenizer: merges learned on a sample of both domains' training text
    sample = [t for d in DOMAINS for _, t in train_docs[d][::10]]
    merges = tokenizer.learn_merges(sample, a.merges)
    vocab_path = os.path.join(a.work, "vocab.gguf")
    tokenizer.write_vocab_gguf(vocab_path, merges)
    tk = tokenizer.LlamaTokenizer(vocab_path)
    eot = len(tokenizer.vocab_tokens(merges)) - 1
    streams, stats = {}, {}
    for d in DOMAINS:
        parts = []
        for _, t in train_docs[d]:
            parts += [tk.encode(t), np.array([eot], dtype=np.int32)]
        streams[d] = np.concatenate(parts)
        chars = sum(len(t) for _, t in train_docs[d])
        stats[d] = {"train_docs": len(train_docs[d]), "train_chars": chars, "train_tokens": int(len(streams[d]))}
        log(f"  {d}: {len(train_docs[d])} docs, {chars} chars -> {len(streams[d])} tokens (llama.cpp)")
    heldout = {d: tk.encode(sets[d]["heldout_text"]) for d in DOMAINS}
    for d in DOMAINS:  # round trip through llama.cpp's detokenizer
        assert tk.decode(heldout[d]) == sets[d]["heldout_text"], f"{d}: llama.cpp tokenization does not round-trip"

    # 3. training
    c = model.Config(n_vocab=eot + 1, n_ctx=a.seq, n_embd=a.n_embd, n_layer=a.n_layer, n_expert=a.n_expert,
                     n_expert_used=a.n_expert_used, n_ff_exp=a.n_ff_exp)
    m = model.TinyMoE(c)
    decay = [p for n, p in m.named_parameters() if p.dim() >= 2]
    nodecay = [p for n, p in m.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": nodecay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95))
    warm = max(1, a.steps // 20)
    t0 = time.time()
    for step in range(a.steps):
        lr = a.lr * (step + 1) / warm if step < warm else \
            a.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, a.steps - warm))))
        for g in opt.param_groups:
            g["lr"] = lr
        rows = []
        for b in range(a.batch):
            s = streams[DOMAINS[b % 2]]
            i = int(rng.integers(0, len(s) - a.seq - 1))
            rows.append(s[i:i + a.seq + 1])
        x = torch.from_numpy(np.stack(rows).astype(np.int64))
        lg, aux = m(x[:, :-1])
        ce = F.cross_entropy(lg.reshape(-1, c.n_vocab), x[:, 1:].reshape(-1))
        loss = ce + a.aux * aux
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        if step % 20 == 0 or step == a.steps - 1:
            el = time.time() - t0
            rate = (step + 1) / el
            log(f"step {step + 1}/{a.steps} loss {ce.item():.3f} aux {float(aux):.3f} lr {lr:.2e} "
                f"{rate * a.batch * a.seq:.0f} tok/s, ETA {(a.steps - step - 1) / rate / 60:.1f} min")
    train_s = time.time() - t0
    nll = {d: heldout_nll(m, heldout[d], a.seq) for d in DOMAINS}
    for d in DOMAINS:
        log(f"held-out {d}: {nll[d]:.4f} nats/token (PPL {math.exp(nll[d]):.2f})")
    torch.save({"config": c.to_dict(), "state": m.state_dict(), "merges": merges}, os.path.join(a.work, "model.pt"))

    # 4. export and 5. verification against llama.cpp
    paths = {}
    for qt in ("f32", "q8_0"):
        paths[qt] = os.path.join(a.work, f"{a.name}-{qt}.gguf")
        export.write_gguf(m, merges, paths[qt], qt)
    checks = {}
    for d in DOMAINS:
        text_path = os.path.join(a.work, f"{d}-heldout.txt")
        with open(text_path, "w") as f:
            f.write(sets[d]["heldout_text"])
        ids = verify.llama_perplexity_tokens(tk, sets[d]["heldout_text"])
        checks[d] = verify.compare_perplexity(m, ids, paths, text_path, n_ctx=128)
        log(f"verify {d}: {json.dumps(checks[d])}")
    summary = {"config": c.to_dict(), "args": vars(a), "data": stats, "heldout_nll": nll,
               "heldout_tokens": {d: int(len(heldout[d])) for d in DOMAINS}, "train_seconds": train_s,
               "total_seconds": time.time() - t_start, "torch": torch.__version__, "verify": checks,
               "files": {k: {"path": p, "bytes": os.path.getsize(p), "sha256": verify.sha256(p)} for k, p in paths.items()}}
    with open(os.path.join(a.work, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    log(f"done in {(time.time() - t_start) / 60:.1f} min; summary in {a.work}/summary.json")


if __name__ == "__main__":
    main()
