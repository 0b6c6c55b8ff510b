#include "gguf/gguf_inspect.h"

#include "gguf/planted_keys.h"

#include "ggml.h"

namespace reap {

using nlohmann::json;

static const char * kind_name(LayerKind k) {
    switch (k) {
        case LayerKind::moe: return "moe";
        case LayerKind::dense: return "dense";
        case LayerKind::other: return "other";
    }
    return "?";
}

// Per-layer entries, and the layer indices by kind.
static void add_layers(const MoeLayout & m, json & r) {
    std::vector<int> moe, dense, other, shexp;
    json             layers = json::array();
    for (const auto & L : m.layers) {
        (L.kind == LayerKind::moe ? moe : L.kind == LayerKind::dense ? dense : other).push_back(L.index);
        if (L.has_shared_expert) {
            shexp.push_back(L.index);
        }
        layers.push_back({{"index", L.index},
                          {"kind", kind_name(L.kind)},
                          {"n_expert_used", L.n_expert_used},
                          {"shared_expert", L.has_shared_expert},
                          {"nextn", L.is_nextn}});
    }
    r["layers"]               = layers;
    r["moe_layers"]           = moe;
    r["dense_layers"]         = dense;
    r["other_layers"]         = other;
    r["shared_expert_layers"] = shexp;
}

static json expert_tensors_json(const MoeLayout & m) {
    json tensors = json::array();
    for (const auto & e : m.expert_tensors) {
        std::vector<int64_t> shape(e.info->ne, e.info->ne + e.info->n_dims);
        tensors.push_back({{"name", e.info->name},
                           {"layer", e.layer},
                           {"role", expert_role_name(e.role)},
                           {"type", ggml_type_name(e.info->type)},
                           {"shape", shape},
                           {"bytes", e.info->nbytes},
                           {"bytes_per_expert", e.slice_bytes}});
    }
    return tensors;
}

// Ground truth of synthetic models (reap synth), when present: an empty object otherwise.
static json planted_json(const GgufFile & f, const MoeLayout & m) {
    json planted = json::object();
    for (const auto & L : m.layers) {
        json p = json::object();
        for (const char * kind : {"dead", "rare", "weak", "super", "super_channel"}) {
            const std::string key = planted_key(L.index, kind);
            if (f.is_array(key)) p[kind] = f.get_uint_array(key);
        }
        if (!p.empty()) planted[std::to_string(L.index)] = p;
    }
    return planted;
}

json gguf_inspect_facts(const GgufFile & f, const MoeLayout & m) {
    json r;
    r["file"]         = f.path();
    r["splits"]       = f.split_paths();
    r["architecture"] = m.arch;
    r["name"]         = f.get_str("general.name");
    r["n_layer"]      = m.n_layer;
    r["file_size"]    = m.file_size;
    r["n_tensors"]    = f.tensors().size();
    r["n_expert"]     = m.n_expert;
    if (m.n_expert_used_is_array) {
        r["n_expert_used"] = m.n_expert_used;
    } else {
        r["n_expert_used"] = m.n_expert_used.empty() ? 0 : m.n_expert_used[0];
    }
    r["expert_groups"]        = m.n_expert_groups;
    r["expert_groups_used"]   = m.n_group_used;
    r["experts_per_adjugate"] = m.experts_per_chunk;  // GroveMoE's groups; 0: no adjugate experts
    r["shared_experts"]       = m.n_expert_shared;
    r["nextn_layers"]         = m.n_nextn_layers;
    add_layers(m, r);
    r["expert_tensors"] = expert_tensors_json(m);
    r["expert_bytes"]   = m.expert_bytes();
    json planted        = planted_json(f, m);
    if (!planted.empty()) r["planted"] = planted;
    return r;
}

}  // namespace reap
