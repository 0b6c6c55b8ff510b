#include "prune/convergence.h"

#include "core/error.h"
#include "prune/planner.h"
#include "stats/milestones.h"

#include <algorithm>
#include <iterator>

namespace reap {

static double jaccard(const std::vector<uint32_t> & a, const std::vector<uint32_t> & b) {
    std::vector<uint32_t> both, either;
    std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(both));
    std::set_union(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(either));
    return either.empty() ? 1.0 : double(both.size()) / double(either.size());
}

Convergence drop_set_convergence(const ExpertStats & stats, const MoeShape & shape, Criterion criterion, uint32_t kept,
                                 uint64_t seed) {
    Convergence            c;
    const StatsMilestone * half = find_milestone(stats, k_convergence_fraction);
    if (half == nullptr || stats.layers.empty()) return c;
    c.available    = true;
    c.tokens       = half->tokens;
    c.total_tokens = stats.layers.begin()->second.total_tokens;
    double sum     = 0;
    for (const auto & [il, L] : stats.layers) {
        const LayerStats & H         = half->layers.at(il);
        const auto         all_drop  = dropped_experts(expert_scores(L, criterion, seed, il), L.count, shape, kept);
        const auto         half_drop = dropped_experts(expert_scores(H, criterion, seed, il), H.count, shape, kept);
        const double       j         = jaccard(all_drop, half_drop);
        c.layers.push_back({il, j});
        sum += j;
        if (c.min_layer < 0 || j < c.min) {
            c.min       = j;
            c.min_layer = il;
        }
    }
    c.mean   = sum / double(c.layers.size());
    c.moving = c.mean < k_convergence_warn_below;
    return c;
}

std::string Convergence::summary() const {
    if (!available) {
        return "calibration convergence: n/a (no half-way snapshot in the stats: made by an older reap, or the run "
               "decoded its tokens in too few batches)";
    }
    return strfmt(
        "calibration convergence: drop set from the first %llu of %llu tokens against all: Jaccard min %.3f (layer "
        "%d), "
        "mean %.3f%s",
        (unsigned long long) tokens, (unsigned long long) total_tokens, min, min_layer, mean,
        moving ? strfmt(" < %.2f: still moving, more calibration data may change the plan", k_convergence_warn_below)
                     .c_str()
               : "");
}

nlohmann::json Convergence::to_json() const {
    if (!available) return {{"available", false}};
    nlohmann::json per = nlohmann::json::object();
    for (const auto & l : layers)
        per[std::to_string(l.il)] = l.jaccard;
    return {{"available", true},
            {"tokens", tokens},
            {"total_tokens", total_tokens},
            {"jaccard_min", min},
            {"jaccard_min_layer", min_layer},
            {"jaccard_mean", mean},
            {"warn_below_mean", k_convergence_warn_below},
            {"still_moving", moving},
            {"jaccard_per_layer", per}};
}

}  // namespace reap
