#include "stats/milestones.h"

#include "core/error.h"
#include "core/text.h"

#include <cmath>

namespace reap {

using nlohmann::json;

void record_milestones(ExpertStats & stats, uint64_t tokens_done, uint64_t total_tokens) {
    if (tokens_done >= total_tokens) return;
    for (double f : k_milestone_fractions) {
        if (double(tokens_done) < f * double(total_tokens) || find_milestone(stats, f) != nullptr) continue;
        StatsMilestone m{f, tokens_done, stats.layers};
        // Without the merge Grams (--merge-stats): E x E per layer, and convergence reads none.
        for (auto & [il, L] : m.layers) {
            L.router_gram.clear();
            L.output_gram.clear();
        }
        stats.milestones.push_back(std::move(m));
    }
}

const StatsMilestone * find_milestone(const ExpertStats & stats, double fraction) {
    for (const auto & m : stats.milestones) {
        if (m.fraction == fraction) return &m;
    }
    return nullptr;
}

void merge_milestones(std::vector<StatsMilestone> & into, const std::vector<StatsMilestone> & other) {
    std::vector<StatsMilestone> out;
    for (auto & m : into) {
        for (const auto & o : other) {
            if (o.fraction != m.fraction) continue;
            for (auto & [il, L] : m.layers)
                L.merge(o.layers.at(il));  // the layers were checked against the stats'
            m.tokens += o.tokens;
            out.push_back(std::move(m));
            break;
        }
    }
    into = std::move(out);
}

json milestones_to_json(const std::vector<StatsMilestone> & ms) {
    json out = json::array();
    for (const auto & m : ms) {
        json layers = json::object();
        for (const auto & [il, L] : m.layers)
            layers[std::to_string(il)] = layer_to_json(L, false);
        out.push_back({{"fraction", m.fraction}, {"tokens", m.tokens}, {"layers", layers}});
    }
    return out;
}

std::vector<StatsMilestone> milestones_from_json(const json & j, const std::string & origin) {
    auto bad = [&](const std::string & why) { fail("%s: %s: %s", origin.c_str(), k_milestones_key, why.c_str()); };
    if (!j.is_array()) bad("must be an array");
    std::vector<StatsMilestone> out;
    for (const auto & m : j) {
        if (!m.is_object() || !m.contains("fraction") || !m["fraction"].is_number() || !m.contains("tokens") ||
            !m["tokens"].is_number_unsigned() || !m.contains("layers") || !m["layers"].is_object()) {
            bad("each entry needs a numeric fraction, a token count and layers");
        }
        StatsMilestone s;
        s.fraction = m["fraction"].get<double>();
        s.tokens   = m["tokens"].get<uint64_t>();
        if (!(s.fraction > 0 && s.fraction < 1)) bad("fraction must be between 0 and 1");
        for (const auto & other : out) {
            if (other.fraction == s.fraction) bad("fraction " + std::to_string(s.fraction) + " given twice");
        }
        for (auto it = m["layers"].begin(); it != m["layers"].end(); ++it) {
            uint64_t il = 0;
            if (!parse_canonical_uint(it.key(), 1000000, il))
                bad("layer key \"" + it.key() + "\" is not a layer index");
            s.layers.emplace(int(il), layer_from_json(it.value(), origin + " " + k_milestones_key, it.key()));
        }
        out.push_back(std::move(s));
    }
    return out;
}

void check_milestones(const ExpertStats & stats, const std::string & origin) {
    for (const auto & m : stats.milestones) {
        bool same = m.layers.size() == stats.layers.size();
        for (const auto & [il, L] : m.layers) {
            const auto it = stats.layers.find(il);
            same          = same && it != stats.layers.end() && it->second.n_expert() == L.n_expert() &&
                   L.total_tokens <= it->second.total_tokens;
        }
        if (!same) {
            fail(
                "%s: %s: the milestone at %g does not cover the same layers and experts as the statistics (or has "
                "more tokens)",
                origin.c_str(), k_milestones_key, m.fraction);
        }
    }
}

}  // namespace reap
