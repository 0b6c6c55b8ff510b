#include "prune/planner.h"

#include "core/error.h"
#include "core/fs_util.h"
#include "core/text.h"
#include "moe/expert_budget.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <numeric>
#include <set>

namespace reap {

using nlohmann::json;

// GroveMoE: the kept_per_chunk() best experts of each adjugate group, in the groups whose kept
// experts score highest in total (ties: more activations, then the lower group).
static std::vector<uint32_t> kept_in_chunks(const std::vector<double> & score, const std::vector<uint64_t> & count,
                                            const MoeShape & shape, uint32_t kept) {
    const uint32_t                     g = shape.experts_per_chunk, per = kept_per_chunk(shape, kept);
    std::vector<std::vector<uint32_t>> best(shape.n_chunk());
    std::vector<double>                value(shape.n_chunk(), 0.0);
    std::vector<uint64_t>              used(shape.n_chunk(), 0);
    for (uint32_t c = 0; c < shape.n_chunk(); c++) {
        std::vector<uint32_t> ids(g);
        std::iota(ids.begin(), ids.end(), c * g);
        const auto order = pruning_order(ids, score, count);
        best[c].assign(order.end() - long(per), order.end());
        for (uint32_t e : best[c]) {
            value[c] += score[e];
            used[c] += count[e];
        }
    }
    std::vector<uint32_t> chunks(shape.n_chunk());
    std::iota(chunks.begin(), chunks.end(), 0u);
    std::stable_sort(chunks.begin(), chunks.end(), [&](uint32_t a, uint32_t b) {
        return value[a] != value[b] ? value[a] > value[b] : used[a] > used[b];
    });
    std::vector<uint32_t> out;
    for (uint32_t i = 0; i < kept / per; i++)
        out.insert(out.end(), best[chunks[i]].begin(), best[chunks[i]].end());
    std::sort(out.begin(), out.end());
    return out;
}

std::vector<uint32_t> kept_experts(const std::vector<double> & score, const std::vector<uint64_t> & count,
                                   const MoeShape & shape, uint32_t kept) {
    if (shape.experts_per_chunk > 0) {
        return kept_in_chunks(score, count, shape, kept);
    }
    const uint32_t        groups    = shape.groups();
    const uint32_t        per_group = shape.n_expert / groups;
    std::vector<uint32_t> out;
    for (uint32_t g = 0; g < groups; g++) {
        std::vector<uint32_t> ids(per_group);
        std::iota(ids.begin(), ids.end(), g * per_group);
        const auto order = pruning_order(ids, score, count);
        out.insert(out.end(), order.end() - long(kept / groups), order.end());  // pruned last
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::vector<uint32_t> dropped_experts(const std::vector<double> & score, const std::vector<uint64_t> & count,
                                      const MoeShape & shape, uint32_t kept) {
    const auto            keep = kept_experts(score, count, shape, kept);
    std::vector<uint32_t> out;
    for (uint32_t e = 0; e < shape.n_expert; e++) {
        if (!std::binary_search(keep.begin(), keep.end(), e)) out.push_back(e);
    }
    return out;
}

// max + 1 + its own score keeps the order among super experts.
static std::vector<double> protected_scores(std::vector<double> score, int il, const SuperExperts & protect) {
    double top = 0;
    for (double v : score)
        top = std::max(top, std::fabs(v));
    for (const auto & s : protect.experts) {
        if (s.layer == il) score[s.expert] += top + 1.0;
    }
    return score;
}

Plan plan_every_layer(const MoeShape & shape, Criterion criterion, uint32_t kept, uint64_t seed,
                      const SuperExperts * protect, const std::function<LayerPlan(int il, Plan & p)> & plan_layer) {
    check_kept_count(shape, kept);
    Plan p;
    if (protect != nullptr) {
        p.protect_super_experts = true;
        p.super_experts         = *protect;
    }
    p.criterion      = criterion_name(criterion);
    p.n_expert       = shape.n_expert;
    p.keep_ratio     = double(kept) / double(shape.n_expert);
    p.seed           = seed;
    int last_regular = -1;
    for (int il : shape.all_moe_layers()) {
        if (std::binary_search(shape.nextn_layers.begin(), shape.nextn_layers.end(), il)) {
            if (last_regular < 0) {
                fail("next-token-prediction layer %d comes before any MoE layer with statistics", il);
            }
            LayerPlan lp = p.layers.at(last_regular);
            lp.scores.clear();
            lp.copied_from_layer = true;
            p.layers[il]         = lp;
            continue;
        }
        p.layers[il] = plan_layer(il, p);
        last_regular = il;
    }
    return p;
}

std::vector<double> select_layer(Plan & p, LayerPlan & lp, const std::vector<uint64_t> & count, const MoeShape & shape,
                                 uint32_t kept, int il, const SuperExperts * protect) {
    const std::vector<double> rank = protect ? protected_scores(lp.scores, il, *protect) : lp.scores;
    lp.kept                        = kept_experts(rank, count, shape, kept);
    lp.dropped                     = dropped_experts(rank, count, shape, kept);
    if (protect) {
        const auto unprotected = dropped_experts(lp.scores, count, shape, kept);
        for (const auto & s : protect->experts) {
            if (s.layer != il) continue;
            p.protected_experts.push_back({s, std::binary_search(unprotected.begin(), unprotected.end(), s.expert)});
        }
    }
    return rank;
}

Plan make_plan(const ExpertStats & stats, const MoeShape & shape, Criterion criterion, uint32_t kept, uint64_t seed,
               const SuperExperts * protect, const std::map<int, std::vector<double>> * scores) {
    return plan_every_layer(shape, criterion, kept, seed, protect, [&](int il, Plan & p) {
        const LayerStats & S = stats.layers.at(il);
        LayerPlan          lp;
        lp.scores = scores ? scores->at(il) : expert_scores(S, criterion, seed, il);
        select_layer(p, lp, S.count, shape, kept, il, protect);
        lp.set_pruned_slots();
        return lp;
    });
}

Plan uniform_plan(const MoeShape & shape, uint32_t kept) {
    check_kept_count(shape, kept);
    Plan p;
    p.criterion  = criterion_name(Criterion::reap);
    p.n_expert   = shape.n_expert;
    p.keep_ratio = double(kept) / double(shape.n_expert);
    const std::vector<double>   equal(shape.n_expert, 0.0);
    const std::vector<uint64_t> unseen(shape.n_expert, 0);
    LayerPlan                   lp;
    lp.kept    = kept_experts(equal, unseen, shape, kept);
    lp.dropped = dropped_experts(equal, unseen, shape, kept);
    lp.set_pruned_slots();
    for (int il : shape.all_moe_layers()) {
        p.layers[il]                   = lp;
        p.layers[il].copied_from_layer = std::binary_search(shape.nextn_layers.begin(), shape.nextn_layers.end(), il);
    }
    return p;
}

}  // namespace reap
