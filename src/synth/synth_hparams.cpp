#include "synth/synth_hparams.h"

#include <algorithm>
#include <set>

namespace reap::synth {

const std::vector<std::string> & llama_builder_architectures() {
    static const std::vector<std::string> a = {
        // moe_mandatory()
        "llama4", "cohere2moe", "grok", "qwen2moe", "qwen3moe", "qwen3next", "qwen3vlmoe", "qwen35moe", "qwen4exp",
        "phimoe", "dbrx", "olmoe", "arctic", "deepseek", "deepseek2", "deepseek32", "dots3note", "deepseek4", "glm4moe",
        "glm-dsa", "exaone-moe", "bailingmoe", "bailingmoe2", "bailingmoe3", "dots1", "afmoe", "ernie4_5-moe",
        "hunyuan-moe", "hy_v3", "hy_v4", "gpt-oss", "lfm2moe", "smallthinker", "llada-moe", "grovemoe", "minimax-01",
        "minimax-m2", "minimax-m3", "rnd1", "mimo2", "kimi-linear", "kimi-k3", "step35", "mistral4", "mellum", "laguna",
        "maple",
        // moe_implemented(): dense architectures whose loader also takes experts
        "llama", "minicpm", "granite", "granitemoe", "mistral3", "llama-embed"};
    return a;
}

namespace {

bool one_of(const std::string & a, std::initializer_list<const char *> names) {
    return std::any_of(names.begin(), names.end(), [&](const char * n) { return a == n; });
}

// Multi-head latent attention (DeepSeek-V2 style): key/value widths of the latent cache.
bool uses_mla(const std::string & a) {
    return one_of(a, {"deepseek2", "deepseek32", "glm-dsa", "dots3note", "kimi-linear", "bailingmoe3", "kimi-k3",
                      "mistral4", "hy_v4"});
}

// Hybrid stacks whose per-layer head count says which layers are attention (non-zero) and
// which recurrent / convolutional (zero).
bool per_layer_heads(const std::string & a) { return one_of(a, {"lfm2moe", "kimi-linear", "bailingmoe3", "kimi-k3"}); }

// Architectures whose loader requires expert_gating_func, or whose graph aborts without it.
bool requires_gating_func(const std::string & a) {
    return one_of(a, {"bailingmoe2", "bailingmoe3", "deepseek32", "deepseek4", "dots1", "dots3note", "exaone-moe",
                      "hy_v4", "kimi-k3", "kimi-linear", "lfm2moe", "minimax-m2", "minimax-m3", "smallthinker"});
}

struct Kv {
    gguf_context * ctx;
    std::string    arch;

    std::string key(const char * k) const { return arch + "." + k; }
    void        u32(const char * k, uint32_t v) const { gguf_set_val_u32(ctx, key(k).c_str(), v); }
    void        f32(const char * k, float v) const { gguf_set_val_f32(ctx, key(k).c_str(), v); }
    void        flag(const char * k, bool v) const { gguf_set_val_bool(ctx, key(k).c_str(), v); }
    void        u32s(const char * k, const std::vector<uint32_t> & v) const {
               gguf_set_arr_data(ctx, key(k).c_str(), GGUF_TYPE_UINT32, v.data(), v.size());
    }
    void u64s(const char * k, const std::vector<uint64_t> & v) const {
        gguf_set_arr_data(ctx, key(k).c_str(), GGUF_TYPE_UINT64, v.data(), v.size());
    }
    void f32s(const char * k, const std::vector<float> & v) const {
        gguf_set_arr_data(ctx, key(k).c_str(), GGUF_TYPE_FLOAT32, v.data(), v.size());
    }
    // One value per layer: f(il).
    template <class F>
    std::vector<uint32_t> per_layer(int n_layer, F f) const {
        std::vector<uint32_t> v(static_cast<size_t>(n_layer), 0u);
        for (int il = 0; il < n_layer; il++) {
            v[size_t(il)] = uint32_t(f(il));
        }
        return v;
    }
};

void attention_keys(const Kv & kv, const Options & o, uint32_t H, uint32_t head_dim) {
    const std::string & a = kv.arch;
    if (per_layer_heads(a)) {
        const auto heads = kv.per_layer(o.n_layer, [&](int il) { return il % 2 == 1 ? 0u : H; });
        kv.u32s("attention.head_count", heads);
        kv.u32s("attention.head_count_kv", heads);
    } else {
        const uint32_t Hkv = o.n_head_kv > 0    ? uint32_t(o.n_head_kv)
                             : a == "deepseek4" ? 1u
                             : a == "afmoe"     ? std::max(1u, H / 2)
                                                : H;
        kv.u32("attention.head_count", H);
        kv.u32("attention.head_count_kv", Hkv);
    }
    if (a == "deepseek4") {
        kv.u32("attention.key_length", head_dim);
        kv.u32("attention.value_length", head_dim);
        kv.u32("rope.dimension_count", head_dim / 2);
    } else if (uses_mla(a)) {
        kv.u32("attention.key_length", 576);
        kv.u32("attention.value_length", 512);
        kv.u32("rope.dimension_count", 64);
        kv.u32("attention.key_length_mla", 192);
        kv.u32("attention.value_length_mla", 128);
        if (a == "dots3note") {
            kv.u32("attention.kv_lora_rank_swa", 512);
            kv.u32("attention.key_length_swa", 576);
            kv.u32("attention.value_length_swa", 512);
            kv.u32("attention.key_length_mla_swa", 192);
            kv.u32("attention.value_length_mla_swa", 128);
            kv.f32("rope.freq_base_swa", 10000.0f);
            kv.u32s("attention.indexer.types", kv.per_layer(o.n_layer, [](int il) { return il % 2 ? 0 : 1; }));
        }
    } else if (a == "minimax-m3") {
        kv.u32("rope.dimension_count", 64);  // partial rotary within the indexer key length
    } else if (o.head_dim > 0) {
        kv.u32("attention.key_length", head_dim);  // a head width other than n_embd / n_head
        kv.u32("attention.value_length", head_dim);
    }
    kv.f32("attention.clamp_kqv", 8.0f);
    kv.f32("attention.layer_norm_epsilon", 1e-5f);
    kv.f32("attention.layer_norm_rms_epsilon", 1e-5f);
    kv.f32("attention.group_norm_epsilon", 1e-5f);
    kv.u32("attention.group_norm_groups", 8);
    kv.u32("attention.q_lora_rank", a == "deepseek4" ? 64 : 512);
    kv.u32("attention.kv_lora_rank", 512);
    kv.u32("attention.relative_buckets_count", 8);
    kv.u32("attention.sliding_window", 64);
    kv.f32("attention.max_alibi_bias", 8.0f);
    if (one_of(a, {"cohere2moe", "mimo2", "step35", "dots3note", "maple"})) {
        kv.u32s("attention.sliding_window_pattern", kv.per_layer(o.n_layer, [](int il) { return il % 2; }));
    } else {
        kv.u32("attention.sliding_window_pattern", 2);
    }
    kv.u32("attention.indexer.head_count", a == "minimax-m3" ? H : 64u);
    kv.u32("attention.indexer.key_length", a == "qwen4exp" ? head_dim : 128u);
    // Every key selected by the indexer: a realistic top-k only makes the result depend on ties.
    kv.u32("attention.indexer.top_k", 131072);
    kv.u32("attention.indexer.block_size", 4);
    kv.u32("attention.indexer.local_blocks", 1);
    kv.u32s("rope.dimension_sections", {head_dim / 4, head_dim / 4, head_dim / 4, head_dim / 4});
}

void moe_keys(const Kv & kv, const Options & o) {
    const std::string & a = kv.arch;
    kv.u32("expert_feed_forward_length", uint32_t(o.n_ff));
    kv.u32("expert_shared_feed_forward_length", uint32_t(o.n_ff));
    kv.u32("expert_latent_length", uint32_t(o.n_ff));
    kv.u32("interleave_moe_layer_step", a == "llama4" ? 2 : 1);  // llama4: Maverick's every other layer
    kv.u32("expert_count", uint32_t(o.n_expert));
    kv.u32("expert_used_count", uint32_t(o.n_expert_used));
    kv.u32("expert_shared_count", 1);
    if (requires_gating_func(a)) {
        kv.u32("expert_gating_func", a == "deepseek4" ? 4 : 2);  // sqrt-softplus : sigmoid
    }
    kv.f32("expert_group_scale", 1.0f);
    kv.u32("experts_per_group", a == "grovemoe" ? uint32_t(o.experts_per_group) : 1u);
    // Renormalised top-k weights wherever the architecture can (norm_topk_prob in most configs);
    // those that cannot (qwen2moe, olmoe, llama4, ...) keep their fixed behaviour.
    kv.flag("expert_weights_norm", true);
    if (a == "deepseek4" || a == "hy_v4") {
        kv.f32("expert_weights_scale", 1.0f);
    }
}

// Keys only a few architectures read (hyper-connections, compressed attention, per-layer
// embeddings, linear-attention and state-space widths).
void special_keys(const Kv & kv, const Options & o, uint32_t head_dim, uint32_t n_vocab) {
    const std::string & a = kv.arch;
    const uint32_t      E = uint32_t(o.n_embd);
    if (a == "qwen4exp") {
        kv.u32("hyper_connection.count", 4);
        kv.u32("hyper_connection.low_rank", 8);
        kv.u32s("attention.compress_ratios", std::vector<uint32_t>(size_t(o.n_layer), 4));
        const uint32_t        ngram = 3, per_ngram = 2, ple_heads = (ngram - 1) * per_ngram;
        std::vector<uint64_t> offsets(ple_heads), sizes(ple_heads, n_vocab);
        for (uint32_t h = 0; h < ple_heads; h++) {
            offsets[h] = uint64_t(h) * n_vocab;
        }
        kv.u32s("ple.layers", {0});  // the history lives in the recurrent cache: a linear layer
        kv.u32("ple.ngram_size", ngram);
        kv.u32("ple.heads_per_ngram", per_ngram);
        kv.u32("ple.conv_kernel", 4);
        kv.u32("ple.eos_token_id", 0);
        kv.u32("embedding_length_per_layer_input", E / ple_heads);
        kv.u64s("ple.layer_multipliers", {1, 3, 5});
        kv.u64s("ple.head_offsets", offsets);
        kv.u64s("ple.head_vocab_sizes", sizes);
    }
    if (a == "hy_v4") {
        kv.u32("hyper_connection.count", 4);
        kv.f32("hyper_connection.epsilon", 1e-6f);
        kv.f32("hyper_connection.magnitude", 2.0f);
        kv.f32("swiglu_clamp_exp", 10.0f);
        kv.u32s("attention.indexer.types", kv.per_layer(o.n_layer, [](int il) { return il % 2 ? 0 : 1; }));
    }
    if (a == "deepseek4") {
        kv.u32("attention.output_group_count", 8);
        kv.u32("attention.output_lora_rank", 32);
        kv.u32s("attention.compress_ratios", kv.per_layer(o.n_layer, [](int il) {
            return il < 2 ? 0 : il % 2 == 0 ? 4 : 128;
        }));
        kv.f32("attention.compress_rope_freq_base", 160000.0f);
        kv.u32("hyper_connection.count", 4);
        kv.u32("hyper_connection.sinkhorn_iterations", 2);
        kv.f32("hyper_connection.epsilon", 1e-6f);
        kv.u32("hash_layer_count", 0);
        kv.f32("swiglu_clamp_exp", 10.0f);
    }
    if (a == "maple") {
        kv.f32("swiglu_clamp_exp", 7.0f);
    }
    if (a == "bailingmoe3") {
        // Per layer; the leading dense layer unclamped.
        std::vector<float> exp(size_t(o.n_layer), 4.0f), shexp(size_t(o.n_layer), 5.0f);
        exp[0] = shexp[0] = 0.0f;
        kv.f32s("swiglu_clamp_exp", exp);
        kv.f32s("swiglu_clamp_shexp", shexp);
    } else {
        kv.flag("kda.safe_gate", true);
    }
    const bool gated_delta = one_of(a, {"qwen3next", "qwen35moe", "qwen4exp"});
    kv.u32("ssm.inner_size", gated_delta ? 256u : 2 * E);
    kv.u32("ssm.conv_kernel", 4);
    kv.u32("ssm.state_size", 128);
    kv.u32("ssm.time_step_rank", 2);
    kv.u32("ssm.group_count", 2);
    kv.u32("kda.head_dim", 128);
    kv.f32("kda.gate_lower_bound", -5.0f);
    kv.u32("wkv.head_size", head_dim);
    kv.u32("shortconv.l_cache", 3);
    kv.f32("residual_scale", 1.4f);
    kv.u32("attn_res.block_size", 12);
    kv.f32("activation.situ_beta", 4.0f);
    kv.f32("activation.situ_linear_beta", 25.0f);
    kv.u32("time_mix_extra_dim", 64);
    kv.u32("time_decay_extra_dim", 128);
    kv.u32("full_attention_interval", 2);
}

}  // namespace

int default_head_count(const std::string & arch) {
    if (arch == "deepseek4") return 8;
    if (arch == "afmoe") return 4;
    if (uses_mla(arch)) return 1;
    return 2;
}

void add_builder_hparams(gguf_context * ctx, const Options & o, uint32_t n_vocab) {
    const Kv       kv{ctx, o.arch};
    const uint32_t H        = uint32_t(o.n_head > 0 ? o.n_head : default_head_count(o.arch));
    const uint32_t head_dim = o.head_dim > 0 ? uint32_t(o.head_dim) : uint32_t(o.n_embd) / H;
    kv.u32("vocab_size", n_vocab);
    kv.u32("context_length", uint32_t(o.n_ctx_train));
    kv.u32("embedding_length", uint32_t(o.n_embd));
    kv.u32("features_length", uint32_t(o.n_embd));
    kv.u32("block_count", uint32_t(o.n_layer));
    kv.u32("leading_dense_block_count", 1);
    kv.u32("feed_forward_length", uint32_t(o.n_ff));
    kv.flag("use_parallel_residual", false);
    kv.f32("logit_scale", 1.0f);
    attention_keys(kv, o, H, head_dim);
    moe_keys(kv, o);
    special_keys(kv, o, head_dim, n_vocab);
}

}  // namespace reap::synth
