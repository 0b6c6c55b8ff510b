// The format-free same-model rules of moe_shape.h: router row norms and fingerprints compared.
#include "moe/moe_shape.h"

#include "core/error.h"

#include <algorithm>
#include <cmath>

namespace reap {

std::string router_norms_mismatch(const RouterNorms & a, const RouterNorms & b) {
    // BF16 keeps 8 significant bits (a relative error up to 2^-9 per value, less on a norm),
    // Q8_0 about as much; independently drawn rows of one model differ by several percent.
    constexpr double k_rel_tol = 1e-2;
    for (const auto & [il, na] : a) {
        const auto it = b.find(il);
        if (it == b.end()) continue;
        const auto & nb = it->second;
        if (na.size() != nb.size()) return strfmt("layer %d: %zu router rows vs %zu", il, na.size(), nb.size());
        for (size_t e = 0; e < na.size(); e++) {
            const double x = na[e], y = nb[e];
            if (!(std::fabs(x - y) <= k_rel_tol * std::max(std::fabs(x), std::fabs(y)) + 1e-6)) {
                return strfmt("layer %d, expert %zu: router row norm %.6g vs %.6g", il, e, x, y);
            }
        }
    }
    return "";
}

std::string router_identity_mismatch(const std::string & fingerprint, const RouterNorms & norms,
                                     const MoeShape & shape) {
    if (!fingerprint.empty() && !shape.router_fingerprint.empty() && fingerprint != shape.router_fingerprint) {
        return strfmt("other router weights (fingerprint %s, the model's %s)", fingerprint.c_str(),
                      shape.router_fingerprint.c_str());
    }
    const std::string diff = router_norms_mismatch(norms, shape.router_norms);
    if (!diff.empty()) {
        return strfmt("other router weights or another expert order (%s, recorded vs the model's)", diff.c_str());
    }
    return "";
}

}  // namespace reap
