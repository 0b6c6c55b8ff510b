#include "profile/profiler.h"

#include "core/error.h"

namespace reap {

std::string profile_summary(const ExpertStats & s) {
    std::string out;
    for (const auto & [il, L] : s.layers) {
        const auto r  = L.reap();
        size_t     hi = 0, lo = 0;
        for (size_t e = 1; e < r.size(); e++) {
            if (r[e] > r[hi]) hi = e;
            if (r[e] < r[lo]) lo = e;
        }
        out +=
            strfmt("layer %3d: %llu tokens, highest REAP expert %3zu (%.4g), lowest %3zu (%.4g), never activated %u\n",
                   il, (unsigned long long) L.total_tokens, hi, r[hi], lo, r[lo], L.never_activated());
    }
    return out;
}

}  // namespace reap
