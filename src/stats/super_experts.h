// Super experts (Su et al., "Unveiling Super Experts in Mixture-of-Experts Large Language
// Models", arXiv 2507.23279): a handful of experts whose down projection produces massive
// activation outliers; they feed the attention sinks, and pruning even three of Qwen3-30B-A3B's
// 6,144 experts makes it degenerate. What marks them is a_max, the largest |element| of an
// expert's output over the calibration tokens, being massive next to the other experts'.
//
// The rule: an expert is a super expert when its a_max is more than k_super_expert_ratio times
// the typical maximum of its layer: the 75th percentile of the a_max of the routed experts, of
// the layer or of the whole model, whichever is larger. Relative to the distribution, as massive
// activations are (Sun et al., arXiv 2402.17762, compare to the median magnitude): a model
// without outliers has none, and a model with one per layer has them all. The paper's own cut
// (above the 99.5th percentile of every a_max and a tenth of the largest) flags about 0.5 % of
// the experts whatever the model: one on a model without outliers, one of the eight planted on
// 8 layers x 16 experts.
//   The 75th percentile, not the median: near-silent experts (synth's dead and weak ones, which
// can take most of a layer's tokens) may be most of a layer's routed experts; the reference
// holds while fewer than a quarter are super experts. The layer's when larger than the model's:
// outputs grow with depth, and a loud late layer's ordinary experts are not outliers. Never-routed
// experts have no maximum and are left out. Every layer is considered (Cerebras' reference takes
// the first 75 % by default): protecting a late-layer outlier as well costs one slot.
#pragma once

#include "stats/expert_stats.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace reap {

// With 16 calibration samples, synth's planted super experts stand at 17-29x their typical
// maximum (at least 17.1 on the default shape, 29.2 / 21.6 / 20.9 on the routing shapes of the
// qwen3-30b-a3b / gpt-oss-20b / deepseek-v3-small presets), every other expert at most 2.0x
// with or without plants, the committed trained model's at most 1.7x: 6 leaves about 3x on
// each side. Real super experts are orders of magnitude above the rest (arXiv 2507.23279).
inline constexpr double k_super_expert_ratio              = 6.0;
inline constexpr double k_super_expert_typical_percentile = 75.0;

struct SuperExpert {
    int      layer   = 0;
    uint32_t expert  = 0;
    double   max     = 0;  // largest |element| of its output
    uint32_t channel = 0;  // where it occurred
    double   ratio   = 0;  // max / its layer's typical maximum
};

struct SuperExperts {
    bool                     measured = false;  // false: the stats have no max_activation (older reap)
    std::map<int, double>    typical;           // per layer: the typical maximum (above) it is compared to
    std::vector<SuperExpert> experts;           // by layer, then expert id

    bool        contains(int layer, uint32_t expert) const;
    std::string rule_text() const;                 // the rule, one line
    std::string why(const SuperExpert & s) const;  // "max |output| 312 at channel 17: 25.3x the typical 12.3 (> 6x)"
};

// The q-th percentile (0..100) of `v` with linear interpolation between order statistics (as
// numpy.percentile and torch.quantile); 0 for an empty `v`.
double percentile_linear(std::vector<double> v, double q);

// The super experts of `stats` by the rule above; measured = false (and none) when any layer
// lacks the maxima.
SuperExperts find_super_experts(const ExpertStats & stats);

}  // namespace reap
