"""Writes a trained TinyMoE as a qwen3moe GGUF with llama.cpp's gguf-py (tensor names and
layouts as llama.cpp's converter writes them: a torch weight [out, in] is ggml ne [in, out])."""
import numpy as np

import tokenizer


def _np(t):
    return t.detach().float().cpu().numpy().astype(np.float32)


def write_gguf(m, merges, path, qtype="f32"):
    import gguf
    c = m.c
    w = gguf.GGUFWriter(path, "qwen3moe")
    w.add_name("reap.cpp tiny-moe")
    w.add_context_length(c.n_ctx)
    w.add_embedding_length(c.n_embd)
    w.add_block_count(c.n_layer)
    w.add_feed_forward_length(c.n_ff_exp)
    w.add_expert_feed_forward_length(c.n_ff_exp)
    w.add_head_count(c.n_head)
    w.add_head_count_kv(c.n_head_kv)
    w.add_key_length(c.head_dim)
    w.add_value_length(c.head_dim)
    w.add_rope_dimension_count(c.head_dim)
    w.add_rope_freq_base(c.rope_base)
    w.add_layer_norm_rms_eps(c.eps)
    w.add_expert_count(c.n_expert)
    w.add_expert_used_count(c.n_expert_used)
    q8 = qtype == "q8_0"
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0 if q8 else gguf.LlamaFileType.ALL_F32)
    tokenizer.add_vocab(w, merges)

    def put(name, arr, quantize=True):
        if q8 and quantize and arr.ndim >= 2 and arr.shape[-1] % 32 == 0:
            w.add_tensor(name, gguf.quants.quantize(arr, gguf.GGMLQuantizationType.Q8_0),
                         raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            w.add_tensor(name, arr)

    put("token_embd.weight", _np(m.tok_embd.weight))
    for i, b in enumerate(m.blocks):
        p = f"blk.{i}."
        put(p + "attn_norm.weight", _np(b.attn_norm.weight))
        put(p + "attn_q.weight", _np(b.attn.wq.weight))
        put(p + "attn_k.weight", _np(b.attn.wk.weight))
        put(p + "attn_v.weight", _np(b.attn.wv.weight))
        put(p + "attn_output.weight", _np(b.attn.wo.weight))
        put(p + "attn_q_norm.weight", _np(b.attn.q_norm.weight))
        put(p + "attn_k_norm.weight", _np(b.attn.k_norm.weight))
        put(p + "ffn_norm.weight", _np(b.ffn_norm.weight))
        # The router stays F32 (as llama.cpp's converter keeps it): routing decisions are sensitive.
        put(p + "ffn_gate_inp.weight", _np(b.moe.router.weight), quantize=False)
        put(p + "ffn_gate_exps.weight", np.stack([_np(g) for g in b.moe.gate]))
        put(p + "ffn_up_exps.weight", np.stack([_np(g) for g in b.moe.up]))
        put(p + "ffn_down_exps.weight", np.stack([_np(g) for g in b.moe.down]))
    put("output_norm.weight", _np(m.out_norm.weight))
    put("output.weight", _np(m.output.weight))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
