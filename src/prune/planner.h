// Which experts to keep (README's `reap prune` row): score every expert of every MoE layer by a
// criterion and keep the same number in each layer, respecting expert groups: a plan of
// plan/plan.h whose slots each copy one expert.
#pragma once

#include "moe/moe_shape.h"
#include "plan/plan.h"
#include "stats/criteria.h"
#include "stats/expert_stats.h"
#include "stats/super_experts.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace reap {

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

// What every plan made from statistics shares, whatever plans its layers: the header (criterion,
// expert count, ratio, seed, super-expert protection when `protect`), each regular MoE layer
// planned by `plan_layer(il, p)` (which may record protected experts in p), and each
// next-token-prediction layer (no statistics) a copy of the last regular layer's plan.
Plan plan_every_layer(const MoeShape & shape, Criterion criterion, uint32_t kept, uint64_t seed,
                      const SuperExperts * protect, const std::function<LayerPlan(int il, Plan & p)> & plan_layer);

// The rank and kept/dropped ids of layer `il` by `scores`, super experts ranked first with
// `protect` (then recorded in p.protected_experts with whether `scores` alone would drop them).
// Returns the rank the selection used.
std::vector<double> select_layer(Plan & p, LayerPlan & lp, const std::vector<uint64_t> & count, const MoeShape & shape,
                                 uint32_t kept, int il, const SuperExperts * protect);

// The plan `reap inspect` sizes "size after pruning" with: `kept` experts in every MoE layer,
// chosen by kept_experts() on equal scores, under the default criterion's name, from no stats
// file. A plan from statistics keeps other ids but the same number of the same-sized slices, so
// its output differs only by the stats file's name in the metadata (plan/model.h).
Plan uniform_plan(const MoeShape & shape, uint32_t kept);

}  // namespace reap
