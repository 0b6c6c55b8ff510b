#include "prune/merge_planner.h"

#include "core/error.h"
#include "moe/expert_budget.h"
#include "prune/planner.h"
#include "stats/criteria.h"

#include <algorithm>
#include <cmath>

namespace reap {

const std::vector<std::string> & merge_method_names() {
    static const std::vector<std::string> names = {"ream", "msmoe"};
    return names;
}

const std::vector<std::string> & merge_align_names() {
    static const std::vector<std::string> names = {"weights", "none"};
    return names;
}

namespace {

bool one_of(const std::string & s, const std::vector<std::string> & names) {
    return std::find(names.begin(), names.end(), s) != names.end();
}

}  // namespace

void check_merge_options(const MergeOptions & o) {
    if (!one_of(o.method, merge_method_names()))
        fail_usage("--merge: '%s' is not a merge method (ream, msmoe)", o.method.c_str());
    if (!one_of(o.align, merge_align_names()))
        fail_usage("--merge-align: '%s' is not an alignment (weights, none)", o.align.c_str());
}

uint32_t merge_group_size_used(const MergeOptions & o) {
    if (o.method != "ream") return 0;
    return o.group_size > 0 ? o.group_size : k_ream_default_group_size;
}

std::map<int, LayerSimilarity> merge_similarities(const ExpertStats & stats, const std::string & stats_path) {
    std::map<int, LayerSimilarity> out;
    for (const auto & [il, L] : stats.layers) {
        if (!L.has_merge_stats()) {
            fail("%s: no merge statistics: profile with --merge-stats N (none for MoE layer %d)", stats_path.c_str(),
                 il);
        }
        out[il] = LayerSimilarity{L.router_similarity(), L.output_similarity(), uint32_t(L.n_expert())};
    }
    if (out.empty()) fail("%s: no MoE layer with statistics", stats_path.c_str());
    return out;
}

namespace {

// The similarities of layer `il`, checked against the model's expert count.
const LayerSimilarity & layer_similarity(const std::map<int, LayerSimilarity> & sim, int il, uint32_t n) {
    const auto it = sim.find(il);
    if (it == sim.end()) fail("merge statistics: no similarities for MoE layer %d", il);
    const LayerSimilarity & s     = it->second;
    const size_t            cells = size_t(n) * n;
    if (s.n != n || s.router.size() != cells || s.output.size() != cells) {
        fail("merge statistics: layer %d: similarities of %u experts (%zu, %zu values), the model has %u", il, s.n,
             s.router.size(), s.output.size(), n);
    }
    for (const auto * m : {&s.router, &s.output}) {
        for (size_t i = 0; i < cells; i++) {
            const double v = (*m)[i];
            if (!std::isfinite(v) || v < -1.0 - 1e-6 || v > 1.0 + 1e-6) {
                fail("merge statistics: layer %d: %s similarity of experts %zu and %zu is %g, not in [-1, 1]", il,
                     m == &s.router ? "router" : "output", i / n, i % n, v);
            }
        }
    }
    return s;
}

// The expert group (grouped routing) of expert e.
uint32_t group_of(const MoeShape & shape, uint32_t e) { return e / (shape.n_expert / shape.groups()); }

// The slot of `centroid` and its `members`, coefficients from `value` (scores or counts) normalised
// within the group: equal when the centroid's value is 0; a member of value 0 leaves the slot.
Slot make_slot(uint32_t centroid, std::vector<uint32_t> members, const std::vector<double> & value) {
    std::sort(members.begin(), members.end());
    auto v = [&](uint32_t e) { return std::isfinite(value[e]) && value[e] > 0 ? value[e] : 0.0; };
    Slot slot;
    if (v(centroid) <= 0) {
        const double w = 1.0 / double(members.size() + 1);
        slot.sources.push_back({centroid, w});
        for (uint32_t e : members)
            slot.sources.push_back({e, w});
        return slot;
    }
    double sum = v(centroid);
    for (uint32_t e : members)
        sum += v(e);
    slot.sources.push_back({centroid, v(centroid) / sum});
    for (uint32_t e : members) {
        if (v(e) > 0) slot.sources.push_back({e, v(e) / sum});
    }
    return slot;
}

// The centroids of `kept` most salient first (the reverse of the pruning order).
std::vector<uint32_t> salient_first(const std::vector<uint32_t> & kept, const std::vector<double> & rank,
                                    const std::vector<uint64_t> & count) {
    auto order = pruning_order(kept, rank, count);
    std::reverse(order.begin(), order.end());
    return order;
}

// REAM's pseudo-pruning grouping: centroid -> its members.
std::map<uint32_t, std::vector<uint32_t>> ream_groups(const std::vector<uint32_t> & kept,
                                                      const std::vector<double> &   rank,
                                                      const std::vector<uint64_t> & count, const LayerSimilarity & s,
                                                      const MoeShape & shape, uint32_t group_size, int il) {
    const uint32_t                            n = shape.n_expert;
    std::vector<bool>                         taken(n, false);
    std::map<uint32_t, std::vector<uint32_t>> groups;
    for (uint32_t c : kept) {
        taken[c]  = true;
        groups[c] = {};
    }
    for (uint32_t c : salient_first(kept, rank, count)) {
        std::vector<uint32_t> near;
        for (uint32_t e = 0; e < n; e++) {
            if (!taken[e] && group_of(shape, e) == group_of(shape, c)) near.push_back(e);
        }
        auto dist = [&](uint32_t e) { return 1.0 - (s.output[size_t(c) * n + e] + s.router[size_t(c) * n + e]) / 2; };
        std::stable_sort(near.begin(), near.end(), [&](uint32_t a, uint32_t b) { return dist(a) < dist(b); });
        if (near.size() > group_size - 1) near.resize(group_size - 1);
        for (uint32_t e : near)
            taken[e] = true;
        groups[c] = near;
    }
    for (uint32_t e = 0; e < n; e++) {  // excluded by the check of C before any layer
        if (!taken[e]) fail("--merge ream: layer %d: expert %u is in no group", il, e);
    }
    return groups;
}

// M-SMoE's grouping: every other expert joins the dominant expert of its expert group with the
// most similar router-logit column (ties: the lower id).
std::map<uint32_t, std::vector<uint32_t>> msmoe_groups(const std::vector<uint32_t> & kept, const LayerSimilarity & s,
                                                       const MoeShape & shape) {
    const uint32_t                            n = shape.n_expert;
    std::map<uint32_t, std::vector<uint32_t>> groups;
    for (uint32_t c : kept)
        groups[c] = {};
    for (uint32_t e = 0; e < n; e++) {
        if (groups.count(e)) continue;
        int64_t best = -1;
        for (uint32_t c : kept) {  // ascending: a tie keeps the lower id
            if (group_of(shape, c) != group_of(shape, e)) continue;
            if (best < 0 || s.router[size_t(c) * n + e] > s.router[size_t(best) * n + e]) best = c;
        }
        groups[uint32_t(best)].push_back(e);  // every group keeps kept/groups >= 1 experts
    }
    return groups;
}

// Every expert of an expert group finds a place only when the group's centroids can hold it:
// ceil(experts per group / centroids per group) <= C. The reference refuses otherwise too.
void check_group_size(const MoeShape & shape, uint32_t kept, uint32_t group_size) {
    const uint32_t per_group = shape.n_expert / shape.groups(), centroids = kept / shape.groups();
    const uint32_t need = (per_group + centroids - 1) / centroids;
    if (group_size < need) {
        fail(
            "--merge ream: %u centroids in groups of at most %u experts (--merge-group-size) leave experts of the %u "
            "in no group; give --merge-group-size %u or more",
            kept, group_size, shape.n_expert, need);
    }
}

}  // namespace

Plan make_merge_plan(const ExpertStats & stats, const MoeShape & shape, const std::map<int, LayerSimilarity> & sim,
                     const MergeOptions & o, uint32_t kept, uint64_t seed, const SuperExperts * protect) {
    check_merge_options(o);
    check_kept_count(shape, kept);
    if (shape.experts_per_chunk > 0) {
        fail("--merge: %s shares adjugate experts between groups of experts (GroveMoE): merging is not supported",
             shape.arch.c_str());
    }
    const bool        ream      = o.method == "ream";
    const Criterion   criterion = ream ? Criterion::reap : Criterion::frequency;
    const MergeRecord merge     = {o.method, o.align, merge_group_size_used(o)};
    if (ream) check_group_size(shape, kept, merge.group_size);
    Plan p  = plan_every_layer(shape, criterion, kept, seed, protect, [&](int il, Plan & plan) {
        const LayerStats &      S = stats.layers.at(il);
        const LayerSimilarity & s = layer_similarity(sim, il, shape.n_expert);
        LayerPlan               lp;
        lp.scores                        = expert_scores(S, criterion, seed, il);
        const std::vector<double> rank   = select_layer(plan, lp, S.count, shape, kept, il, protect);
        const auto                groups = ream ? ream_groups(lp.kept, rank, S.count, s, shape, merge.group_size, il)
                                                 : msmoe_groups(lp.kept, s, shape);
        // Coefficients: REAP scores (ream), activation counts (msmoe).
        std::vector<double> value = lp.scores;
        if (!ream) value.assign(S.count.begin(), S.count.end());
        for (uint32_t c : lp.kept)
            lp.slots.push_back(make_slot(c, groups.at(c), value));
        return lp;
    });
    p.merge = merge;
    return p;
}

}  // namespace reap
