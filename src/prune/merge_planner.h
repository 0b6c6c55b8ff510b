// Which experts merge into which (README's `reap prune` row, --merge): the plan (plan/plan.h) of
// a merged model. Per MoE layer, `kept` centroids each become one slot whose sources are the
// centroid (sources[0]) and the experts grouped with it, with the coefficients they are averaged
// with. Two methods:
//  - ream (REAM, arXiv 2604.04356; reference SamsungSAILMontreal/ream, ream/ream.py pseudo_group):
//    the `kept` most salient experts by REAP score are the centroids (chosen by kept_experts, so
//    expert groups and super-expert protection apply as in a pruning plan). From the most salient
//    centroid down, each takes its nearest experts not yet in a group, until its group holds C
//    experts, the centroid included (C = group_size, default 16 as the reference's --group_size);
//    distance = 1 - (output similarity + router similarity) / 2, ties by lower id; only experts
//    of the centroid's expert group (grouped routing). Every expert must land in a group, as in
//    the reference (which refuses otherwise): a C with kept * C below the expert count is refused.
//    Coefficients: REAP scores within the group, normalised to sum 1.
//  - msmoe (M-SMoE, arXiv 2310.01334 "Merge, Then Compress"): the `kept` most frequently routed
//    experts (activation counts; ties as in pruning_order; groups and protection as above) are dominant;
//    every other expert joins the dominant expert of its expert group whose router-logit column is
//    most similar (ties: the lower id). No group size limit (C is ignored; the record says 0).
//    Coefficients: activation counts within the group, normalised to sum 1.
// In both, a group whose centroid scores 0 is averaged with equal coefficients, and a member
// that scores 0 while its centroid does not gets coefficient 0: it leaves the slot (merged into
// nothing, as a pruned expert). Next-token-prediction layers take the last regular layer's slots.
#pragma once

#include "moe/moe_shape.h"
#include "plan/plan.h"
#include "stats/expert_stats.h"
#include "stats/super_experts.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace reap {

// REAM's C when --merge-group-size is not given: the reference's default (merge.py --group_size 16).
inline constexpr uint32_t k_ream_default_group_size = 16;

// How similar the experts of one MoE layer are, two n x n matrices (row-major, symmetric, values in
// [-1, 1]): `router`, the cosine similarity of the experts' router-logit columns over the calibration
// tokens; `output`, the cosine similarity of their gate-weighted outputs.
struct LayerSimilarity {
    std::vector<double> router, output;
    uint32_t            n = 0;
};

struct MergeOptions {
    std::string method;                  // "ream", "msmoe"
    std::string align      = "weights";  // "weights", "none": recorded for the writers (plan/plan.h MergeRecord)
    uint32_t    group_size = 0;          // ream's C, the centroid included (0: k_ream_default_group_size)
};

// The names --merge and --merge-align take.
const std::vector<std::string> & merge_method_names();
const std::vector<std::string> & merge_align_names();
// Throws UsageError (exit 2) for an unknown method or alignment.
void check_merge_options(const MergeOptions & o);
// The C a plan of `o` uses: ream's, or its default; 0 (no limit) for msmoe.
uint32_t merge_group_size_used(const MergeOptions & o);

// The similarity matrices of every regular MoE layer, from a stats file profiled with
// --merge-stats: the cosine similarities of its Grams (LayerStats::router_similarity,
// output_similarity). Throws, naming `stats_path`, when a layer has none.
std::map<int, LayerSimilarity> merge_similarities(const ExpertStats & stats, const std::string & stats_path);

// The merged plan keeping `kept` slots per MoE layer (see the top of this file). `sim`: every
// regular MoE layer's similarities (checked: n_expert x n_expert, finite, within [-1, 1]).
// `protect`: super experts (stats/super_experts.h) are chosen as centroids first. plan.merge
// records the method, alignment and C used; plan.criterion is "reap" (ream) or "frequency"
// (msmoe) and the scores are that criterion's. Throws for a kept count the model cannot keep,
// a ream C too small for every expert to find a group, a model with adjugate experts (GroveMoE),
// or missing or malformed similarities.
Plan make_merge_plan(const ExpertStats & stats, const MoeShape & shape, const std::map<int, LayerSimilarity> & sim,
                     const MergeOptions & o, uint32_t kept, uint64_t seed, const SuperExperts * protect = nullptr);

}  // namespace reap
