// check_stats_match (expert_stats.h): whether statistics were collected on the model at hand.
#include "core/error.h"
#include "core/text.h"
#include "stats/expert_stats.h"

namespace reap {

void check_stats_match(const ExpertStats & stats, const MoeShape & shape, const std::string & path) {
    const StatsMeta & m = stats.meta;
    if (m.architecture && !shape.arch.empty() && *m.architecture != shape.arch) {
        fail("%s: statistics of a %s model, but the model is %s: statistics of another model", path.c_str(),
             m.architecture->c_str(), shape.arch.c_str());
    }
    if (m.n_expert_groups && *m.n_expert_groups != shape.n_expert_groups) {
        fail("%s: statistics of a model with %u expert groups, but the model has %u: statistics of another model",
             path.c_str(), *m.n_expert_groups, shape.n_expert_groups);
    }
    // A stats file that records its shape (n_expert_groups is always written) and no
    // experts_per_chunk was made from a model without adjugate experts.
    if (m.experts_per_chunk.value_or(0) != shape.experts_per_chunk && (m.experts_per_chunk || m.n_expert_groups)) {
        fail(
            "%s: statistics of a model with %u experts per adjugate group, but the model has %u: statistics of "
            "another model",
            path.c_str(), m.experts_per_chunk.value_or(0), shape.experts_per_chunk);
    }
    const std::string other =
        router_identity_mismatch(m.router_fingerprint.value_or(""), m.router_norms.value_or(RouterNorms()), shape);
    if (!other.empty()) {
        fail("%s: statistics of a model with %s: statistics of another model", path.c_str(), other.c_str());
    }
    for (const auto & [il, L] : stats.layers) {
        if (L.n_expert() != shape.n_expert) {
            fail("%s: layer %d has %zu experts but the model has %u: statistics of another model", path.c_str(), il,
                 L.n_expert(), shape.n_expert);
        }
    }
    std::vector<int> have;
    for (const auto & kv : stats.layers)
        have.push_back(kv.first);
    if (have != shape.moe_layers) {
        fail("%s: statistics cover MoE layers {%s} but the model's are {%s}: statistics of another model", path.c_str(),
             id_ranges(have).c_str(), id_ranges(shape.moe_layers).c_str());
    }
}

}  // namespace reap
