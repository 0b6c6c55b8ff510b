#include "moe/inspect.h"

#include "core/error.h"
#include "core/text.h"
#include "moe/expert_budget.h"
#include "synth/synth.h"

#include "ggml.h"

#include <sstream>

namespace reap {

using nlohmann::json;

std::string human_bytes(uint64_t b) {
    const char * units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double       v       = double(b);
    int          u       = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        u++;
    }
    return u == 0 ? strfmt("%llu B", (unsigned long long) b) : strfmt("%.2f %s", v, units[u]);
}

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

json pruned_sizes_json(const MoeShape & shape, const std::function<uint64_t(uint32_t)> & size_with) {
    json sizes = json::array();
    for (double frac : {0.25, 0.5, 0.75}) {
        json s = {{"prune_fraction", frac}};
        try {
            const uint32_t kept = kept_count_for_ratio(shape, 1.0 - frac);
            s["kept_experts"]   = kept;
            s["file_size"]      = size_with(kept);
        } catch (const Error & e) {
            s["kept_experts"] = nullptr;
            s["file_size"]    = nullptr;
            s["why_not"]      = e.what();
        }
        sizes.push_back(s);
    }
    return sizes;
}

// Ground truth of synthetic models (reap synth), when present: an empty object otherwise.
static json planted_json(const GgufFile & f, const MoeLayout & m) {
    json planted = json::object();
    for (const auto & L : m.layers) {
        json p = json::object();
        for (const char * kind : {"dead", "rare", "weak"}) {
            const std::string key = synth::planted_key(L.index, kind);
            if (f.is_array(key)) p[kind] = f.get_uint_array(key);
        }
        if (!p.empty()) planted[std::to_string(L.index)] = p;
    }
    return planted;
}

json inspect_report(const GgufFile & f, const MoeLayout & m) {
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
    r["pruned_sizes"]   = pruned_sizes_json(m.shape(), [&](uint32_t kept) { return m.size_with_experts(kept); });
    json planted        = planted_json(f, m);
    if (!planted.empty()) r["planted"] = planted;
    return r;
}

std::string inspect_text(const json & r) {
    std::ostringstream o;
    auto               ints = [](const json & a) { return a.get<std::vector<int>>(); };
    o << "file:           " << r["file"].get<std::string>();
    if (r["splits"].size() > 1) {
        o << " (" << r["splits"].size() << " splits)";
    }
    o << "\n";
    o << "architecture:   " << r["architecture"].get<std::string>() << "\n";
    o << "size:           " << human_bytes(r["file_size"]) << " (" << r["file_size"].get<uint64_t>() << " bytes, "
      << r["n_tensors"].get<uint64_t>() << " tensors)\n";
    o << "layers:         " << r["n_layer"].get<int>() << " (moe: " << id_ranges(ints(r["moe_layers"]))
      << "; dense: " << id_ranges(ints(r["dense_layers"])) << "; no ffn: " << id_ranges(ints(r["other_layers"]))
      << ")\n";
    o << "experts:        " << r["n_expert"].get<int>() << " per MoE layer, used per token: ";
    if (r["n_expert_used"].is_array()) {
        o << "per layer " << r["n_expert_used"].dump();
    } else {
        o << r["n_expert_used"].get<int>();
    }
    o << "\n";
    o << "expert groups:  " << r["expert_groups"].get<int>();
    if (r["expert_groups"].get<int>() > 1) {
        o << " (" << r["expert_groups_used"].get<int>() << " used per token)";
    }
    o << "\n";
    if (r.value("experts_per_adjugate", 0) > 0) {
        const int g = r["experts_per_adjugate"].get<int>();
        o << "adjugate experts: " << r["n_expert"].get<int>() / g << " (one per group of " << g
          << " experts: *_chexps)\n";
    }
    o << "shared experts: " << r["shared_experts"].get<int>()
      << " (layers: " << id_ranges(ints(r["shared_expert_layers"])) << ")\n";
    if (r["nextn_layers"].get<int>() > 0) {
        o << "nextn layers:   " << r["nextn_layers"].get<int>() << "\n";
    }
    o << "\nexpert tensors (" << r["expert_tensors"].size() << ", " << human_bytes(r["expert_bytes"])
      << " of expert data):\n";
    o << strfmt("  %-36s %-14s %-6s %-22s %12s\n", "name", "role", "type", "shape", "bytes");
    for (const auto & t : r["expert_tensors"]) {
        std::string shape;
        for (const auto & d : t["shape"]) {
            shape += (shape.empty() ? "" : " x ") + std::to_string(d.get<int64_t>());
        }
        o << strfmt("  %-36s %-14s %-6s %-22s %12llu\n", t["name"].get<std::string>().c_str(),
                    t["role"].get<std::string>().c_str(), t["type"].get<std::string>().c_str(), shape.c_str(),
                    (unsigned long long) t["bytes"].get<uint64_t>());
    }
    o << "\nsize after pruning:\n";
    for (const auto & s : r["pruned_sizes"]) {
        const int pct = int(s["prune_fraction"].get<double>() * 100 + 0.5);
        if (s["file_size"].is_null()) {
            o << strfmt("  %2d%% of experts: not possible: %s\n", pct, s["why_not"].get<std::string>().c_str());
        } else {
            const double ratio = double(s["file_size"].get<uint64_t>()) / double(r["file_size"].get<uint64_t>());
            o << strfmt("  %2d%% of experts: keep %3d -> %s (%.1f%% of original)\n", pct, s["kept_experts"].get<int>(),
                        human_bytes(s["file_size"]).c_str(), 100.0 * ratio);
        }
    }
    return o.str();
}

}  // namespace reap
