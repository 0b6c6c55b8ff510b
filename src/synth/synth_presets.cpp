#include "synth/synth_presets.h"

#include "core/error.h"

namespace reap::synth {

namespace {

Options qwen3_30b_a3b() {
    Options o;
    o.arch = "qwen3moe";
    // The hand-written qwen3moe table with its real attention (32 query heads, 4 key/value heads
    // of 128): written slice by slice with no F32 copy of the model (llama.cpp's builder would
    // lay one out first, ~120 GB at full depth).
    o.n_layer       = 48;
    o.n_embd        = 2048;
    o.n_ff          = 768;
    o.n_expert      = 128;
    o.n_expert_used = 8;
    o.n_head        = 32;
    o.n_head_kv     = 4;
    o.head_dim      = 128;
    o.n_ctx_train   = 40960;
    o.vocab         = "qwen2";  // 151,936 tokens
    return o;
}

Options gpt_oss_20b() {
    Options o;
    o.arch          = "gpt-oss";  // the hand-written table, as qwen3-30b-a3b
    o.n_layer       = 24;
    o.n_embd        = 2880;
    o.n_ff          = 2880;
    o.n_expert      = 32;
    o.n_expert_used = 4;
    o.n_head        = 64;
    o.n_head_kv     = 8;
    o.head_dim      = 64;
    o.n_ctx_train   = 131072;
    return o;  // o200k (201,088 tokens) ships with no vocab GGUF: the built-in vocabulary
}

// DeepSeek-V3's routing shape (256 experts in 8 groups, 4 groups and 8 experts per token, one
// shared expert, sigmoid with selection bias) at 1/8 of its widths and 12 of its 61 layers.
Options deepseek_v3_small() {
    Options o;
    o.arch          = "deepseek2";
    o.n_layer       = 12;
    o.n_embd        = 896;
    o.n_ff          = 256;
    o.n_expert      = 256;
    o.n_expert_used = 8;
    o.n_group       = 8;
    o.n_group_used  = 4;
    o.n_ctx_train   = 16384;
    o.vocab         = "deepseek-llm";
    return o;
}

}  // namespace

const std::vector<Preset> & presets() {
    static const std::vector<Preset> p = {
        {"qwen3-30b-a3b",
         "Qwen3-30B-A3B: 48 layers, 128 experts (8 per token), n_embd 2048, expert FF 768, qwen2 vocab",
         qwen3_30b_a3b()},
        {"gpt-oss-20b", "gpt-oss-20b: 24 layers, 32 experts (4 per token), n_embd 2880, expert FF 2880", gpt_oss_20b()},
        {"deepseek-v3-small",
         "DeepSeek-V3's grouped routing (256 experts, 8 groups, 4 + 8 per token, 1 shared) at 1/8 width, 12 layers",
         deepseek_v3_small()},
    };
    return p;
}

Options preset_options(const std::string & name) {
    std::string names;
    for (const auto & p : presets()) {
        if (p.name == name) return p.options;
        names += (names.empty() ? "" : ", ") + p.name;
    }
    fail("synth: unknown preset '%s' (choose one of: %s)", name.c_str(), names.c_str());
}

}  // namespace reap::synth
