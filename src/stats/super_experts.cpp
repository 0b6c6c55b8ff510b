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
        "an expert whose largest |output element| is more than %g times the typical maximum: the %g-th percentile "
        "of the routed experts' maxima, of its layer or of the model, whichever is larger (massive activations, "
        "arXiv 2507.23279)",
        k_super_expert_ratio, k_super_expert_typical_percentile);
}

std::string SuperExperts::why(const SuperExpert & s) const {
    const auto t = typical.find(s.layer);
    return strfmt("max |output| %.4g at channel %u: %.3gx the typical %.4g (> %gx)", s.max, s.channel, s.ratio,
                  t == typical.end() ? 0.0 : t->second, k_super_expert_ratio);
}

double percentile_linear(std::vector<double> v, double q) {
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    const double pos = std::clamp(q, 0.0, 100.0) / 100.0 * double(v.size() - 1);
    const size_t lo  = size_t(std::floor(pos));
    if (lo + 1 >= v.size()) return v.back();
    return v[lo] + (pos - double(lo)) * (v[lo + 1] - v[lo]);
}

// The maxima of the experts of `L` routed at least once (the others have none).
static std::vector<double> routed_maxima(const LayerStats & L) {
    std::vector<double> out;
    for (uint32_t e = 0; e < L.n_expert(); e++) {
        if (L.count[e] > 0) out.push_back(L.out_max[e]);
    }
    return out;
}

SuperExperts find_super_experts(const ExpertStats & stats) {
    SuperExperts        out;
    std::vector<double> all;
    for (const auto & [il, L] : stats.layers) {
        if (!L.has_out_max()) return out;
        const auto routed = routed_maxima(L);
        all.insert(all.end(), routed.begin(), routed.end());
    }
    out.measured       = !stats.layers.empty();
    const double model = percentile_linear(all, k_super_expert_typical_percentile);
    for (const auto & [il, L] : stats.layers) {
        const double typical = std::max(model, percentile_linear(routed_maxima(L), k_super_expert_typical_percentile));
        out.typical[il]      = typical;
        // A model whose typical expert writes nothing has no scale to be massive against.
        if (!(typical > 0)) continue;
        for (uint32_t e = 0; e < L.n_expert(); e++) {
            const double ratio = L.out_max[e] / typical;
            if (L.count[e] > 0 && ratio > k_super_expert_ratio)
                out.experts.push_back({il, e, L.out_max[e], L.out_max_channel[e], ratio});
        }
    }
    return out;
}

}  // namespace reap
