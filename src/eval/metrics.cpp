#include "eval/metrics.h"

#include <algorithm>
#include <cmath>

namespace reap {

const char * ppl_convention_name(PplConvention c) { return c == PplConvention::all ? "all" : "second-half"; }

uint32_t first_scored_position(PplConvention c, uint32_t n_ctx) { return c == PplConvention::all ? 0 : n_ctx / 2; }

void log_softmax(const float * logits, size_t n, std::vector<float> & out) {
    double mx = logits[0];
    for (size_t i = 1; i < n; i++)
        mx = std::max(mx, double(logits[i]));
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += std::exp(double(logits[i]) - mx);
    const double lse = mx + std::log(sum);
    out.resize(n);
    for (size_t i = 0; i < n; i++)
        out[i] = float(double(logits[i]) - lse);
}

TokenComparison compare_token(const float * base_lp, const float * model_lp, size_t n_vocab, int32_t next) {
    double kl = 0;
    size_t ab = 0, am = 0;
    for (size_t v = 0; v < n_vocab; v++) {
        // An entry the base gives probability 0 (-inf: masked, or below a stored row's floor)
        // adds nothing, whatever the model gives it.
        const double p = std::exp(double(base_lp[v]));
        if (p > 0) kl += p * (double(base_lp[v]) - double(model_lp[v]));
        if (base_lp[v] > base_lp[ab]) ab = v;
        if (model_lp[v] > model_lp[am]) am = v;
    }
    return {std::max(0.0, kl), -double(model_lp[next]), ab == am};
}

void ScoreSum::add(const TokenComparison & c) {
    nll_ += c.nll;
    kls_.push_back(c.kl);
    agree_ += c.top1_agrees ? 1 : 0;
}

EvalRow ScoreSum::row(const std::string & path, uint64_t file_size, double seconds, uint64_t decoded) {
    EvalRow r;
    r.path      = path;
    r.file_size = file_size;
    r.n_scored  = kls_.size();
    r.ppl       = std::exp(nll_ / double(kls_.size()));
    double s    = 0;
    for (double k : kls_)
        s += k;
    r.kl_mean        = s / double(kls_.size());
    const size_t p99 = std::min(kls_.size() - 1, size_t(std::ceil(0.99 * double(kls_.size()))) - 1);
    std::nth_element(kls_.begin(), kls_.begin() + long(p99), kls_.end());
    r.kl_p99       = kls_[p99];
    r.top1         = double(agree_) / double(kls_.size());
    r.timed        = seconds > 0;
    r.tokens_per_s = r.timed ? double(decoded) / seconds : 0;
    return r;
}

}  // namespace reap
