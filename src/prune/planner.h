// Which experts to keep (README's `reap prune` row): score every expert of every MoE layer by a
// criterion and keep the same number in each layer, respecting expert groups. A plan is plain
// data that can be saved as JSON (--dry-run) and applied later (--plan).
#pragma once

#include "moe/moe_shape.h"
#include "stats/criteria.h"
#include "stats/expert_stats.h"
#include "stats/super_experts.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace reap {

struct LayerPlan {
    std::vector<uint32_t> kept;                       // ascending expert ids
    std::vector<uint32_t> dropped;                    // ascending expert ids
    std::vector<double>   scores;                     // per original expert (empty for layers without statistics)
    bool                  copied_from_layer = false;  // a next-token-prediction layer: ids of the last regular layer
};

// A super expert the plan keeps whatever its score (--no-protect-super-experts turns this off).
struct ProtectedExpert {
    SuperExpert expert;
    bool        criterion_drops = false;  // whether the criterion alone would have dropped it
};

struct Plan {
    std::string criterion;
    double      keep_ratio = 0;  // kept / n_expert
    uint32_t    n_expert   = 0;
    uint32_t    kept       = 0;
    uint64_t    seed       = 0;
    std::string model;  // base name of the model the plan is for
    std::string stats;  // stats file it came from
    // The identity of the model it was made for (moe/router_fingerprint.h), checked by check_plan:
    // the router fingerprint ("" unknown) and the first MoE layer's router row norms (empty: unknown).
    std::string              router_fingerprint;
    RouterNorms              router_norms;
    std::map<int, LayerPlan> layers;
    // Super-expert protection: on unless turned off; the rule's numbers and the protected experts.
    bool                         protect_super_experts = false;
    SuperExperts                 super_experts;
    std::vector<ProtectedExpert> protected_experts;
    nlohmann::json               convergence;       // prune/convergence.h's record, when computed
    nlohmann::json               calibration_sets;  // several --stats: stats/stats_combine.h's record

    nlohmann::json to_json() const;
    nlohmann::json super_experts_json() const;  // the protection: rule, ratio, typical maxima, experts and why
    static Plan    from_json(const nlohmann::json & j, const std::string & origin);
    static Plan    load(const std::string & path);
};

// The `kept` experts of one layer that a plan keeps, ascending: with expert groups each group
// keeps kept/groups, each by pruning_order(). The one selection, used by plans and the report.
std::vector<uint32_t> kept_experts(const std::vector<double> & score, const std::vector<uint64_t> & count,
                                   const MoeShape & shape, uint32_t kept);
// The other experts of the layer, ascending: what a plan keeping `kept` drops.
std::vector<uint32_t> dropped_experts(const std::vector<double> & score, const std::vector<uint64_t> & count,
                                      const MoeShape & shape, uint32_t kept);

// Builds a plan keeping `kept` experts in every MoE layer. Lowest score goes first; ties go by
// lower activation count, then lower id. With expert groups each group keeps kept/groups.
// Next-token-prediction layers (no statistics) keep the ids of the last regular MoE layer.
// With `protect` (find_super_experts of the same stats), super experts are pruned last
// (ranked above every other expert of their group; among themselves by score). `scores`: the
// per-layer scores to rank by instead of the criterion's on `stats` (several calibration sets
// combined: stats/stats_combine.h); `stats` then gives the activation counts that break ties.
Plan make_plan(const ExpertStats & stats, const MoeShape & shape, Criterion criterion, uint32_t kept, uint64_t seed,
               const SuperExperts * protect = nullptr, const std::map<int, std::vector<double>> * scores = nullptr);

// The plan `reap inspect` sizes "size after pruning" with: `kept` experts in every MoE layer,
// chosen by kept_experts() on equal scores, under the default criterion's name, from no stats
// file. A plan from statistics keeps other ids but the same number of the same-sized slices, so
// its output differs only by the stats file's name in the metadata (prune/model.h).
Plan uniform_plan(const MoeShape & shape, uint32_t kept);

// Checks a (loaded) plan against the model: made for this model (its router identity, where the
// plan records one), every MoE layer present, ids valid and unique, the same kept count
// everywhere, group balance. Throws otherwise.
void check_plan(const Plan & plan, const MoeShape & shape, const std::string & origin);

}  // namespace reap
