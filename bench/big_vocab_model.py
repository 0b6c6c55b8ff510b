#!/usr/bin/python3
"""Gives a `reap synth` model a real vocabulary: the tokenizer of a llama.cpp vocab-only GGUF
(e.g. <llama.cpp>/models/ggml-vocab-qwen2.gguf, 151,936 tokens) with token_embd.weight and
output.weight regenerated at that many rows (random, Q8_0). Everything else is copied as is.

  PYTHONPATH=<llama.cpp>/gguf-py big_vocab_model.py SYNTH.gguf VOCAB.gguf OUT.gguf
"""
import sys

import numpy as np
import gguf
from gguf import quants


def main() -> None:
    src_path, vocab_path, out_path = sys.argv[1:4]
    src = gguf.GGUFReader(src_path)
    voc = gguf.GGUFReader(vocab_path)
    arch = src.fields["general.architecture"].contents()
    n_vocab = len(voc.fields["tokenizer.ggml.tokens"].contents())
    out = gguf.GGUFWriter(out_path, arch)

    def copy(field, value=None):
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        out.add_key_value(field.name, field.contents() if value is None else value, vtype, sub_type=sub)

    for f in src.fields.values():
        if f.name.startswith("GGUF.") or f.name == "general.architecture" or f.name.startswith("tokenizer."):
            continue
        copy(f, n_vocab if f.name.endswith(".vocab_size") else None)
    for f in voc.fields.values():
        if f.name.startswith("tokenizer."):
            copy(f)

    rng = np.random.default_rng(1)
    new = {}
    for t in src.tensors:
        if t.name in ("token_embd.weight", "output.weight"):
            n_embd = int(t.shape[0])
            w = rng.standard_normal((n_vocab, n_embd), dtype=np.float32) * np.float32(0.05)
            new[t.name] = quants.quantize(w, gguf.GGMLQuantizationType.Q8_0)
    for t in src.tensors:
        data = new.get(t.name, t.data)
        ttype = gguf.GGMLQuantizationType.Q8_0 if t.name in new else t.tensor_type
        out.add_tensor_info(t.name, data.shape, data.dtype, data.nbytes, ttype)
    out.write_header_to_file()
    out.write_kv_data_to_file()
    out.write_ti_data_to_file()
    for t in src.tensors:
        out.write_tensor_data(new.get(t.name, t.data))
    out.close()
    print(f"{out_path}: {n_vocab} tokens")


if __name__ == "__main__":
    main()
