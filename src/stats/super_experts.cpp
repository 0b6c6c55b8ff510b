#include "stats/super_experts.h"

#include "core/error.h"
#include "core/text.h"

#include <algorithm>
#include <cmath>

namespace reap {

bool SuperExperts::contains(int layer, uint32_t expert) const {
    for (const auto & s : experts) {
        if (s.layer == layer && s.expert == expert) return true;
    }
    return false;
}

std::string SuperExperts::rule_text() const {
    return strfmt(
        "an expert whose largest |output element| exceeds both the %g-th percentile of all experts' maxima (%.4g) and "
        "%g of the largest (%.4g): threshold %.4g (arXiv 2507.23279)",
        k_super_expert_percentile, percentile, k_super_expert_max_ratio, largest, threshold);
}

std::string SuperExperts::why(const SuperExpert & s) const {
    return strfmt("max |output| %.4g at channel %u > threshold %.4g", s.max, s.channel, threshold);
}

double percentile_linear(std::vector<double> v, double q) {
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    const double pos = std::clamp(q, 0.0, 100.0) / 100.0 * double(v.size() - 1);
    const size_t lo  = size_t(std::floor(pos));
    if (lo + 1 >= v.size()) return v.back();
    return v[lo] + (pos - double(lo)) * (v[lo + 1] - v[lo]);
}

SuperExperts find_super_experts(const ExpertStats & stats) {
    SuperExperts        out;
    std::vector<double> all;
    for (const auto & [il, L] : stats.layers) {
        if (!L.has_out_max()) return out;
        all.insert(all.end(), L.out_max.begin(), L.out_max.end());
    }
    if (all.empty()) return out;
    out.measured   = true;
    out.percentile = percentile_linear(all, k_super_expert_percentile);
    out.largest    = *std::max_element(all.begin(), all.end());
    out.threshold  = std::max(out.percentile, out.largest * k_super_expert_max_ratio);
    for (const auto & [il, L] : stats.layers) {
        for (uint32_t e = 0; e < L.n_expert(); e++) {
            if (L.out_max[e] > out.threshold) out.experts.push_back({il, e, L.out_max[e], L.out_max_channel[e]});
        }
    }
    return out;
}

}  // namespace reap
