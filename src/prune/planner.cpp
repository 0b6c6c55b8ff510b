#include "prune/planner.h"

#include "core/error.h"
#include "core/fs_util.h"
#include "core/text.h"
#include "moe/expert_budget.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <numeric>
#include <set>

namespace reap {

using nlohmann::json;

// GroveMoE: the kept_per_chunk() best experts of each adjugate group, in the groups whose kept
// experts score highest in total (ties: more activations, then the lower group).
static std::vector<uint32_t> kept_in_chunks(const std::vector<double> & score, const std::vector<uint64_t> & count,
                                            const MoeShape & shape, uint32_t kept) {
    const uint32_t                     g = shape.experts_per_chunk, per = kept_per_chunk(shape, kept);
    std::vector<std::vector<uint32_t>> best(shape.n_chunk());
    std::vector<double>                value(shape.n_chunk(), 0.0);
    std::vector<uint64_t>              used(shape.n_chunk(), 0);
    for (uint32_t c = 0; c < shape.n_chunk(); c++) {
        std::vector<uint32_t> ids(g);
        std::iota(ids.begin(), ids.end(), c * g);
        const auto order = pruning_order(ids, score, count);
        best[c].assign(order.end() - long(per), order.end());
        for (uint32_t e : best[c]) {
            value[c] += score[e];
            used[c] += count[e];
        }
    }
    std::vector<uint32_t> chunks(shape.n_chunk());
    std::iota(chunks.begin(), chunks.end(), 0u);
    std::stable_sort(chunks.begin(), chunks.end(), [&](uint32_t a, uint32_t b) {
        return value[a] != value[b] ? value[a] > value[b] : used[a] > used[b];
    });
    std::vector<uint32_t> out;
    for (uint32_t i = 0; i < kept / per; i++)
        out.insert(out.end(), best[chunks[i]].begin(), best[chunks[i]].end());
    std::sort(out.begin(), out.end());
    return out;
}

std::vector<uint32_t> kept_experts(const std::vector<double> & score, const std::vector<uint64_t> & count,
                                   const MoeShape & shape, uint32_t kept) {
    if (shape.experts_per_chunk > 0) {
        return kept_in_chunks(score, count, shape, kept);
    }
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

// The scores that rank the experts when `protect` is on: a super expert ranks above every other
// expert of the layer (max + 1 + its own score keeps the order among super experts).
static std::vector<double> protected_scores(std::vector<double> score, int il, const SuperExperts & protect) {
    double top = 0;
    for (double v : score)
        top = std::max(top, std::fabs(v));
    for (const auto & s : protect.experts) {
        if (s.layer == il) score[s.expert] += top + 1.0;
    }
    return score;
}

Plan make_plan(const ExpertStats & stats, const MoeShape & shape, Criterion criterion, uint32_t kept, uint64_t seed,
               const SuperExperts * protect, const std::map<int, std::vector<double>> * scores) {
    check_kept_count(shape, kept);
    Plan p;
    if (protect != nullptr) {
        p.protect_super_experts = true;
        p.super_experts         = *protect;
    }
    p.criterion      = criterion_name(criterion);
    p.n_expert       = shape.n_expert;
    p.kept           = kept;
    p.keep_ratio     = double(kept) / double(shape.n_expert);
    p.seed           = seed;
    int last_regular = -1;
    for (int il : shape.all_moe_layers()) {
        LayerPlan  lp;
        const bool is_nextn = std::binary_search(shape.nextn_layers.begin(), shape.nextn_layers.end(), il);
        if (is_nextn) {
            if (last_regular < 0) {
                fail("next-token-prediction layer %d comes before any MoE layer with statistics", il);
            }
            lp = p.layers.at(last_regular);
            lp.scores.clear();
            lp.copied_from_layer = true;
            p.layers[il]         = lp;
            continue;
        }
        const LayerStats & S = stats.layers.at(il);
        lp.scores            = scores ? scores->at(il) : expert_scores(S, criterion, seed, il);
        const auto rank      = protect ? protected_scores(lp.scores, il, *protect) : lp.scores;
        lp.kept              = kept_experts(rank, S.count, shape, kept);
        lp.dropped           = dropped_experts(rank, S.count, shape, kept);
        if (protect) {
            const auto unprotected = dropped_experts(lp.scores, S.count, shape, kept);
            for (const auto & s : protect->experts) {
                if (s.layer != il) continue;
                p.protected_experts.push_back(
                    {s, std::binary_search(unprotected.begin(), unprotected.end(), s.expert)});
            }
        }
        p.layers[il] = lp;
        last_regular = il;
    }
    return p;
}

Plan uniform_plan(const MoeShape & shape, uint32_t kept) {
    check_kept_count(shape, kept);
    Plan p;
    p.criterion  = criterion_name(Criterion::reap);
    p.n_expert   = shape.n_expert;
    p.kept       = kept;
    p.keep_ratio = double(kept) / double(shape.n_expert);
    const std::vector<double>   equal(shape.n_expert, 0.0);
    const std::vector<uint64_t> unseen(shape.n_expert, 0);
    LayerPlan                   lp;
    lp.kept    = kept_experts(equal, unseen, shape, kept);
    lp.dropped = dropped_experts(equal, unseen, shape, kept);
    for (int il : shape.all_moe_layers()) {
        p.layers[il]                   = lp;
        p.layers[il].copied_from_layer = std::binary_search(shape.nextn_layers.begin(), shape.nextn_layers.end(), il);
    }
    return p;
}

// GroveMoE: every adjugate group keeps kept_per_chunk() of its experts or none (llama.cpp maps
// expert j to adjugate j / experts_per_group with one value for all).
static void check_chunk_balance(const std::vector<uint32_t> & kept, const MoeShape & shape, const std::string & origin,
                                int il) {
    if (shape.experts_per_chunk == 0) return;
    const uint32_t        per = kept_per_chunk(shape, uint32_t(kept.size()));
    std::vector<uint32_t> in_chunk(shape.n_chunk(), 0);
    for (uint32_t e : kept)
        in_chunk[e / shape.experts_per_chunk]++;
    for (uint32_t c = 0; c < shape.n_chunk(); c++) {
        if (in_chunk[c] != 0 && in_chunk[c] != per) {
            fail(
                "%s: layer %d keeps %u of the %u experts of adjugate group %u; keeping %zu, every group keeps %u or "
                "none",
                origin.c_str(), il, in_chunk[c], shape.experts_per_chunk, c, kept.size(), per);
        }
    }
}

void check_plan(const Plan & plan, const MoeShape & shape, const std::string & origin) {
    if (plan.n_expert != shape.n_expert) {
        fail("%s: plan is for %u experts per layer, the model has %u", origin.c_str(), plan.n_expert, shape.n_expert);
    }
    // A plan names experts by id: the ids of another model of the same shape mean other experts
    // (refused as its statistics are: check_stats_match).
    const std::string other = router_identity_mismatch(plan.router_fingerprint, plan.router_norms, shape);
    if (!other.empty()) {
        fail("%s: a plan for a model with %s: a plan of another model (made for %s)", origin.c_str(), other.c_str(),
             plan.model.empty() ? "an unnamed model" : plan.model.c_str());
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
                fail("%s: layer %d keeps %u experts in group %u; every group must keep %u", origin.c_str(), il, per[g],
                     g, plan.kept / groups);
            }
        }
        check_chunk_balance(kept, shape, origin, il);
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
            for (auto e : lp.kept)
                ks[std::to_string(e)] = lp.scores[e];
            for (auto e : lp.dropped)
                ds[std::to_string(e)] = lp.scores[e];
            l["kept_scores"]    = ks;
            l["dropped_scores"] = ds;
        }
        if (lp.copied_from_layer) l["copied_from_last_regular_layer"] = true;
        layers_j[std::to_string(il)] = l;
    }
    json j = {{"criterion", criterion}, {"keep_ratio", keep_ratio}, {"n_expert", n_expert}, {"kept_experts", kept},
              {"seed", seed},           {"model", model},           {"stats", stats},       {"layers", layers_j}};
    if (protect_super_experts) j["super_experts"] = super_experts_json();
    if (!convergence.is_null()) j["calibration_convergence"] = convergence;
    if (!calibration_sets.is_null()) j["calibration_sets"] = calibration_sets;
    if (!router_fingerprint.empty()) j["router_fingerprint"] = router_fingerprint;
    if (!router_norms.empty()) {
        json n = json::object();
        for (const auto & [il, row] : router_norms)
            n[std::to_string(il)] = row;
        j["router_norms"] = n;
    }
    return j;
}

json Plan::super_experts_json() const {
    json list = json::array();
    for (const auto & pe : protected_experts) {
        const SuperExpert & s     = pe.expert;
        const auto &        ids   = layers.at(s.layer).kept;
        const bool          stays = std::binary_search(ids.begin(), ids.end(), s.expert);
        list.push_back({{"layer", s.layer},
                        {"expert", s.expert},
                        {"max_activation", s.max},
                        {"channel", s.channel},
                        {"ratio_to_typical", s.ratio},
                        {"kept", stays},
                        {"criterion_would_drop", pe.criterion_drops},
                        {"why", super_experts.why(s)}});
    }
    json typical = json::object();
    for (const auto & [il, t] : super_experts.typical)
        typical[std::to_string(il)] = t;
    return {{"protected", true},
            {"measured", super_experts.measured},
            {"rule", super_experts.measured ? super_experts.rule_text()
                                            : "the stats have no max_activation (an older reap): nothing protected"},
            {"min_ratio", k_super_expert_ratio},
            {"typical_max", typical},
            {"experts", list}};
}

namespace {

// Strict reads of a plan file: integers are integers in range (no wrapping, no truncated
// floats), layer keys are canonical indices; errors name the file and the field.
struct PlanReader {
    const std::string & origin;

    [[noreturn]] void bad(const std::string & what) const {
        fail("%s: not a valid plan (%s)", origin.c_str(), what.c_str());
    }
    uint64_t to_uint(const json & v, const std::string & what, uint64_t max) const {
        const bool non_negative = v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0);
        if (!non_negative || v.get<uint64_t>() > max) {
            bad(strfmt("%s must be an integer from 0 to %llu, not %s", what.c_str(), (unsigned long long) max,
                       v.dump().c_str()));
        }
        return v.get<uint64_t>();
    }
    const json & at(const json & o, const char * key, const std::string & where) const {
        if (!o.is_object() || !o.contains(key)) bad(where + "no '" + key + "'");
        return o.at(key);
    }
    std::vector<uint32_t> ids(const json & a, const std::string & what) const {
        if (!a.is_array()) bad(what + " must be an array of expert ids");
        std::vector<uint32_t> out;
        for (const auto & v : a)
            out.push_back(uint32_t(to_uint(v, what + " id", UINT32_MAX)));
        return out;
    }
    LayerPlan layer(const std::string & key, const json & l) const {
        LayerPlan lp;
        lp.kept = ids(at(l, "kept", "layer " + key + ": "), "layer " + key + " kept");
        if (l.contains("dropped")) lp.dropped = ids(l["dropped"], "layer " + key + " dropped");
        if (l.contains("copied_from_last_regular_layer")) {
            if (!l["copied_from_last_regular_layer"].is_boolean())
                bad("copied_from_last_regular_layer must be true or false");
            lp.copied_from_layer = l["copied_from_last_regular_layer"].get<bool>();
        }
        return lp;
    }
    std::string text(const json & j, const char * key) const {
        if (!j.contains(key)) return "";
        if (!j[key].is_string()) bad(std::string(key) + " must be a string");
        return j[key].get<std::string>();
    }
};

}  // namespace

Plan Plan::from_json(const json & j, const std::string & origin) {
    const PlanReader r{origin};
    if (!j.is_object()) r.bad("a plan is a JSON object");
    Plan         p;
    const json & criterion = r.at(j, "criterion", "");
    if (!criterion.is_string()) r.bad("criterion must be a string");
    p.criterion  = criterion.get<std::string>();
    p.n_expert   = uint32_t(r.to_uint(r.at(j, "n_expert", ""), "n_expert", UINT32_MAX));
    p.kept       = uint32_t(r.to_uint(r.at(j, "kept_experts", ""), "kept_experts", UINT32_MAX));
    p.keep_ratio = double(p.kept) / std::max(1u, p.n_expert);
    if (j.contains("keep_ratio")) {
        if (!j["keep_ratio"].is_number()) r.bad("keep_ratio must be a number");
        p.keep_ratio = j["keep_ratio"].get<double>();
    }
    if (j.contains("seed")) p.seed = r.to_uint(j["seed"], "seed", UINT64_MAX);
    p.model              = r.text(j, "model");
    p.stats              = r.text(j, "stats");
    p.router_fingerprint = r.text(j, "router_fingerprint");
    if (j.contains("router_norms")) {
        const auto norms = parse_router_norms(j["router_norms"]);
        if (!norms) r.bad("router_norms must be an object of layer -> router row norms");
        p.router_norms = *norms;
    }
    const json & layers = r.at(j, "layers", "");
    if (!layers.is_object()) r.bad("layers must be an object keyed by layer index");
    for (auto it = layers.begin(); it != layers.end(); ++it) {
        uint64_t il = 0;
        if (!parse_canonical_uint(it.key(), INT_MAX, il)) r.bad("layer key \"" + it.key() + "\" is not a layer index");
        p.layers[int(il)] = r.layer(it.key(), it.value());
    }
    return p;
}

Plan Plan::load(const std::string & path) { return from_json(read_json_file(path, "plan file"), path); }

}  // namespace reap
