#include "stats/criteria.h"

#include "core/error.h"
#include "core/hash.h"

#include <algorithm>

namespace reap {

namespace {

std::vector<double> score_reap(const LayerStats & L, uint64_t, int) { return L.reap(); }
std::vector<double> score_ean(const LayerStats & L, uint64_t, int) { return L.ean_mean(); }
std::vector<double> score_frequency(const LayerStats & L, uint64_t, int) { return L.activation_frequency(); }

std::vector<double> score_weighted_frequency(const LayerStats & L, uint64_t, int) {
    auto       f = L.activation_frequency();
    const auto g = L.avg_gate_weight();
    for (size_t e = 0; e < f.size(); e++)
        f[e] *= g[e];
    return f;
}

std::vector<double> score_reap_renorm(const LayerStats & L, uint64_t, int) { return L.reap_renorm(); }
std::vector<double> score_reap_sum(const LayerStats & L, uint64_t, int) { return L.reap_per_token(); }
std::vector<double> score_ean_sum(const LayerStats & L, uint64_t, int) { return L.ean_per_token(); }
std::vector<double> score_reap_sq_sum(const LayerStats & L, uint64_t, int) { return L.reap_sq_per_token(); }
std::vector<double> score_imatrix_sum(const LayerStats & L, uint64_t, int) { return L.imatrix_per_token(); }
std::vector<double> score_imatrix_mean(const LayerStats & L, uint64_t, int) { return L.imatrix_mean(); }
std::vector<double> score_max_activation(const LayerStats & L, uint64_t, int) { return L.output_max(); }

// A reproducible baseline: a uniform value keyed by (seed, layer, expert).
std::vector<double> score_random(const LayerStats & L, uint64_t seed, int layer) {
    std::vector<double> r(L.n_expert());
    for (size_t e = 0; e < r.size(); e++)
        r[e] = keyed_uniform(seed, uint64_t(layer), e);
    return r;
}

const std::vector<CriterionInfo> k_criteria = {
    {Criterion::reap, "reap",
     "mean of gate weight \u00d7 \u2016expert output\u2016 over the tokens routed to the expert (REAP)",
     "reap_sum, activation_counts", true, false, score_reap},
    {Criterion::ean, "ean", "mean \u2016expert output\u2016 over the tokens routed to the expert (EAN)",
     "ean_sum, activation_counts", true, false, score_ean},
    {Criterion::frequency, "frequency", "share of the layer's tokens routed to the expert",
     "activation_counts, total_tokens", true, false, score_frequency},
    {Criterion::weighted_frequency, "weighted-frequency", "activation frequency \u00d7 mean gate weight",
     "activation_counts, total_tokens, gate_sum", true, false, score_weighted_frequency},
    {Criterion::reap_renorm, "reap-renorm",
     "mean of gate weight \u00d7 \u2016expert output \u2212 renormalised mean of the other selected experts' "
     "outputs\u2016: what dropping the expert changes when the router renormalises (experimental)",
     "reap_renorm_sum, activation_counts", true, false, score_reap_renorm},
    {Criterion::reap_sum, "reap-sum",
     "sum of gate weight \u00d7 \u2016expert output\u2016 over the routed tokens / all tokens of the layer: the "
     "expert's expected contribution per token (frequency-weighted REAP; weighted_ean_sum in Cerebras' reference "
     "implementation)",
     "reap_sum, total_tokens", true, false, score_reap_sum},
    {Criterion::ean_sum, "ean-sum",
     "sum of \u2016expert output\u2016 over the routed tokens / all tokens of the layer (frequency-weighted EAN)",
     "ean_sum, total_tokens", true, false, score_ean_sum},
    {Criterion::reap_sq_sum, "reap-sq-sum",
     "sum of (gate weight \u00d7 \u2016expert output\u2016)\u00b2 over the routed tokens / all tokens of the "
     "layer: the expert's expected squared contribution per token",
     "reap_sq_sum, total_tokens", true, false, score_reap_sq_sum},
    {Criterion::max_activation, "max-activation",
     "largest |element| of the expert output over the routed tokens (the super-expert signal, arXiv 2507.23279)",
     "max_activation", true, false, score_max_activation},
    {Criterion::imatrix_sum, "imatrix-sum",
     "from an importance matrix alone (--imatrix, no --stats): S = \u03a3_j \u2016W_down[:, j]\u2016\u00b2 "
     "\u00b7 \u03a3x_j\u00b2 (an estimate of \u03a3\u2016expert output\u2016\u00b2 over the routed tokens, "
     "gate not included) / all tokens of the layer (\u03a3 counts / experts used per token)",
     "imatrix: ffn_down_exps in_sum2 and counts, the model's ffn_down_exps weights", true, true, score_imatrix_sum},
    {Criterion::imatrix_mean, "imatrix-mean",
     "from an importance matrix alone (--imatrix, no --stats): the same S / the tokens routed to the expert",
     "imatrix: ffn_down_exps in_sum2 and counts, the model's ffn_down_exps weights", true, true, score_imatrix_mean},
    {Criterion::random, "random", "random (a baseline; ignores the statistics)", "nothing", false, false, score_random},
};

}  // namespace

const std::vector<CriterionInfo> & criteria() { return k_criteria; }

const CriterionInfo & criterion_info(Criterion c) {
    for (const auto & info : k_criteria) {
        if (info.id == c) return info;
    }
    fail("criterion %d has no registry entry", int(c));
}

std::vector<std::string> criterion_names(bool describing_model_only, bool stats_only) {
    std::vector<std::string> names;
    for (const auto & info : k_criteria) {
        if ((info.describes_model || !describing_model_only) && !(stats_only && info.from_imatrix))
            names.push_back(info.name);
    }
    return names;
}

Criterion parse_criterion(const std::string & s) {
    std::string choices;
    for (const auto & info : k_criteria) {
        if (s == info.name) return info.id;
        choices += (choices.empty() ? "" : ", ") + std::string(info.name);
    }
    fail("unknown criterion '%s' (%s)", s.c_str(), choices.c_str());
}

const char * criterion_name(Criterion c) { return criterion_info(c).name; }
const char * criterion_meaning(Criterion c) { return criterion_info(c).meaning; }

std::vector<double> expert_scores(const LayerStats & L, Criterion c, uint64_t seed, int layer) {
    return criterion_info(c).score(L, seed, layer);
}

std::vector<uint32_t> pruning_order(std::vector<uint32_t> ids, const std::vector<double> & score,
                                    const std::vector<uint64_t> & count) {
    std::sort(ids.begin(), ids.end(), [&](uint32_t a, uint32_t b) {
        if (score[a] != score[b]) return score[a] < score[b];
        if (count[a] != count[b]) return count[a] < count[b];
        return a < b;
    });
    return ids;
}

}  // namespace reap
