// Has the calibration seen enough? The drop set a criterion picks from the first half of the
// profile's tokens (its 1/2 milestone, stats/milestones.h) against the one from all of them,
// layer by layer (Jaccard |A∩B| / |A∪B|). When half the data already picks (nearly) the same
// experts, doubling it would likely not change the plan either; when the sets still differ,
// the plan depends on which samples happened to be in the calibration set.
#pragma once

#include "moe/moe_shape.h"
#include "stats/criteria.h"
#include "stats/expert_stats.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace reap {

// Warn when the mean Jaccard over layers is below this: on average more than one expert in
// ten of the drop set (and its replacement) changed between half and all of the tokens.
inline constexpr double k_convergence_warn_below = 0.9;
inline constexpr double k_convergence_fraction   = 0.5;  // the milestone compared with the whole run

struct LayerConvergence {
    int    il      = 0;
    double jaccard = 1;
};

struct Convergence {
    bool                          available = false;             // false: no half-way milestone in the stats
    uint64_t                      tokens = 0, total_tokens = 0;  // at the milestone, and in the run
    std::vector<LayerConvergence> layers;
    double                        min = 1, mean = 1;
    int                           min_layer = -1;
    bool                          moving    = false;  // mean < k_convergence_warn_below

    std::string    summary() const;  // one line: "drop set at half the tokens: Jaccard min .. mean .."
    nlohmann::json to_json() const;
};

// The convergence of the drop set keeping `kept` experts per layer under `criterion` on a model
// of `shape` (the planner's selection, dropped_experts; no super-expert protection).
Convergence drop_set_convergence(const ExpertStats & stats, const MoeShape & shape, Criterion criterion, uint32_t kept,
                                 uint64_t seed);

}  // namespace reap
