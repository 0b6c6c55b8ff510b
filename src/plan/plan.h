// The plan: what a pruned or merged model is made of, as plain data (README's `reap prune` row).
// For each MoE layer, its output experts ("slots") in order and, for each slot, its sources: the
// input experts whose weights it is made of and the coefficient applied to each. Pruning is one
// source of weight 1 per slot (the expert's bytes copied as they are); a slot of several sources
// is computed (merged: plan/slot_merge.h does the arithmetic, each format's writer the bytes).
// The plan is made by prune/planner.h (pruning) or prune/merge_planner.h (merging), saved as JSON
// (--dry-run), applied later (--plan), and checked against a model by check_plan.
#pragma once

#include "moe/moe_shape.h"
#include "stats/super_experts.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace reap {

// One source of a slot: an input expert and the coefficient its (aligned) weights are multiplied by.
struct SlotSource {
    uint32_t expert = 0;
    double   weight = 1.0;
    bool     operator==(const SlotSource & o) const { return expert == o.expert && weight == o.weight; }
};

// One output expert. sources[0] is its centroid: the expert whose router row and selection bias
// the slot takes, and the one the others are aligned to. The weights sum to 1.
struct Slot {
    std::vector<SlotSource> sources;
    bool                    computed() const { return sources.size() > 1; }
    bool                    operator==(const Slot & o) const { return sources == o.sources; }
};

struct LayerPlan {
    std::vector<uint32_t> kept;                       // ascending expert ids: each slot's centroid
    std::vector<uint32_t> dropped;                    // ascending expert ids: not a centroid (merged into one, or gone)
    std::vector<Slot>     slots;                      // slots[i].sources[0].expert == kept[i]
    std::vector<double>   scores;                     // per original expert (empty for layers without statistics)
    bool                  copied_from_layer = false;  // a next-token-prediction layer: ids of the last regular layer

    // The layer's output expert count.
    uint32_t slot_count() const { return uint32_t(slots.size()); }
    // Whether any slot is computed (a merged layer).
    bool computed() const;
    // One source of weight 1 per kept expert: the slots of a pruning plan.
    void set_pruned_slots();
};

// A super expert the plan keeps whatever its score (--no-protect-super-experts turns this off).
struct ProtectedExpert {
    SuperExpert expert;
    bool        criterion_drops = false;  // whether the criterion alone would have dropped it
};

// How a merged plan's groups were made and are combined ("" method: a pruning plan).
struct MergeRecord {
    std::string method;          // "ream", "msmoe"
    std::string align;           // "weights": members' intermediate neurons permuted onto the centroid's; "none"
    uint32_t    group_size = 0;  // ream's C: the most members a centroid takes (0: no limit)
    bool        empty() const { return method.empty(); }
};

struct Plan {
    std::string criterion;
    double      keep_ratio = 0;  // output experts / n_expert
    uint32_t    n_expert   = 0;
    uint64_t    seed       = 0;
    std::string model;  // base name of the model the plan is for
    std::string stats;  // stats file it came from
    // The identity of the model it was made for (moe/router_fingerprint.h), checked by check_plan:
    // the router fingerprint ("" unknown) and the first MoE layer's router row norms (empty: unknown).
    std::string              router_fingerprint;
    RouterNorms              router_norms;
    std::map<int, LayerPlan> layers;
    MergeRecord              merge;
    // Super-expert protection: on unless turned off; the rule's numbers and the protected experts.
    bool                         protect_super_experts = false;
    SuperExperts                 super_experts;
    std::vector<ProtectedExpert> protected_experts;
    nlohmann::json               convergence;       // prune/convergence.h's record, when computed
    nlohmann::json               calibration_sets;  // several --stats: stats/stats_combine.h's record

    // The output's expert count: every layer's slot count, which the formats need to be one
    // number (llama.cpp's `<arch>.expert_count`, a config's expert-count key). Throws when the
    // layers differ (check_plan refuses such a plan for a model first) or there is none.
    uint32_t expert_count() const;
    // Whether any layer has a computed slot.
    bool computed() const;

    nlohmann::json to_json() const;
    nlohmann::json super_experts_json() const;  // the protection: rule, ratio, typical maxima, experts and why
    static Plan    from_json(const nlohmann::json & j, const std::string & origin);
    static Plan    load(const std::string & path);
};

// Checks a (loaded) plan against the model: made for this model (its router identity, where the
// plan records one), every MoE layer present, ids valid and unique, the same slot count
// everywhere, group balance; slots: centroids are the kept ids, every source an expert of the
// layer in at most one slot, weights finite, positive and summing to 1, several sources only in a
// merged plan. Throws otherwise.
void check_plan(const Plan & plan, const MoeShape & shape, const std::string & origin);

}  // namespace reap
