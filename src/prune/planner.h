// Which experts to keep (SPEC §6): score every expert of every MoE layer by a criterion and
// keep the same number in each layer, respecting expert groups. A plan is plain data that can
// be saved as JSON (--dry-run) and applied later (--plan).
#pragma once

#include "stats/expert_stats.h"
#include "moe/moe_layout.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace reap {

enum class Criterion { reap, ean, frequency, weighted_frequency, random };

Criterion   parse_criterion(const std::string & s);  // "reap", "ean", "frequency", "weighted-frequency", "random"
const char * criterion_name(Criterion c);

struct LayerPlan {
    std::vector<uint32_t> kept;     // ascending expert ids
    std::vector<uint32_t> dropped;  // ascending expert ids
    std::vector<double>   scores;   // per original expert (empty for layers without statistics)
    bool                  copied_from_layer = false;  // a next-token-prediction layer: ids of the last regular layer
};

struct Plan {
    std::string               criterion;
    double                    keep_ratio = 0;  // kept / n_expert
    uint32_t                  n_expert   = 0;
    uint32_t                  kept       = 0;
    uint64_t                  seed       = 0;
    std::string               model;  // base name of the model the plan is for
    std::string               stats;  // stats file it came from
    std::map<int, LayerPlan>  layers;

    nlohmann::json to_json() const;
    static Plan    from_json(const nlohmann::json & j, const std::string & origin);
    static Plan    load(const std::string & path);
};

// Checks that `stats` was collected on the model of `layout` (same MoE layers, same expert
// count); throws with the difference otherwise.
void check_stats_match(const ExpertStats & stats, const MoeLayout & layout, const std::string & stats_path);

// Scores per layer under `criterion` (lower = pruned first).
std::vector<double> expert_scores(const LayerStats & L, Criterion c, uint64_t seed, int layer);

// `ids` in the order they are pruned: lowest score first; ties by lower activation count, then
// lower id. The one definition of the order, used by plans and by reports.
std::vector<uint32_t> pruning_order(std::vector<uint32_t> ids, const std::vector<double> & score,
                                    const std::vector<uint64_t> & count);

// Builds a plan keeping `kept` experts in every MoE layer. Lowest score goes first; ties go by
// lower activation count, then lower id. With expert groups each group keeps kept/groups.
// Next-token-prediction layers (no statistics) keep the ids of the last regular MoE layer.
Plan make_plan(const ExpertStats & stats, const MoeLayout & layout, Criterion criterion, uint32_t kept, uint64_t seed);

// Checks a (loaded) plan against the model: every MoE layer present, ids valid and unique,
// the same kept count everywhere, group balance. Throws otherwise.
void check_plan(const Plan & plan, const MoeLayout & layout, const std::string & origin);

}  // namespace reap
