#include "profile/expert_norms.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <thread>

namespace reap {

void ExpertNorms::resize(size_t n, bool with_renorm) {
    norm.resize(n);
    peak.resize(n);
    peak_at.resize(n);
    renorm.resize(with_renorm ? n : 0);
}

double renorm_rest(double g_all, double g_k) {
    const double g_rest = g_all - g_k;
    return g_rest > 1e-12 * std::fabs(g_all) ? g_rest : 0.0;
}

// reap-renorm of one token's n_used selected experts (outputs f_k at `row` + k * nb1, applied
// gates g): out[k] = g_k * ||f_k - ybar_-k||, ybar_-k = sum_{m != k} g_m f_m / sum_{m != k} g_m,
// the layer output's change when k is dropped and the others' weights are renormalised. Without
// other weight ybar is 0 and the value is REAP's g_k ||f_k||.
static void renorm_deltas(const uint8_t * row, size_t nb1, int64_t n_embd, int64_t n_used, const float * g,
                          std::vector<double> & weighted, double * out) {
    weighted.assign(size_t(n_embd), 0.0);
    double g_all = 0.0;
    for (int64_t m = 0; m < n_used; m++) {
        const float * f = reinterpret_cast<const float *>(row + size_t(m) * nb1);
        for (int64_t i = 0; i < n_embd; i++)
            weighted[size_t(i)] += double(g[m]) * double(f[i]);
        g_all += double(g[m]);
    }
    for (int64_t k = 0; k < n_used; k++) {
        const float * f      = reinterpret_cast<const float *>(row + size_t(k) * nb1);
        const double  g_rest = renorm_rest(g_all, double(g[k]));
        double        ss     = 0.0;
        for (int64_t i = 0; i < n_embd; i++) {
            const double ybar = g_rest == 0.0 ? 0.0 : (weighted[size_t(i)] - double(g[k]) * double(f[i])) / g_rest;
            const double dlt  = double(f[i]) - ybar;
            ss += dlt * dlt;
        }
        out[k] = std::fabs(double(g[k])) * std::sqrt(ss);
    }
}

// Tokens [t0, t1) of expert_norms_host.
static void norms_of_tokens(const uint8_t * data, size_t nb1, size_t nb2, int64_t n_embd, int64_t n_used, int64_t t0,
                            int64_t t1, const float * gates, ExpertNorms & out) {
    std::vector<double> weighted;
    for (int64_t tok = t0; tok < t1; tok++) {
        const uint8_t * row = data + size_t(tok) * nb2;
        if (gates != nullptr) {
            renorm_deltas(row, nb1, n_embd, n_used, gates + tok * n_used, weighted, out.renorm.data() + tok * n_used);
        }
        for (int64_t k = 0; k < n_used; k++) {
            const float * f  = reinterpret_cast<const float *>(row + size_t(k) * nb1);
            double        ss = 0.0, peak = 0.0;
            int32_t       peak_at = 0;
            for (int64_t i = 0; i < n_embd; i++) {
                ss += double(f[i]) * double(f[i]);
                if (std::fabs(double(f[i])) > peak) {
                    peak    = std::fabs(double(f[i]));
                    peak_at = int32_t(i);
                }
            }
            const size_t idx = size_t(tok * n_used + k);
            out.norm[idx]    = std::sqrt(ss);
            out.peak[idx]    = peak;
            out.peak_at[idx] = peak_at;
        }
    }
}

void expert_norms_host(const uint8_t * data, size_t nb1, size_t nb2, int64_t n_embd, int64_t n_used, int64_t n_tokens,
                       const float * gates, ExpertNorms & out, int n_threads) {
    out.resize(size_t(n_used * n_tokens), gates != nullptr);
    // Each token's values are independent: the threads split the tokens, and the results are the
    // same bits as one thread's.
    const int64_t            n_chunks = std::max<int64_t>(1, std::min<int64_t>(n_threads, n_tokens / 8));
    std::vector<std::thread> workers;
    for (int64_t c = 1; c < n_chunks; c++) {
        workers.emplace_back(norms_of_tokens, data, nb1, nb2, n_embd, n_used, n_tokens * c / n_chunks,
                             n_tokens * (c + 1) / n_chunks, gates, std::ref(out));
    }
    norms_of_tokens(data, nb1, nb2, n_embd, n_used, 0, n_tokens / n_chunks, gates, out);
    for (std::thread & w : workers)
        w.join();
}

}  // namespace reap
