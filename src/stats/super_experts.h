// Super experts (Su et al., "Unveiling Super Experts in Mixture-of-Experts Large Language
// Models", arXiv 2507.23279): a handful of experts whose down projection produces massive
// activation outliers; they feed the attention sinks, and pruning even three of Qwen3-30B-A3B's
// 6,144 experts makes it degenerate. The rule that finds them, from the paper (and Cerebras'
// reference implementation, get_super_expert_indices): over every expert of every MoE layer,
// take a_max = the largest |element| of its output over the calibration tokens; an expert is a
// super expert when its a_max exceeds both the 99.5th percentile of all a_max (linear
// interpolation, as numpy/torch) and a tenth of the largest a_max. Unlike the reference's
// default (first 75 % of layers only), every layer is considered: protecting a late-layer
// outlier as well costs one slot.
#pragma once

#include "stats/expert_stats.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace reap {

inline constexpr double k_super_expert_percentile = 99.5;  // the paper's P99.5
inline constexpr double k_super_expert_max_ratio  = 0.1;   // and above a tenth of the largest maximum

struct SuperExpert {
    int      layer   = 0;
    uint32_t expert  = 0;
    double   max     = 0;  // largest |element| of its output
    uint32_t channel = 0;  // where it occurred
};

struct SuperExperts {
    bool                     measured   = false;  // false: the stats have no max_activation (older reap)
    double                   percentile = 0;      // P99.5 of every expert's maximum
    double                   largest    = 0;      // the largest maximum
    double                   threshold  = 0;      // max(percentile, largest / 10): strictly above it is super
    std::vector<SuperExpert> experts;             // by layer, then expert id

    bool        contains(int layer, uint32_t expert) const;
    std::string rule_text() const;                 // the rule with this run's numbers, one line
    std::string why(const SuperExpert & s) const;  // "max |output| 312 at channel 17 > threshold 40.1"
};

// The q-th percentile (0..100) of `v` with linear interpolation between order statistics (as
// numpy.percentile and torch.quantile); 0 for an empty `v`.
double percentile_linear(std::vector<double> v, double q);

// The super experts of `stats` by the rule above; measured = false (and none) when any layer
// lacks the maxima.
SuperExperts find_super_experts(const ExpertStats & stats);

}  // namespace reap
