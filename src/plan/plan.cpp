#include "plan/plan.h"

#include "core/error.h"
#include "core/fs_util.h"
#include "core/text.h"
#include "moe/expert_budget.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <set>

namespace reap {

using nlohmann::json;

bool LayerPlan::computed() const {
    return std::any_of(slots.begin(), slots.end(), [](const Slot & s) { return s.computed(); });
}

void LayerPlan::set_pruned_slots() {
    slots.clear();
    for (uint32_t e : kept)
        slots.push_back(Slot{{SlotSource{e, 1.0}}});
}

uint32_t Plan::expert_count() const {
    if (layers.empty()) fail("the plan has no MoE layer");
    const uint32_t n = layers.begin()->second.slot_count();
    for (const auto & [il, lp] : layers) {
        if (lp.slot_count() != n) {
            fail("layer %d has %u experts and layer %d %u: the model's expert count is one number for all layers", il,
                 lp.slot_count(), layers.begin()->first, n);
        }
    }
    return n;
}

bool Plan::computed() const {
    return std::any_of(layers.begin(), layers.end(), [](const auto & kv) { return kv.second.computed(); });
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

// A layer's slots against its kept ids: each centroid is the kept id at its place, every source an
// expert of the layer in one slot at most, weights finite, positive and summing to 1, several
// sources only in a merged plan.
static void check_slots(const LayerPlan & lp, const Plan & plan, const MoeShape & shape, const std::string & origin,
                        int il) {
    if (lp.slots.size() != lp.kept.size()) {
        fail("%s: layer %d has %zu slots for %zu kept experts", origin.c_str(), il, lp.slots.size(), lp.kept.size());
    }
    std::set<uint32_t> seen;
    for (size_t i = 0; i < lp.slots.size(); i++) {
        const auto & src = lp.slots[i].sources;
        if (src.empty() || src[0].expert != lp.kept[i]) {
            fail("%s: layer %d slot %zu: its first source must be the kept expert %u", origin.c_str(), il, i,
                 lp.kept[i]);
        }
        if (src.size() > 1 && plan.merge.empty()) {
            fail("%s: layer %d slot %zu has %zu sources in a plan that merges nothing (no \"merge\")", origin.c_str(),
                 il, i, src.size());
        }
        double sum = 0;
        for (const SlotSource & s : src) {
            if (s.expert >= shape.n_expert || !seen.insert(s.expert).second) {
                fail("%s: layer %d slot %zu: source expert %u is not below %u or is in two slots", origin.c_str(), il,
                     i, s.expert, shape.n_expert);
            }
            if (!std::isfinite(s.weight) || s.weight <= 0 || s.weight > 1) {
                fail("%s: layer %d slot %zu: the weight of expert %u is %g, not in (0, 1]", origin.c_str(), il, i,
                     s.expert, s.weight);
            }
            sum += s.weight;
        }
        if (std::fabs(sum - 1.0) > 1e-6) {
            fail("%s: layer %d slot %zu: the weights sum to %.9g, not 1", origin.c_str(), il, i, sum);
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
    const uint32_t groups    = shape.groups();
    const uint32_t per_group = shape.n_expert / groups;
    for (int il : shape.all_moe_layers()) {
        auto it = plan.layers.find(il);
        if (it == plan.layers.end()) {
            fail("%s: plan has no entry for MoE layer %d of the model", origin.c_str(), il);
        }
        const auto &   kept  = it->second.kept;
        const uint32_t count = uint32_t(kept.size());
        // llama.cpp's expert_count is one number for the model: every layer the same.
        if (count != plan.layers.begin()->second.kept.size()) {
            fail("%s: layer %d keeps %u experts, layer %d %zu (llama.cpp needs one count for all layers)",
                 origin.c_str(), il, count, plan.layers.begin()->first, plan.layers.begin()->second.kept.size());
        }
        check_kept_count(shape, count);
        std::vector<uint32_t> per(groups, 0);
        for (size_t i = 0; i < kept.size(); i++) {
            if (kept[i] >= shape.n_expert || (i > 0 && kept[i] <= kept[i - 1])) {
                fail("%s: layer %d: kept ids must be ascending, unique and below %u", origin.c_str(), il,
                     shape.n_expert);
            }
            per[kept[i] / per_group]++;
        }
        for (uint32_t g = 0; g < groups; g++) {
            if (per[g] != count / groups) {
                fail("%s: layer %d keeps %u experts in group %u; every group must keep %u", origin.c_str(), il, per[g],
                     g, count / groups);
            }
        }
        check_chunk_balance(kept, shape, origin, il);
        check_slots(it->second, plan, shape, origin, il);
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
        json slots = json::array();
        for (const Slot & sl : lp.slots) {
            json src = json::array();
            for (const SlotSource & so : sl.sources)
                src.push_back({{"expert", so.expert}, {"weight", so.weight}});
            slots.push_back({{"sources", src}});
        }
        l["slots"] = slots;
        if (lp.copied_from_layer) l["copied_from_last_regular_layer"] = true;
        layers_j[std::to_string(il)] = l;
    }
    json j = {{"criterion", criterion}, {"keep_ratio", keep_ratio},
              {"n_expert", n_expert},   {"kept_experts", layers.empty() ? 0u : layers.begin()->second.slot_count()},
              {"seed", seed},           {"model", model},
              {"stats", stats},         {"layers", layers_j}};
    if (protect_super_experts) j["super_experts"] = super_experts_json();
    if (!convergence.is_null()) j["calibration_convergence"] = convergence;
    if (!calibration_sets.is_null()) j["calibration_sets"] = calibration_sets;
    if (!merge.empty())
        j["merge"] = {{"method", merge.method}, {"align", merge.align}, {"group_size", merge.group_size}};
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
        if (l.contains("slots")) {
            const json & slots = l["slots"];
            if (!slots.is_array()) bad("layer " + key + " slots must be an array");
            for (const json & sl : slots) {
                const json & src = at(sl, "sources", "layer " + key + " slot: ");
                if (!src.is_array() || src.empty())
                    bad("layer " + key + ": a slot's sources must be a non-empty array");
                Slot out;
                for (const json & so : src) {
                    const json & w = at(so, "weight", "layer " + key + " source: ");
                    if (!w.is_number()) bad("layer " + key + ": a source's weight must be a number");
                    out.sources.push_back(SlotSource{uint32_t(to_uint(at(so, "expert", "layer " + key + " source: "),
                                                                      "layer " + key + " source expert", UINT32_MAX)),
                                                     w.get<double>()});
                }
                lp.slots.push_back(out);
            }
        } else {
            lp.set_pruned_slots();  // a plan of an older reap: one source per kept expert
        }
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
    p.criterion         = criterion.get<std::string>();
    p.n_expert          = uint32_t(r.to_uint(r.at(j, "n_expert", ""), "n_expert", UINT32_MAX));
    const uint32_t kept = uint32_t(r.to_uint(r.at(j, "kept_experts", ""), "kept_experts", UINT32_MAX));
    p.keep_ratio        = double(kept) / std::max(1u, p.n_expert);
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
    if (j.contains("merge")) {
        const json & m = j["merge"];
        p.merge.method = r.text(m, "method");
        p.merge.align  = r.text(m, "align");
        if (m.contains("group_size"))
            p.merge.group_size = uint32_t(r.to_uint(m["group_size"], "merge group_size", UINT32_MAX));
        if (p.merge.method.empty()) r.bad("merge.method must name the merging method");
    }
    const json & layers = r.at(j, "layers", "");
    if (!layers.is_object()) r.bad("layers must be an object keyed by layer index");
    for (auto it = layers.begin(); it != layers.end(); ++it) {
        uint64_t il = 0;
        if (!parse_canonical_uint(it.key(), INT_MAX, il)) r.bad("layer key \"" + it.key() + "\" is not a layer index");
        p.layers[int(il)] = r.layer(it.key(), it.value());
        if (p.layers[int(il)].kept.size() != kept) {
            r.bad("layer " + it.key() + " keeps " + std::to_string(p.layers[int(il)].kept.size()) +
                  " experts, kept_experts says " + std::to_string(kept));
        }
    }
    return p;
}

Plan Plan::load(const std::string & path) { return from_json(read_json_file(path, "plan file"), path); }

}  // namespace reap
