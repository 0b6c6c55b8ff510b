#include "gguf/moe_layout.h"

#include "core/error.h"
#include "core/text.h"
#include "moe/expert_budget.h"

#include "ggml.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>

namespace reap {

const char * expert_role_name(ExpertRole r) {
    switch (r) {
        case ExpertRole::expert_weights: return "experts";
        case ExpertRole::router: return "router";
        case ExpertRole::selection_bias: return "selection-bias";
        case ExpertRole::expert_ids: return "expert-ids";
        case ExpertRole::chunk_weights: return "chunk-experts";
        case ExpertRole::unknown: return "unknown";
    }
    return "?";
}

std::string arch_key(const GgufFile & f, const char * key) { return f.arch() + "." + key; }

// Classifies the part of a tensor name after "blk.<il>."; returns false when the tensor has
// nothing to do with routed experts.
static bool classify(const std::string & suffix, ExpertRole & role) {
    static const char * const exps[]  = {"ffn_gate_exps.", "ffn_up_exps.", "ffn_down_exps.", "ffn_gate_up_exps."};
    static const char * const parts[] = {"weight", "bias", "scale", "input_scale"};
    for (const char * e : exps) {
        if (starts_with(suffix, e)) {
            const std::string part = suffix.substr(std::strlen(e));
            role = std::find(std::begin(parts), std::end(parts), part) != std::end(parts) ? ExpertRole::expert_weights
                                                                                          : ExpertRole::unknown;
            return true;
        }
    }
    if (suffix == "ffn_gate_inp.weight" || suffix == "ffn_gate_inp.bias") {
        role = ExpertRole::router;
        return true;
    }
    if (suffix == "exp_probs_b" || suffix == "exp_probs_b.bias" || suffix == "exp_probs_b_vl" ||
        suffix == "exp_probs_b_vl.bias") {
        role = ExpertRole::selection_bias;
        return true;
    }
    if (starts_with(suffix, "ffn_gate_tid2eid")) {
        role = ExpertRole::expert_ids;
        return true;
    }
    static const char * const chexps[] = {"ffn_gate_chexps.weight", "ffn_up_chexps.weight", "ffn_down_chexps.weight"};
    if (std::find(std::begin(chexps), std::end(chexps), suffix) != std::end(chexps)) {
        role = ExpertRole::chunk_weights;
        return true;
    }
    const std::string base = suffix.substr(0, suffix.find('.'));
    if (base.find("_norm") != std::string::npos) {
        return false;  // a norm before the experts (arctic's ffn_norm_exps): one vector shared by all
    }
    if (ends_with(base, "_exps") || ends_with(base, "_chexps")) {
        role = ExpertRole::unknown;
        return true;
    }
    return false;
}

// An optional integer key that must fit the 32 bits llama.cpp reads it into.
static uint32_t u32_key(const GgufFile & f, const char * key, uint32_t def = 0) {
    const std::string k = arch_key(f, key);
    const auto        v = f.get_uint(k);
    if (v && *v > UINT32_MAX) {
        fail("%s: %s = %llu does not fit 32 bits", f.path().c_str(), k.c_str(), (unsigned long long) *v);
    }
    return v ? uint32_t(*v) : def;
}

// The model's hyperparameters that concern experts, as the file states them. `moe`: refuse a
// model without experts (n_expert 0 otherwise).
static void read_hyperparameters(const GgufFile & f, MoeLayout & m, bool moe) {
    m.arch = f.arch();
    if (m.arch.empty()) {
        fail("%s: no general.architecture key: not a llama.cpp model", f.path().c_str());
    }
    m.file_size = f.file_size();
    m.alignment = uint32_t(f.get_uint("general.alignment").value_or(32));

    const auto n_layer = f.get_uint(arch_key(f, "block_count"));
    if (!n_layer || *n_layer == 0) {
        fail("%s: missing or invalid %s", f.path().c_str(), arch_key(f, "block_count").c_str());
    }
    if (*n_layer > k_llama_max_layers) {
        fail("%s: %s = %llu, more than llama.cpp's %u layers", f.path().c_str(), arch_key(f, "block_count").c_str(),
             (unsigned long long) *n_layer, k_llama_max_layers);
    }
    m.n_layer = uint32_t(*n_layer);

    const auto n_expert = f.get_uint(arch_key(f, "expert_count"));
    if (moe && (!n_expert || *n_expert == 0)) {
        fail("%s: not a mixture-of-experts model (%s is %s)", f.path().c_str(), arch_key(f, "expert_count").c_str(),
             n_expert ? "0" : "missing");
    }
    if (n_expert && *n_expert > k_llama_max_experts) {
        fail("%s: %s = %llu, more than llama.cpp's %u", f.path().c_str(), arch_key(f, "expert_count").c_str(),
             (unsigned long long) *n_expert, k_llama_max_experts);
    }
    m.n_expert = uint32_t(n_expert.value_or(0));

    const auto used = f.get_uint_per_layer(arch_key(f, "expert_used_count"), m.n_layer);
    if (moe && used.empty()) {
        fail("%s: missing %s", f.path().c_str(), arch_key(f, "expert_used_count").c_str());
    }
    for (auto u : used) {
        if (u > UINT32_MAX) {
            fail("%s: %s = %llu does not fit 32 bits", f.path().c_str(), arch_key(f, "expert_used_count").c_str(),
                 (unsigned long long) u);
        }
        m.n_expert_used.push_back(uint32_t(u));
    }
    m.n_expert_used_is_array = f.is_array(arch_key(f, "expert_used_count"));
    m.n_expert_groups        = u32_key(f, "expert_group_count");
    m.n_group_used           = u32_key(f, "expert_group_used_count");
    m.n_expert_shared        = u32_key(f, "expert_shared_count");
    m.n_nextn_layers         = u32_key(f, "nextn_predict_layers");
    if (f.has_key(arch_key(f, "expert_feed_forward_length"))) {
        m.expert_ff_key = arch_key(f, "expert_feed_forward_length");
    }
}

void check_llama_loadable(const GgufFile & f) {
    MoeLayout m;
    read_hyperparameters(f, m, false);
    check_llama_limits(m, m.n_expert, f.path());
}

void check_llama_limits(const MoeLayout & m, uint32_t n_expert, const std::string & what) {
    const char *   arch = m.arch.c_str();
    const uint32_t used = m.max_expert_used();
    if (m.n_nextn_layers > m.n_layer) {
        fail("%s: %s.nextn_predict_layers = %u exceeds %s.block_count = %u", what.c_str(), arch, m.n_nextn_layers, arch,
             m.n_layer);
    }
    if (n_expert == 0) {  // a dense model: nothing may refer to experts
        if (used > 0 || m.n_expert_groups > 0) {
            fail("%s: %s.expert_used_count = %u and expert_group_count = %u without experts", what.c_str(), arch, used,
                 m.n_expert_groups);
        }
        return;
    }
    if (used == 0 || used > n_expert) {
        fail("%s: %s.expert_used_count = %u, must be 1 to the %u experts", what.c_str(), arch, used, n_expert);
    }
    if (m.n_expert_groups >= n_expert) {
        fail("%s: %s.expert_group_count = %u, must be below the %u experts", what.c_str(), arch, m.n_expert_groups,
             n_expert);
    }
    if (m.n_expert_groups > 1) {
        if (n_expert % m.n_expert_groups != 0) {
            fail("%s: %u experts do not divide into %s.expert_group_count = %u groups", what.c_str(), n_expert, arch,
                 m.n_expert_groups);
        }
        if (m.n_group_used == 0 || m.n_group_used >= m.n_expert_groups) {
            fail("%s: %s.expert_group_used_count = %u, must be 1 to %u with %u expert groups", what.c_str(), arch,
                 m.n_group_used, m.n_expert_groups - 1, m.n_expert_groups);
        }
    }
}

// Files one layer tensor: a shared expert or dense FFN marks its layer, a routed-expert tensor
// joins the layer's expert tensors.
static void add_layer_tensor(const GgufFile & f, const TensorInfo & t, MoeLayout & m,
                             std::vector<bool> & has_dense_ffn) {
    std::string suffix;
    const int   il = tensor_layer(t.name, &suffix);
    if (il < 0) {
        return;
    }
    if (uint32_t(il) >= m.n_layer) {
        fail("%s: tensor '%s' is in layer %d but the model has %u layers", f.path().c_str(), t.name.c_str(), il,
             m.n_layer);
    }
    const std::string base = suffix.substr(0, suffix.find('.'));
    if (ends_with(base, "_shexp")) {
        m.layers[il].has_shared_expert = true;
        return;
    }
    if (base == "ffn_up" || base == "ffn_down" || base == "ffn_gate") {
        has_dense_ffn[il] = true;
        return;
    }
    ExpertRole role;
    if (!classify(suffix, role)) {
        return;
    }
    ExpertTensor et{&t, il, suffix, role, 0};
    if (role != ExpertRole::expert_ids && role != ExpertRole::unknown && role != ExpertRole::chunk_weights) {
        // The expert axis is ggml's outermost dimension, so one expert's slice is a
        // contiguous run of nbytes / n_expert bytes.
        if (t.ne[t.n_dims - 1] != int64_t(m.n_expert)) {
            fail("%s: tensor '%s' has outer dimension %lld, expected n_expert = %u", f.path().c_str(), t.name.c_str(),
                 (long long) t.ne[t.n_dims - 1], m.n_expert);
        }
        if (t.n_dims == 1 && ggml_blck_size(t.type) > 1) {
            // One expert's slice would be a part of a quantization block: no whole-block copy
            // of the kept experts makes a valid tensor.
            fail(
                "%s: tensor '%s' is a 1-D %s tensor over the experts; a slice of one expert is not a whole "
                "number of blocks",
                f.path().c_str(), t.name.c_str(), ggml_type_name(t.type));
        }
        et.slice_bytes = t.nbytes / m.n_expert;
    }
    m.layers[il].expert_tensors.push_back(m.expert_tensors.size());
    m.expert_tensors.push_back(et);
}

// GroveMoE's adjugate experts: experts_per_group routed experts share one chunk expert, so the
// *_chexps tensors have n_expert / experts_per_group slices (llama.cpp's loader divides).
static void check_chunk_experts(const GgufFile & f, MoeLayout & m) {
    const std::string key = arch_key(f, "experts_per_group");
    const uint32_t    g   = u32_key(f, "experts_per_group");
    for (auto & e : m.expert_tensors) {
        if (e.role != ExpertRole::chunk_weights) continue;
        if (g == 0 || m.n_expert % g != 0) {
            fail("%s: tensor '%s' needs %s to divide the %u experts, but it is %u", f.path().c_str(),
                 e.info->name.c_str(), key.c_str(), m.n_expert, g);
        }
        const int64_t outer = e.info->ne[e.info->n_dims - 1];
        if (outer != int64_t(m.n_expert / g)) {
            fail("%s: tensor '%s' has outer dimension %lld, expected %u experts / %s = %u", f.path().c_str(),
                 e.info->name.c_str(), (long long) outer, m.n_expert, key.c_str(), m.n_expert / g);
        }
        if (outer < int64_t(m.max_expert_used())) {
            // llama.cpp's graph views experts-per-token outputs of the adjugate block: it aborts.
            fail("%s: %lld adjugate experts ('%s') are fewer than the %u experts used per token", f.path().c_str(),
                 (long long) outer, e.info->name.c_str(), m.max_expert_used());
        }
        m.experts_per_chunk = g;
        e.slice_bytes       = e.info->nbytes / uint64_t(outer);
    }
}

MoeLayout analyze_moe(const GgufFile & f) {
    MoeLayout m;
    read_hyperparameters(f, m, true);
    check_llama_limits(m, m.n_expert, f.path());

    m.layers.resize(m.n_layer);
    for (uint32_t il = 0; il < m.n_layer; il++) {
        m.layers[il].index             = int(il);
        m.layers[il].kind              = LayerKind::other;
        m.layers[il].n_expert_used     = 0;
        m.layers[il].has_shared_expert = false;
        m.layers[il].is_nextn          = il >= m.n_layer - std::min(m.n_nextn_layers, m.n_layer);
    }
    std::vector<bool> has_dense_ffn(m.n_layer, false);
    for (const auto & t : f.tensors()) {
        add_layer_tensor(f, t, m, has_dense_ffn);
    }
    check_chunk_experts(f, m);
    for (auto & L : m.layers) {
        if (!L.expert_tensors.empty()) {
            L.kind          = LayerKind::moe;
            L.n_expert_used = m.n_expert_used[size_t(L.index)];
        } else if (has_dense_ffn[size_t(L.index)]) {
            L.kind = LayerKind::dense;
        }
    }
    if (m.moe_layer_indices().empty()) {
        fail("%s: %s = %u but no tensor has an expert axis", f.path().c_str(), arch_key(f, "expert_count").c_str(),
             m.n_expert);
    }
    return m;
}

std::vector<int> MoeLayout::moe_layer_indices() const {
    std::vector<int> out;
    for (const auto & L : layers) {
        if (L.kind == LayerKind::moe) {
            out.push_back(L.index);
        }
    }
    return out;
}

uint32_t MoeLayout::max_expert_used() const {
    uint32_t m = 0;
    for (auto u : n_expert_used) {
        m = std::max(m, u);
    }
    return m;
}

MoeShape MoeLayout::shape() const {
    MoeShape s;
    s.arch              = arch;
    s.n_layer           = n_layer;
    s.n_expert          = n_expert;
    s.n_expert_used     = max_expert_used();
    s.n_expert_groups   = n_expert_groups;
    s.n_group_used      = n_group_used;
    s.experts_per_chunk = experts_per_chunk;
    for (const auto & L : layers) {
        if (L.kind == LayerKind::moe) (L.is_nextn ? s.nextn_layers : s.moe_layers).push_back(L.index);
    }
    return s;
}

uint64_t MoeLayout::expert_bytes() const {
    uint64_t b = 0;
    for (const auto & e : expert_tensors) {
        b += e.slice_bytes * uint64_t(e.info->ne[e.info->n_dims - 1]);
    }
    return b;
}

}  // namespace reap
