#include "hf/hf_inspect.h"

#include "core/error.h"

#include <map>

namespace reap {

using nlohmann::json;

namespace {

const char * role_name(HfRole r) {
    switch (r) {
        case HfRole::expert: return "expert_weights";
        case HfRole::fused: return "expert_fused";
        case HfRole::router: return "router";
        case HfRole::other: break;
    }
    return "other";
}

json expert_tensors(const HfCheckpoint & c, const HfLayout & layout, uint64_t & bytes) {
    json                          out = json::array();
    std::map<std::string, size_t> grouped;  // "…experts.{j}.suffix" -> entry
    for (size_t i = 0; i < c.tensors.size(); i++) {
        const HfTensorRole & r = layout.roles[i];
        const StTensor &     t = *c.tensors[i].t;
        if (r.role == HfRole::other) continue;
        const uint64_t per_expert = r.role == HfRole::expert ? t.nbytes : r.slice_bytes;
        if (r.role != HfRole::router) bytes += t.nbytes;
        const std::string name = r.role == HfRole::expert ? r.prefix + "{j}" + r.suffix : t.name;
        const auto        it   = grouped.find(name);
        if (it != grouped.end()) {
            out[it->second]["bytes"] = out[it->second]["bytes"].get<uint64_t>() + t.nbytes;
            continue;
        }
        std::vector<uint64_t> shape = t.shape;
        if (r.role == HfRole::expert) shape.insert(shape.begin(), layout.config.n_expert);
        grouped[name] = out.size();
        out.push_back({{"name", name},
                       {"layer", r.layer},
                       {"role", role_name(r.role)},
                       {"type", t.dtype},
                       {"shape", shape},
                       {"bytes", t.nbytes},
                       {"bytes_per_expert", per_expert}});
    }
    return out;
}

}  // namespace

json hf_inspect_facts(const HfCheckpoint & c, const HfLayout & layout) {
    const MoeShape & s = layout.shape;
    json             r;
    r["file"]   = c.dir;
    r["splits"] = c.shard_names;
    r["architecture"] =
        s.arch.empty() ? (c.config.contains("model_type") ? c.config["model_type"] : json("?")) : json(s.arch);
    r["name"]               = "";
    r["n_layer"]            = s.n_layer;
    r["file_size"]          = c.weights_size();
    r["n_tensors"]          = c.tensors.size();
    r["n_expert"]           = s.n_expert;
    r["n_expert_used"]      = s.n_expert_used;
    r["expert_groups"]      = s.n_expert_groups;
    r["expert_groups_used"] = s.n_group_used;
    std::vector<int> moe, shexp;
    json             layers = json::array();
    for (const auto & L : layout.layers) {
        moe.push_back(L.index);
        if (L.shared_expert) shexp.push_back(L.index);
        layers.push_back({{"index", L.index},
                          {"kind", "moe"},
                          {"n_expert_used", s.n_expert_used},
                          {"shared_expert", L.shared_expert},
                          {"nextn", L.nextn},
                          {"block", L.block}});
    }
    r["shared_experts"] = shexp.empty() ? 0 : 1;
    r["nextn_layers"]   = s.nextn_layers.size();
    r["layers"]         = layers;
    r["moe_layers"]     = moe;
    r["dense_layers"]   = json::array();  // not told apart from layers without an FFN
    std::vector<int> other;
    for (int il = 0; il < int(s.n_layer); il++) {
        if (!s.is_moe_layer(il)) other.push_back(il);
    }
    r["other_layers"]         = other;
    r["shared_expert_layers"] = shexp;
    r["expert_count_keys"]    = json::array();
    for (const auto & k : layout.config.expert_count_keys)
        r["expert_count_keys"].push_back(k.section.empty() ? k.key : k.section + "." + k.key);
    uint64_t bytes      = 0;
    r["expert_tensors"] = expert_tensors(c, layout, bytes);
    r["expert_bytes"]   = bytes;
    return r;
}

}  // namespace reap
