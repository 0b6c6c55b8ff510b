#include "synth/synth_arch.h"

#include "core/error.h"

#include <cmath>

namespace reap::synth {

namespace {

// Collects keys (prefixed with the architecture) and tensor specs for one model.
struct Builder {
    gguf_context * ctx;
    std::string    arch;
    int64_t        n_embd;
    int            n_layer;
    ArchSpec       spec;

    std::string key(const char * k) const { return arch + "." + k; }
    void        u32(const char * k, uint32_t v) { gguf_set_val_u32(ctx, key(k).c_str(), v); }
    void        f32(const char * k, float v) { gguf_set_val_f32(ctx, key(k).c_str(), v); }
    void        flag(const char * k, bool v) { gguf_set_val_bool(ctx, key(k).c_str(), v); }
    void        u32s(const char * k, const std::vector<uint32_t> & v) {
               gguf_set_arr_data(ctx, key(k).c_str(), GGUF_TYPE_UINT32, v.data(), v.size());
    }

    void               add(TensorSpec t) { spec.tensors.push_back(std::move(t)); }
    static std::string blk(int il, const char * name) { return "blk." + std::to_string(il) + "." + name; }

    // 1-D vectors: norms, biases, per-head scalars. Always F32.
    void vec(const std::string & name, std::vector<int64_t> ne, Init init, float scale = 0.0f, bool residual = false) {
        add({name, std::move(ne), init, scale, false, residual});
    }
    // A matmul weight {n_in, n_out[, n_expert]}; values ~ N(0, gain^2 / n_in). Tensors that
    // write into the residual stream are scaled down with depth (as GPT-2's initialisation does),
    // so the residual norm, and with it the routing anchor's strength, stays steady across layers.
    void mat(const std::string & name, std::vector<int64_t> ne, float gain = 1.0f, bool residual = false) {
        if (residual) {
            gain *= std::sqrt(8.0f / std::max(8.0f, float(n_layer)));
        }
        const float scale = gain / std::sqrt(float(ne[0]));
        const bool  reads = !residual && ne[0] == n_embd;
        add({name, std::move(ne), Init::normal, scale, true, residual, reads});
    }

    // Shared pieces.
    void globals(int64_t width, int64_t n_vocab, bool output) {
        add({"token_embd.weight", {width, n_vocab}, Init::embedding, 0.1f, true, false});
        vec("output_norm.weight", {width}, Init::ones);
        if (output) {
            mat("output.weight", {width, n_vocab});
        }
    }
    void attention_qkvo(int il, int64_t width, int64_t n_q, int64_t n_kv) {
        mat(blk(il, "attn_q.weight"), {width, n_q});
        mat(blk(il, "attn_k.weight"), {width, n_kv});
        mat(blk(il, "attn_v.weight"), {width, n_kv});
        mat(blk(il, "attn_output.weight"), {n_q, width}, 0.5f, true);
    }
    // Router {width, n_expert} stays F32 (llama-quantize never quantizes it either).
    void router(int il, int64_t width, int64_t n_expert) {
        add({blk(il, "ffn_gate_inp.weight"), {width, n_expert}, Init::normal, 0.3f, false, false});
    }
    void experts(int il, int64_t width, int64_t n_ff, int64_t n_expert, bool gate) {
        if (gate) {
            mat(blk(il, "ffn_gate_exps.weight"), {width, n_ff, n_expert});
        }
        mat(blk(il, "ffn_up_exps.weight"), {width, n_ff, n_expert});
        mat(blk(il, "ffn_down_exps.weight"), {n_ff, width, n_expert}, 0.5f, true);
    }
    void common_keys(const Options & o, uint32_t n_vocab) {
        u32("context_length", uint32_t(o.n_ctx_train));
        u32("embedding_length", uint32_t(o.n_embd));
        u32("block_count", uint32_t(o.n_layer));
        u32("expert_count", uint32_t(o.n_expert));
        u32("expert_used_count", uint32_t(o.n_expert_used));
        u32("vocab_size", n_vocab);
    }
};

constexpr int64_t k_head_dim = 64;

// The attention shape of the hand-written qwen3moe and gpt-oss tables: the --n-head, key/value
// heads and head width a preset gives (Qwen3-30B-A3B: 32 heads, 4 key/value, 128 wide), else
// heads 64 wide and half as many key/value heads (the tests' small models).
struct Heads {
    int64_t H, Hkv, D;
};
Heads heads_of(const Options & o) {
    const int64_t D   = o.head_dim > 0 ? o.head_dim : o.n_head > 0 ? o.n_embd / o.n_head : k_head_dim;
    const int64_t H   = o.n_head > 0 ? o.n_head : o.n_embd / D;
    const int64_t Hkv = o.n_head_kv > 0 ? o.n_head_kv : std::max<int64_t>(1, H / 2);
    return {H, Hkv, D};
}

void build_qwen3moe(Builder & b, const Options & o, int64_t n_vocab) {
    const auto [H, Hkv, D] = heads_of(o);
    const int64_t E        = o.n_embd;
    b.common_keys(o, uint32_t(n_vocab));
    b.u32("feed_forward_length", uint32_t(o.n_ff * o.n_expert_used));
    b.u32("expert_feed_forward_length", uint32_t(o.n_ff));
    b.u32("attention.head_count", uint32_t(H));
    b.u32("attention.head_count_kv", uint32_t(Hkv));
    b.u32("attention.key_length", uint32_t(D));
    b.u32("attention.value_length", uint32_t(D));
    b.u32("rope.dimension_count", uint32_t(D));
    b.f32("rope.freq_base", 1000000.0f);
    b.f32("attention.layer_norm_rms_epsilon", 1e-6f);
    b.globals(E, n_vocab, true);
    for (int il = 0; il < o.n_layer; il++) {
        b.vec(Builder::blk(il, "attn_norm.weight"), {E}, Init::ones);
        b.attention_qkvo(il, E, H * D, Hkv * D);
        b.vec(Builder::blk(il, "attn_q_norm.weight"), {D}, Init::ones);
        b.vec(Builder::blk(il, "attn_k_norm.weight"), {D}, Init::ones);
        b.vec(Builder::blk(il, "ffn_norm.weight"), {E}, Init::ones);
        b.router(il, E, o.n_expert);
        b.experts(il, E, o.n_ff, o.n_expert, true);
        b.spec.moe_layers.push_back(il);
    }
}

// Mixtral: llama with stacked experts; the expert width is feed_forward_length.
void build_llama(Builder & b, const Options & o, int64_t n_vocab) {
    const int64_t E = o.n_embd, H = E / k_head_dim, Hkv = std::max<int64_t>(1, H / 2), D = k_head_dim;
    b.common_keys(o, uint32_t(n_vocab));
    b.u32("feed_forward_length", uint32_t(o.n_ff));
    b.u32("attention.head_count", uint32_t(H));
    b.u32("attention.head_count_kv", uint32_t(Hkv));
    b.u32("rope.dimension_count", uint32_t(D));
    b.f32("rope.freq_base", 1000000.0f);
    b.f32("attention.layer_norm_rms_epsilon", 1e-5f);
    b.globals(E, n_vocab, true);
    for (int il = 0; il < o.n_layer; il++) {
        b.vec(Builder::blk(il, "attn_norm.weight"), {E}, Init::ones);
        b.attention_qkvo(il, E, H * D, Hkv * D);
        b.vec(Builder::blk(il, "ffn_norm.weight"), {E}, Init::ones);
        b.router(il, E, o.n_expert);
        b.experts(il, E, o.n_ff, o.n_expert, true);
        b.spec.moe_layers.push_back(il);
    }
}

// DeepSeek-V3 style: MLA attention without q-LoRA, one leading dense layer, a shared expert,
// sigmoid gating with a selection bias, grouped routing, normalised and scaled weights.
void build_deepseek2(Builder & b, const Options & o, int64_t n_vocab) {
    const int64_t E = o.n_embd, H = E / k_head_dim;
    const int64_t kv_lora = E / 2, rope = 32, nope = 64, v_head = 64;
    const int64_t n_ff_dense = 2 * o.n_ff;
    b.common_keys(o, uint32_t(n_vocab));
    b.u32("feed_forward_length", uint32_t(n_ff_dense));
    b.u32("attention.head_count", uint32_t(H));
    b.u32("attention.head_count_kv", 1);
    b.u32("attention.key_length", uint32_t(kv_lora + rope));
    b.u32("attention.value_length", uint32_t(kv_lora));
    b.u32("attention.key_length_mla", uint32_t(nope + rope));
    b.u32("attention.value_length_mla", uint32_t(v_head));
    b.u32("attention.q_lora_rank", 0);
    b.u32("attention.kv_lora_rank", uint32_t(kv_lora));
    b.u32("rope.dimension_count", uint32_t(rope));
    b.f32("rope.freq_base", 10000.0f);
    b.f32("attention.layer_norm_rms_epsilon", 1e-6f);
    b.u32("leading_dense_block_count", 1);
    b.u32("expert_feed_forward_length", uint32_t(o.n_ff));
    b.u32("expert_shared_count", 1);
    b.u32("expert_group_count", uint32_t(o.n_group));
    b.u32("expert_group_used_count", uint32_t(o.n_group_used));
    b.u32("expert_gating_func", 2);  // sigmoid
    b.flag("expert_weights_norm", true);
    b.f32("expert_weights_scale", 2.5f);
    b.globals(E, n_vocab, true);
    for (int il = 0; il < o.n_layer; il++) {
        b.vec(Builder::blk(il, "attn_norm.weight"), {E}, Init::ones);
        b.vec(Builder::blk(il, "attn_kv_a_norm.weight"), {kv_lora}, Init::ones);
        b.mat(Builder::blk(il, "attn_q.weight"), {E, H * (nope + rope)});
        b.mat(Builder::blk(il, "attn_kv_a_mqa.weight"), {E, kv_lora + rope});
        b.mat(Builder::blk(il, "attn_k_b.weight"), {nope, kv_lora, H});
        b.mat(Builder::blk(il, "attn_v_b.weight"), {kv_lora, v_head, H});
        b.mat(Builder::blk(il, "attn_output.weight"), {H * v_head, E}, 0.5f, true);
        b.vec(Builder::blk(il, "ffn_norm.weight"), {E}, Init::ones);
        if (il == 0) {
            b.mat(Builder::blk(il, "ffn_gate.weight"), {E, n_ff_dense});
            b.mat(Builder::blk(il, "ffn_up.weight"), {E, n_ff_dense});
            b.mat(Builder::blk(il, "ffn_down.weight"), {n_ff_dense, E}, 0.5f, true);
            continue;
        }
        b.router(il, E, o.n_expert);
        b.vec(Builder::blk(il, "exp_probs_b.bias"), {o.n_expert}, Init::normal, 0.01f);
        b.experts(il, E, o.n_ff, o.n_expert, true);
        b.mat(Builder::blk(il, "ffn_gate_shexp.weight"), {E, o.n_ff});
        b.mat(Builder::blk(il, "ffn_up_shexp.weight"), {E, o.n_ff});
        b.mat(Builder::blk(il, "ffn_down_shexp.weight"), {o.n_ff, E}, 0.5f, true);
        b.spec.moe_layers.push_back(il);
    }
}

// gpt-oss: attention sinks, alternating sliding-window layers, router and expert biases,
// softmax over the selected experts' logits, swiglu-oai.
void build_gpt_oss(Builder & b, const Options & o, int64_t n_vocab) {
    const auto [H, Hkv, D] = heads_of(o);
    const int64_t E        = o.n_embd;
    b.common_keys(o, uint32_t(n_vocab));
    b.u32("expert_feed_forward_length", uint32_t(o.n_ff));
    b.u32("attention.head_count", uint32_t(H));
    b.u32("attention.head_count_kv", uint32_t(Hkv));
    b.u32("attention.key_length", uint32_t(D));
    b.u32("attention.value_length", uint32_t(D));
    b.u32("attention.sliding_window", 128);
    b.f32("rope.freq_base", 150000.0f);
    b.f32("attention.layer_norm_rms_epsilon", 1e-5f);
    b.globals(E, n_vocab, true);
    for (int il = 0; il < o.n_layer; il++) {
        b.vec(Builder::blk(il, "attn_norm.weight"), {E}, Init::ones);
        b.attention_qkvo(il, E, H * D, Hkv * D);
        b.vec(Builder::blk(il, "attn_output.bias"), {E}, Init::normal, 0.02f, true);
        b.vec(Builder::blk(il, "attn_sinks.weight"), {H}, Init::zeros);
        b.vec(Builder::blk(il, "post_attention_norm.weight"), {E}, Init::ones);
        b.router(il, E, o.n_expert);
        b.vec(Builder::blk(il, "ffn_gate_inp.bias"), {o.n_expert}, Init::normal, 0.01f);
        b.experts(il, E, o.n_ff, o.n_expert, true);
        b.vec(Builder::blk(il, "ffn_gate_exps.bias"), {o.n_ff, o.n_expert}, Init::normal, 0.02f);
        b.vec(Builder::blk(il, "ffn_up_exps.bias"), {o.n_ff, o.n_expert}, Init::normal, 0.02f);
        b.vec(Builder::blk(il, "ffn_down_exps.bias"), {E, o.n_expert}, Init::normal, 0.02f, true);
        b.spec.moe_layers.push_back(il);
    }
}

// Nemotron-H MoE: a hybrid stack cycling Mamba2, MoE, Mamba2, attention, Mamba2, MoE.
// Every layer is x + mixer(norm(x)); experts are up/down only with relu^2; sigmoid gating.
void build_nemotron_h_moe(Builder & b, const Options & o, int64_t n_vocab) {
    static const char pattern[] = "MEMAME";
    const int64_t     E = o.n_embd, H = E / k_head_dim, Hkv = std::max<int64_t>(1, H / 2), D = k_head_dim;
    const int64_t     d_inner = 2 * E, d_state = 128, n_group = 2, d_conv = 4, n_ssm_head = d_inner / 64;
    const int64_t     conv_dim   = d_inner + 2 * n_group * d_state;
    const int64_t     d_in_proj  = 2 * d_inner + 2 * n_group * d_state + n_ssm_head;
    const int64_t     n_ff_shexp = 2 * o.n_ff;

    std::vector<uint32_t> ff(size_t(o.n_layer)), head_kv(size_t(o.n_layer));
    for (int il = 0; il < o.n_layer; il++) {
        const char kind     = pattern[il % 6];
        ff[size_t(il)]      = kind == 'E' ? uint32_t(o.n_ff) : 0;
        head_kv[size_t(il)] = kind == 'A' ? uint32_t(Hkv) : 0;
    }
    b.common_keys(o, uint32_t(n_vocab));
    b.u32s("feed_forward_length", ff);
    b.u32("attention.head_count", uint32_t(H));
    b.u32s("attention.head_count_kv", head_kv);
    b.u32("attention.key_length", uint32_t(D));
    b.u32("attention.value_length", uint32_t(D));
    b.f32("attention.layer_norm_epsilon", 1e-5f);
    b.f32("attention.layer_norm_rms_epsilon", 1e-5f);
    b.u32("ssm.conv_kernel", uint32_t(d_conv));
    b.u32("ssm.inner_size", uint32_t(d_inner));
    b.u32("ssm.state_size", uint32_t(d_state));
    b.u32("ssm.time_step_rank", uint32_t(n_ssm_head));
    b.u32("ssm.group_count", uint32_t(n_group));
    b.u32("expert_feed_forward_length", uint32_t(o.n_ff));
    b.u32("expert_shared_feed_forward_length", uint32_t(n_ff_shexp));
    b.u32("expert_shared_count", 1);
    b.flag("expert_weights_norm", true);
    b.f32("expert_weights_scale", 2.5f);
    b.globals(E, n_vocab, true);
    for (int il = 0; il < o.n_layer; il++) {
        b.vec(Builder::blk(il, "attn_norm.weight"), {E}, Init::ones);
        switch (pattern[il % 6]) {
            case 'M':
                b.mat(Builder::blk(il, "ssm_in.weight"), {E, d_in_proj});
                b.vec(Builder::blk(il, "ssm_conv1d.weight"), {d_conv, conv_dim}, Init::normal, 0.5f);
                b.vec(Builder::blk(il, "ssm_conv1d.bias"), {conv_dim}, Init::zeros);
                b.vec(Builder::blk(il, "ssm_dt.bias"), {n_ssm_head}, Init::ssm_dt_bias);
                b.vec(Builder::blk(il, "ssm_a"), {1, n_ssm_head}, Init::ssm_a);
                b.vec(Builder::blk(il, "ssm_d"), {1, n_ssm_head}, Init::ones);
                b.vec(Builder::blk(il, "ssm_norm.weight"), {d_inner / n_group, n_group}, Init::ones);
                b.mat(Builder::blk(il, "ssm_out.weight"), {d_inner, E}, 0.5f, true);
                break;
            case 'A': b.attention_qkvo(il, E, H * D, Hkv * D); break;
            case 'E':
                b.router(il, E, o.n_expert);
                b.vec(Builder::blk(il, "exp_probs_b.bias"), {o.n_expert}, Init::normal, 0.01f);
                b.experts(il, E, o.n_ff, o.n_expert, false);
                b.mat(Builder::blk(il, "ffn_up_shexp.weight"), {E, n_ff_shexp});
                b.mat(Builder::blk(il, "ffn_down_shexp.weight"), {n_ff_shexp, E}, 0.5f, true);
                b.spec.moe_layers.push_back(il);
                break;
        }
    }
}

}  // namespace

ArchSpec build_arch(const Options & o, uint32_t n_vocab, gguf_context * ctx) {
    Builder b{ctx, o.arch, o.n_embd, o.n_layer, {}};
    if (o.arch == "qwen3moe") {
        build_qwen3moe(b, o, n_vocab);
    } else if (o.arch == "llama") {
        build_llama(b, o, n_vocab);
    } else if (o.arch == "deepseek2") {
        build_deepseek2(b, o, n_vocab);
    } else if (o.arch == "gpt-oss") {
        build_gpt_oss(b, o, n_vocab);
    } else if (o.arch == "nemotron_h_moe") {
        build_nemotron_h_moe(b, o, n_vocab);
    } else {
        fail("synth: unknown architecture '%s'", o.arch.c_str());
    }
    return std::move(b.spec);
}

}  // namespace reap::synth
