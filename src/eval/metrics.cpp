#include "eval/metrics.h"

#include "core/error.h"
#include "eval/logprob_row.h"

#include <algorithm>
#include <cmath>

namespace reap {

void log_softmax(const float * logits, size_t n, std::vector<float> & out) {
    double mx = logits[0];
    for (size_t i = 1; i < n; i++) mx = std::max(mx, double(logits[i]));
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += std::exp(double(logits[i]) - mx);
    const double lse = mx + std::log(sum);
    out.resize(n);
    for (size_t i = 0; i < n; i++) out[i] = float(double(logits[i]) - lse);
}

TokenComparison compare_token(const float * base_lp, const float * model_lp, size_t n_vocab, int32_t next) {
    double kl = 0;
    size_t ab = 0, am = 0;
    for (size_t v = 0; v < n_vocab; v++) {
        const double p = std::exp(double(base_lp[v]));
        kl += p * (double(base_lp[v]) - double(model_lp[v]));
        if (base_lp[v] > base_lp[ab]) ab = v;
        if (model_lp[v] > model_lp[am]) am = v;
    }
    return {std::max(0.0, kl), -double(model_lp[next]), ab == am};
}

TokenComparison compare_row(const BaseRow & base, const float * model_lp, size_t n_vocab, int32_t next) {
    double mass = 0, cross = 0;
    size_t am = 0;
    for (size_t v = 0; v < n_vocab; v++) {
        if (model_lp[v] > model_lp[am]) am = v;
        const float lb = base.logprobs[v];
        if (std::isinf(lb)) continue;  // below the stored floor: probability 0
        const double p = std::exp(double(lb));
        mass += p;
        cross += p * double(model_lp[v]);
    }
    const double kl = mass > 0 ? base.p_log_p - cross / mass : 0.0;
    return {std::max(0.0, kl), -double(model_lp[next]), size_t(base.argmax) == am};
}

void ScoreSum::add(const TokenComparison & c) {
    nll_ += c.nll;
    kls_.push_back(c.kl);
    agree_ += c.top1_agrees ? 1 : 0;
}

EvalRow ScoreSum::row(const std::string & model, uint64_t file_size, double seconds, uint64_t decoded) {
    if (kls_.empty()) {
        fail("%s: no position was scored: the held-out text is too short for this context size", model.c_str());
    }
    EvalRow r;
    r.model     = model;
    r.file_size = file_size;
    r.n_scored  = kls_.size();
    r.ppl       = std::exp(nll_ / double(kls_.size()));
    double s    = 0;
    for (double k : kls_) s += k;
    r.kl_mean = s / double(kls_.size());
    const size_t p99 = std::min(kls_.size() - 1, size_t(std::ceil(0.99 * double(kls_.size()))) - 1);
    std::nth_element(kls_.begin(), kls_.begin() + long(p99), kls_.end());
    r.kl_p99       = kls_[p99];
    r.top1         = double(agree_) / double(kls_.size());
    r.tokens_per_s = seconds > 0 ? double(decoded) / seconds : 0;
    return r;
}

}  // namespace reap
