// The scoring criteria that rank a layer's experts, as one registry: every criterion is one
// entry (name, meaning, the sums it reads, its score function). The CLI's choices and help,
// plans and the report all take the list from here. Adding a criterion = one enum value, one
// entry in criteria.cpp, one test.
#pragma once

#include "stats/expert_stats.h"

#include <cstdint>
#include <string>
#include <vector>

namespace reap {

enum class Criterion {
    reap,
    ean,
    frequency,
    weighted_frequency,
    reap_renorm,
    reap_sum,
    ean_sum,
    reap_sq_sum,
    max_activation,
    imatrix_sum,
    imatrix_mean,
    random
};

struct CriterionInfo {
    Criterion    id;
    const char * name;             // as on the command line and in plans: "weighted-frequency"
    const char * meaning;          // one line for help and the report
    const char * reads;            // which sums of LayerStats the score is computed from
    bool         describes_model;  // false for a baseline that ignores the statistics (random)
    // true: scores from an importance matrix and the model's weights (prune --imatrix, no --stats:
    // gguf/imatrix_prune.h), not from a stats file
    bool from_imatrix;
    // Per-expert scores of one layer; lower is pruned first (see pruning_order).
    std::vector<double> (*score)(const LayerStats & L, uint64_t seed, int layer);
};

// Every criterion, in the order help lists them.
const std::vector<CriterionInfo> & criteria();
const CriterionInfo &              criterion_info(Criterion c);
// Names for a CLI's choices; `describing_model_only`: without baselines such as random;
// `stats_only`: without the criteria an importance matrix gives (from_imatrix), which a stats
// file cannot score (reap report).
std::vector<std::string> criterion_names(bool describing_model_only = false, bool stats_only = false);

Criterion    parse_criterion(const std::string & s);  // throws reap::Error naming the choices
const char * criterion_name(Criterion c);
const char * criterion_meaning(Criterion c);

// Scores per layer under `criterion` (lower = pruned first).
std::vector<double> expert_scores(const LayerStats & L, Criterion c, uint64_t seed, int layer);

// How every criterion's scores turn into an order, in words (for help and plans).
inline constexpr const char * k_pruning_order_text =
    "lowest score pruned first; ties by lower activation count, then lower id";

// `ids` in the order they are pruned: lowest score first; ties by lower activation count, then
// lower id. The one definition of the order, used by plans and by reports.
std::vector<uint32_t> pruning_order(std::vector<uint32_t> ids, const std::vector<double> & score,
                                    const std::vector<uint64_t> & count);

}  // namespace reap
