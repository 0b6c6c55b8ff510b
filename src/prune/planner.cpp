#include "prune/planner.h"

#include "core/error.h"
#include "moe/expert_budget.h"
#include "core/fs_util.h"

#include <algorithm>
#include <fstream>
#include <numeric>
#include <set>

namespace reap {

using nlohmann::json;

std::vector<uint32_t> kept_experts(const std::vector<double> & score, const std::vector<uint64_t> & count,
                                   const MoeShape & shape, uint32_t kept) {
    const uint32_t        groups    = shape.groups();
    const uint32_t        per_group = shape.n_expert / groups;
    std::vector<uint32_t> out;
    for (uint32_t g = 0; g < groups; g++) {
        std::vector<uint32_t> ids(per_group);
        std::iota(ids.begin(), ids.end(), g * per_group);
        const auto order = pruning_order(ids, score, count);
        out.insert(out.end(), order.end() - long(kept / groups), order.end());  // pruned last
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::vector<uint32_t> dropped_experts(const std::vector<double> & score, const std::vector<uint64_t> & count,
                                      const MoeShape & shape, uint32_t kept) {
    const auto            keep = kept_experts(score, count, shape, kept);
    std::vector<uint32_t> out;
    for (uint32_t e = 0; e < shape.n_expert; e++) {
        if (!std::binary_search(keep.begin(), keep.end(), e)) out.push_back(e);
    }
    return out;
}

std::vector<uint32_t> dropped_at_ratio(const std::vector<double> & score, const std::vector<uint64_t> & count,
                                       const MoeShape & shape, double keep_ratio) {
    return dropped_experts(score, count, shape, round_kept_count(shape, keep_ratio));
}

std::vector<uint32_t> dropped_at_ratio(const std::vector<double> & score, const std::vector<uint64_t> & count,
                                       double keep_ratio) {
    MoeShape ungrouped;
    ungrouped.n_expert = uint32_t(score.size());
    return dropped_at_ratio(score, count, ungrouped, keep_ratio);
}

Plan make_plan(const ExpertStats & stats, const MoeShape & shape, Criterion criterion, uint32_t kept, uint64_t seed) {
    check_kept_count(shape, kept);
    Plan p;
    p.criterion  = criterion_name(criterion);
    p.n_expert   = shape.n_expert;
    p.kept       = kept;
    p.keep_ratio = double(kept) / double(shape.n_expert);
    p.seed       = seed;
    int last_regular = -1;
    for (int il : shape.all_moe_layers()) {
        LayerPlan lp;
        const bool is_nextn = std::binary_search(shape.nextn_layers.begin(), shape.nextn_layers.end(), il);
        if (is_nextn) {
            if (last_regular < 0) {
                fail("next-token-prediction layer %d comes before any MoE layer with statistics", il);
            }
            lp                   = p.layers.at(last_regular);
            lp.scores.clear();
            lp.copied_from_layer = true;
            p.layers[il]         = lp;
            continue;
        }
        const LayerStats & S = stats.layers.at(il);
        lp.scores            = expert_scores(S, criterion, seed, il);
        lp.kept              = kept_experts(lp.scores, S.count, shape, kept);
        lp.dropped           = dropped_experts(lp.scores, S.count, shape, kept);
        p.layers[il] = lp;
        last_regular = il;
    }
    return p;
}

void check_plan(const Plan & plan, const MoeShape & shape, const std::string & origin) {
    if (plan.n_expert != shape.n_expert) {
        fail("%s: plan is for %u experts per layer, the model has %u", origin.c_str(), plan.n_expert, shape.n_expert);
    }
    check_kept_count(shape, plan.kept);
    const uint32_t groups    = shape.groups();
    const uint32_t per_group = shape.n_expert / groups;
    for (int il : shape.all_moe_layers()) {
        auto it = plan.layers.find(il);
        if (it == plan.layers.end()) {
            fail("%s: plan has no entry for MoE layer %d of the model", origin.c_str(), il);
        }
        const auto & kept = it->second.kept;
        if (kept.size() != plan.kept) {
            fail("%s: layer %d keeps %zu experts, the plan says %u (llama.cpp needs one count for all layers)",
                 origin.c_str(), il, kept.size(), plan.kept);
        }
        std::vector<uint32_t> per(groups, 0);
        for (size_t i = 0; i < kept.size(); i++) {
            if (kept[i] >= shape.n_expert || (i > 0 && kept[i] <= kept[i - 1])) {
                fail("%s: layer %d: kept ids must be ascending, unique and below %u", origin.c_str(), il,
                     shape.n_expert);
            }
            per[kept[i] / per_group]++;
        }
        for (uint32_t g = 0; g < groups; g++) {
            if (per[g] != plan.kept / groups) {
                fail("%s: layer %d keeps %u experts in group %u; every group must keep %u", origin.c_str(), il,
                     per[g], g, plan.kept / groups);
            }
        }
    }
    for (const auto & [il, lp] : plan.layers) {
        if (!shape.is_moe_layer(il)) {
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
