// What `reap synth` can make and with which options: the architecture lists (hand-written
// tables and llama.cpp's builder), the weight types, each architecture's defaults and the checks
// that refuse a combination llama.cpp could not load.
#include "core/error.h"
#include "synth/synth.h"
#include "synth/synth_hparams.h"
#include "synth/synth_user_model.h"

#include "ggml.h"

#include <algorithm>

namespace reap::synth {

// Hand-written tensor tables: the tests' default models (fixed shapes they rely on) and
// nemotron_h_moe, whose Mamba/MoE/attention cycle llama.cpp's builder cannot be asked for.
const std::vector<std::string> & architectures() {
    static const std::vector<std::string> a = {"qwen3moe", "llama", "deepseek2", "gpt-oss", "nemotron_h_moe"};
    return a;
}

static bool is_one_of(const std::vector<std::string> & list, const std::string & a) {
    return std::find(list.begin(), list.end(), a) != list.end();
}

const std::vector<std::string> & all_architectures() {
    static const std::vector<std::string> all = [] {
        std::vector<std::string> a = architectures();
        for (const auto & b : llama_builder_architectures()) {
            if (!is_one_of(a, b)) a.push_back(b);
        }
        return a;
    }();
    return all;
}

bool uses_hand_written_layout(const Options & o) {
    return is_one_of(architectures(), o.arch) && (!o.llama_builder || o.arch == "nemotron_h_moe");
}

const std::vector<ggml_type> & weight_types() {
    static const std::vector<ggml_type> t = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_Q8_0, GGML_TYPE_Q4_K};
    return t;
}

namespace {

// Each hand-written architecture's default depth and expert counts (the tests rely on these
// shapes); every architecture llama.cpp's builder lays out gets the same small default.
struct Defaults {
    const char * arch;
    int          layers, experts, used;
};
constexpr Defaults k_hand_written_defaults[] = {
    {"qwen3moe", 8, 16, 4}, {"llama", 8, 8, 2},           {"deepseek2", 6, 16, 4},
    {"gpt-oss", 4, 16, 4},  {"nemotron_h_moe", 6, 16, 4},
};
constexpr Defaults k_builder_defaults = {"", 4, 16, 4};

void check_known_architecture(const Options & o) {
    const auto & archs = all_architectures();
    if (is_one_of(archs, o.arch)) return;
    std::string list;
    for (const auto & a : archs) {
        list += (list.empty() ? "" : ", ") + a;
    }
    fail_usage("synth: unknown architecture '%s' (choose one of: %s)", o.arch.c_str(), list.c_str());
}

// Fills the zero (and -1) fields from the defaults table.
void apply_defaults(Options & o) {
    Defaults d = k_builder_defaults;
    if (uses_hand_written_layout(o)) {
        for (const auto & h : k_hand_written_defaults) {
            if (o.arch == h.arch) d = h;
        }
    }
    if (o.n_layer == 0) o.n_layer = d.layers;
    if (o.n_expert == 0) o.n_expert = d.experts;
    if (o.n_expert_used == 0) o.n_expert_used = std::min(d.used, o.n_expert);
    const int plant = std::max(1, o.n_expert / 8);
    if (o.n_dead < 0) o.n_dead = plant;
    if (o.n_rare < 0) o.n_rare = plant;
    if (o.n_weak < 0) o.n_weak = plant;
}

void check_sizes(const Options & o) {
    if (o.n_layer < 1 || o.n_layer > 512) fail_usage("synth: --layers must be in [1, 512], got %d", o.n_layer);
    if (o.n_embd < 64 || o.n_embd % 64 != 0 || o.n_embd > 16384) {
        fail_usage("synth: --n-embd must be a multiple of 64 (the head size) in [64, 16384], got %d", o.n_embd);
    }
    if (o.n_ff < 1 || o.n_ff > 65536) fail_usage("synth: --n-ff must be in [1, 65536], got %d", o.n_ff);
    if (o.n_expert < 2 || o.n_expert > 1024) fail_usage("synth: --n-expert must be in [2, 1024], got %d", o.n_expert);
    if (o.n_expert_used < 1 || o.n_expert_used > o.n_expert) {
        fail_usage("synth: --n-expert-used must be in [1, n_expert=%d], got %d", o.n_expert, o.n_expert_used);
    }
    if (o.n_ctx_train < 16) fail_usage("synth: --ctx-train must be at least 16");
}

// The attention shape, where the layout takes one: every builder architecture, and the
// hand-written qwen3moe and gpt-oss tables (the presets' real heads).
void check_heads(const Options & o) {
    const bool hand = uses_hand_written_layout(o);
    if (hand && o.arch != "qwen3moe" && o.arch != "gpt-oss") return;
    const int H = o.n_head > 0 ? o.n_head : hand ? o.n_embd / 64 : default_head_count(o.arch);
    if (o.n_head < 0 || (o.head_dim == 0 && o.n_embd % H != 0)) {
        fail_usage("synth: --n-head %d does not divide --n-embd %d", H, o.n_embd);
    }
    if (o.n_head_kv < 0 || (o.n_head_kv > 0 && H % o.n_head_kv != 0)) {
        fail_usage("synth: %d key/value heads do not divide %d heads", o.n_head_kv, H);
    }
    if (o.head_dim < 0 || o.head_dim % 2 != 0 || o.head_dim > 1024) {
        fail_usage("synth: head width %d must be even and at most 1024", o.head_dim);
    }
}

// What one architecture's llama.cpp loader needs beyond the common sizes; fills the deepseek2
// expert groups and grovemoe's adjugate groups where they are zero.
void check_architecture(Options & o) {
    const bool hand = uses_hand_written_layout(o);
    if (o.arch == "llama4" && !hand && o.n_layer < 4) {
        fail_usage("synth: llama4 needs at least 4 layers (no-RoPE every 4th)");
    }
    if (o.arch == "deepseek2" && hand) {
        if (o.n_layer < 2) fail_usage("synth: deepseek2 needs at least 2 layers (one dense, one MoE)");
        if (o.n_layer == 26 || o.n_layer == 27 || o.n_layer == 47 || o.n_layer == 48) {
            fail_usage(
                "synth: deepseek2 with %d layers triggers llama.cpp's model-specific defaults; pick another count",
                o.n_layer);
        }
        if (o.n_expert % 2 != 0 || o.n_expert < 4) {
            fail_usage("synth: deepseek2 uses expert groups: --n-expert must be even and at least 4");
        }
        if (o.n_group == 0) o.n_group = o.n_expert % 4 == 0 && o.n_expert / 4 >= 2 ? 4 : 2;
        if (o.n_group_used == 0) o.n_group_used = o.n_group / 2;
        if (o.n_group < 2 || o.n_expert % o.n_group != 0 || o.n_group_used < 1 || o.n_group_used >= o.n_group) {
            fail_usage("synth: deepseek2: %d expert groups (%d used) do not divide %d experts", o.n_group,
                       o.n_group_used, o.n_expert);
        }
        if (o.n_expert_used > o.n_group_used * (o.n_expert / o.n_group)) {
            fail_usage("synth: deepseek2: %d experts per token exceed what %d of %d groups hold", o.n_expert_used,
                       o.n_group_used, o.n_group);
        }
    }
    if (o.arch == "grovemoe") {
        if (o.experts_per_group == 0) o.experts_per_group = 2;
        if (o.experts_per_group < 1 || o.n_expert % o.experts_per_group != 0) {
            fail_usage("synth: grovemoe: %d experts per adjugate group do not divide %d experts", o.experts_per_group,
                       o.n_expert);
        }
    }
    if (o.arch == "nemotron_h_moe" && o.n_layer < 4) {
        // The layer pattern is Mamba, MoE, Mamba, attention, ...: llama.cpp cannot run a hybrid
        // model without an attention layer (it has no KV cache buffer to bind).
        fail_usage("synth: nemotron_h_moe needs at least 4 layers (the first attention layer is layer 3)");
    }
}

void check_planted_and_type(const Options & o) {
    if (o.n_dead + o.n_rare + o.n_weak + o.n_super > o.n_expert - o.n_expert_used || o.n_dead < 0 || o.n_rare < 0 ||
        o.n_weak < 0 || o.n_super < 0) {
        fail_usage(
            "synth: %d dead + %d rare + %d weak + %d super experts leave fewer healthy experts than the %d used per "
            "token",
            o.n_dead, o.n_rare, o.n_weak, o.n_super, o.n_expert_used);
    }
    const auto & types = weight_types();
    if (std::find(types.begin(), types.end(), o.type) == types.end()) {
        fail_usage("synth: weight type %s is not supported (use F32, F16, Q8_0 or Q4_K)", ggml_type_name(o.type));
    }
}

}  // namespace

Options resolve(Options o) {
    check_known_architecture(o);
    apply_defaults(o);
    check_sizes(o);
    check_heads(o);
    check_architecture(o);
    check_planted_and_type(o);
    return o;
}

}  // namespace reap::synth
