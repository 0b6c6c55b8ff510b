#include "moe/inspect.h"

#include "core/error.h"
#include "core/text.h"
#include "moe/expert_budget.h"

#include <algorithm>
#include <sstream>

namespace reap {

using nlohmann::json;

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

// A synthetic model's planted ground truth, one line per MoE layer: "layer 1: dead [3, 9];
// rare [5]; weak [2]; super [7 (channel 12)]". Empty for a model without it.
static std::string planted_text(const json & r) {
    if (!r.contains("planted")) return "";
    std::ostringstream o;
    o << "\nplanted experts (reap synth's ground truth):\n";
    std::vector<int> layers;  // numerically: JSON keeps "10" before "2"
    for (const auto & [layer, p] : r["planted"].items())
        layers.push_back(std::stoi(layer));
    std::sort(layers.begin(), layers.end());
    for (int il : layers) {
        const json & p = r["planted"][std::to_string(il)];
        o << "  layer " << il << ":";
        const char * sep = " ";
        for (const char * kind : {"dead", "rare", "weak", "super"}) {
            if (!p.contains(kind)) continue;
            const auto  ids = p[kind].get<std::vector<int>>();
            const auto  ch  = p.value("super_channel", json::array()).get<std::vector<int>>();
            std::string list;
            for (size_t i = 0; i < ids.size(); i++) {
                list += (i ? ", " : "") + std::to_string(ids[i]);
                if (std::string(kind) == "super" && i < ch.size()) list += strfmt(" (channel %d)", ch[i]);
            }
            o << sep << kind << " [" << list << "]";
            sep = "; ";
        }
        o << "\n";
    }
    return o.str();
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
    o << planted_text(r);
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
