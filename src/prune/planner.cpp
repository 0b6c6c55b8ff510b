#include "prune/planner.h"

#include "core/error.h"
#include "moe/expert_budget.h"
#include "core/fs_util.h"
#include "core/hash.h"

#include <algorithm>
#include <fstream>
#include <numeric>
#include <set>

namespace reap {

using nlohmann::json;

Criterion parse_criterion(const std::string & s) {
    if (s == "reap") return Criterion::reap;
    if (s == "ean") return Criterion::ean;
    if (s == "frequency") return Criterion::frequency;
    if (s == "weighted-frequency") return Criterion::weighted_frequency;
    if (s == "random") return Criterion::random;
    fail("unknown criterion '%s' (reap, ean, frequency, weighted-frequency, random)", s.c_str());
}

const char * criterion_name(Criterion c) {
    switch (c) {
        case Criterion::reap:               return "reap";
        case Criterion::ean:                return "ean";
        case Criterion::frequency:          return "frequency";
        case Criterion::weighted_frequency: return "weighted-frequency";
        case Criterion::random:             return "random";
    }
    return "?";
}

void check_stats_match(const ExpertStats & stats, const MoeLayout & layout, const std::string & path) {
    std::set<int> want;
    for (const auto & L : layout.layers) {
        if (L.kind == LayerKind::moe && !L.is_nextn) want.insert(L.index);
    }
    std::set<int> have;
    for (const auto & [il, L] : stats.layers) {
        have.insert(il);
        if (L.n_expert() != layout.n_expert) {
            fail("%s: layer %d has %zu experts but the model has %u: statistics of another model", path.c_str(), il,
                 L.n_expert(), layout.n_expert);
        }
    }
    if (have != want) {
        auto list = [](const std::set<int> & s) {
            std::string o;
            for (int i : s) o += (o.empty() ? "" : ",") + std::to_string(i);
            return o;
        };
        fail("%s: statistics cover MoE layers {%s} but the model's are {%s}: statistics of another model", path.c_str(),
             list(have).c_str(), list(want).c_str());
    }
}

std::vector<double> expert_scores(const LayerStats & L, Criterion c, uint64_t seed, int layer) {
    switch (c) {
        case Criterion::reap:      return L.reap();
        case Criterion::ean:       return L.ean_mean();
        case Criterion::frequency: return L.activation_frequency();
        case Criterion::weighted_frequency: {
            auto f = L.activation_frequency();
            auto g = L.avg_gate_weight();
            for (size_t e = 0; e < f.size(); e++) f[e] *= g[e];
            return f;
        }
        case Criterion::random: {
            // splitmix64 of (seed, layer, expert): a reproducible baseline.
            std::vector<double> r(L.n_expert());
            for (size_t e = 0; e < r.size(); e++) {
                r[e] = keyed_uniform(seed, uint64_t(layer), e);
            }
            return r;
        }
    }
    return {};
}

std::vector<uint32_t> pruning_order(std::vector<uint32_t> ids, const std::vector<double> & score,
                                    const std::vector<uint64_t> & count) {
    std::sort(ids.begin(), ids.end(), [&](uint32_t a, uint32_t b) {
        if (score[a] != score[b]) return score[a] < score[b];
        if (count[a] != count[b]) return count[a] < count[b];
        return a < b;
    });
    return ids;
}

// The `n` experts of `ids` pruned last, ascending.
static std::vector<uint32_t> best_of(const std::vector<uint32_t> & ids, size_t n, const std::vector<double> & score,
                                     const std::vector<uint64_t> & count) {
    const auto            order = pruning_order(ids, score, count);
    std::vector<uint32_t> kept(order.end() - long(n), order.end());
    std::sort(kept.begin(), kept.end());
    return kept;
}

Plan make_plan(const ExpertStats & stats, const MoeLayout & layout, Criterion criterion, uint32_t kept, uint64_t seed) {
    check_kept_count(layout, kept);
    Plan p;
    p.criterion  = criterion_name(criterion);
    p.n_expert   = layout.n_expert;
    p.kept       = kept;
    p.keep_ratio = double(kept) / double(layout.n_expert);
    p.seed       = seed;
    const uint32_t groups    = layout.n_expert_groups > 1 ? layout.n_expert_groups : 1;
    const uint32_t per_group = layout.n_expert / groups;
    int            last_regular = -1;
    for (const auto & L : layout.layers) {
        if (L.kind != LayerKind::moe) continue;
        LayerPlan lp;
        if (L.is_nextn) {
            if (last_regular < 0) {
                fail("next-token-prediction layer %d comes before any MoE layer with statistics", L.index);
            }
            lp                   = p.layers.at(last_regular);
            lp.scores.clear();
            lp.copied_from_layer = true;
            p.layers[L.index]    = lp;
            continue;
        }
        const LayerStats & S = stats.layers.at(L.index);
        lp.scores            = expert_scores(S, criterion, seed, L.index);
        for (uint32_t g = 0; g < groups; g++) {
            std::vector<uint32_t> ids(per_group);
            std::iota(ids.begin(), ids.end(), g * per_group);
            const auto best = best_of(ids, kept / groups, lp.scores, S.count);
            lp.kept.insert(lp.kept.end(), best.begin(), best.end());
        }
        std::sort(lp.kept.begin(), lp.kept.end());
        for (uint32_t e = 0; e < layout.n_expert; e++) {
            if (!std::binary_search(lp.kept.begin(), lp.kept.end(), e)) lp.dropped.push_back(e);
        }
        p.layers[L.index] = lp;
        last_regular      = L.index;
    }
    return p;
}

void check_plan(const Plan & plan, const MoeLayout & layout, const std::string & origin) {
    if (plan.n_expert != layout.n_expert) {
        fail("%s: plan is for %u experts per layer, the model has %u", origin.c_str(), plan.n_expert, layout.n_expert);
    }
    check_kept_count(layout, plan.kept);
    const uint32_t groups    = layout.n_expert_groups > 1 ? layout.n_expert_groups : 1;
    const uint32_t per_group = layout.n_expert / groups;
    for (const auto & L : layout.layers) {
        if (L.kind != LayerKind::moe) continue;
        auto it = plan.layers.find(L.index);
        if (it == plan.layers.end()) {
            fail("%s: plan has no entry for MoE layer %d of the model", origin.c_str(), L.index);
        }
        const auto & kept = it->second.kept;
        if (kept.size() != plan.kept) {
            fail("%s: layer %d keeps %zu experts, the plan says %u (llama.cpp needs one count for all layers)",
                 origin.c_str(), L.index, kept.size(), plan.kept);
        }
        std::vector<uint32_t> per(groups, 0);
        for (size_t i = 0; i < kept.size(); i++) {
            if (kept[i] >= layout.n_expert || (i > 0 && kept[i] <= kept[i - 1])) {
                fail("%s: layer %d: kept ids must be ascending, unique and below %u", origin.c_str(), L.index,
                     layout.n_expert);
            }
            per[kept[i] / per_group]++;
        }
        for (uint32_t g = 0; g < groups; g++) {
            if (per[g] != plan.kept / groups) {
                fail("%s: layer %d keeps %u experts in group %u; every group must keep %u", origin.c_str(), L.index,
                     per[g], g, plan.kept / groups);
            }
        }
    }
    for (const auto & [il, lp] : plan.layers) {
        if (il < 0 || il >= int(layout.n_layer) || layout.layers[size_t(il)].kind != LayerKind::moe) {
            fail("%s: plan names layer %d, which is not a MoE layer of the model", origin.c_str(), il);
        }
    }
}

json Plan::to_json() const {
    json layers_j = json::object();
    for (const auto & [il, lp] : layers) {
        json l = {{"kept", lp.kept}, {"dropped", lp.dropped}};
        if (!lp.scores.empty()) {
            json ks = json::object(), ds = json::object();
            for (auto e : lp.kept) ks[std::to_string(e)] = lp.scores[e];
            for (auto e : lp.dropped) ds[std::to_string(e)] = lp.scores[e];
            l["kept_scores"]    = ks;
            l["dropped_scores"] = ds;
        }
        if (lp.copied_from_layer) l["copied_from_last_regular_layer"] = true;
        layers_j[std::to_string(il)] = l;
    }
    return {{"criterion", criterion}, {"keep_ratio", keep_ratio}, {"n_expert", n_expert}, {"kept_experts", kept},
            {"seed", seed},           {"model", model},           {"stats", stats},       {"layers", layers_j}};
}

Plan Plan::from_json(const json & j, const std::string & origin) {
    try {
        Plan p;
        p.criterion  = j.at("criterion").get<std::string>();
        p.n_expert   = j.at("n_expert").get<uint32_t>();
        p.kept       = j.at("kept_experts").get<uint32_t>();
        p.keep_ratio = j.value("keep_ratio", double(p.kept) / std::max(1u, p.n_expert));
        p.seed       = j.value("seed", uint64_t(0));
        p.model      = j.value("model", std::string());
        p.stats      = j.value("stats", std::string());
        for (const auto & [k, l] : j.at("layers").items()) {
            LayerPlan lp;
            lp.kept = l.at("kept").get<std::vector<uint32_t>>();
            if (l.contains("dropped")) lp.dropped = l["dropped"].get<std::vector<uint32_t>>();
            lp.copied_from_layer = l.value("copied_from_last_regular_layer", false);
            p.layers[std::stoi(k)] = lp;
        }
        return p;
    } catch (const json::exception & e) {
        fail("%s: not a valid plan (%s)", origin.c_str(), e.what());
    } catch (const std::logic_error & e) {
        fail("%s: not a valid plan (bad layer key)", origin.c_str());
    }
}

Plan Plan::load(const std::string & path) { return from_json(read_json_file(path, "plan file"), path); }

}  // namespace reap
