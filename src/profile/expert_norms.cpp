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

// Sums term(i) for i in [0, n) in independent double accumulators: one accumulator is a chain
// bound by the latency of each add, independent lanes let the compiler vectorise (the profile of
// a 64-expert model spent 2 % of its CPU time in a single-chain loop here). The order is fixed,
// so every thread gets the same bits for the same row.
template <class Term>
static double lane_sum(int64_t n, Term term) {
    constexpr int k_lanes      = 8;
    double        acc[k_lanes] = {};
    int64_t       i            = 0;
    for (; i + k_lanes <= n; i += k_lanes) {
        for (int j = 0; j < k_lanes; j++)
            acc[j] += term(i + j);
    }
    for (; i < n; i++)
        acc[0] += term(i);
    double sum = 0.0;
    for (double a : acc)
        sum += a;
    return sum;
}

// The largest |f[i]| and its first position (0 when every value is 0). A max is exact in any
// order and NaN never wins a comparison, so lanes give the same answer as one scan; the position
// is then searched a block of lanes at a time. Scalar, the two loops were most of the collector.
struct PeakAbs {
    float   value = 0.0f;
    int32_t at    = 0;
};
static PeakAbs peak_abs(const float * f, int64_t n) {
    constexpr int k_lanes       = 8;
    float         lane[k_lanes] = {};
    int64_t       i             = 0;
    for (; i + k_lanes <= n; i += k_lanes) {
        for (int j = 0; j < k_lanes; j++) {
            const float a = std::fabs(f[i + j]);
            lane[j]       = a > lane[j] ? a : lane[j];
        }
    }
    PeakAbs out;
    for (; i < n; i++) {
        const float a = std::fabs(f[i]);
        out.value     = a > out.value ? a : out.value;
    }
    for (float v : lane)
        out.value = v > out.value ? v : out.value;
    if (out.value == 0.0f) return out;
    for (i = 0; i + k_lanes <= n; i += k_lanes) {
        int hit = 0;
        for (int j = 0; j < k_lanes; j++)
            hit |= std::fabs(f[i + j]) == out.value;
        if (hit) break;
    }
    for (; i < n; i++) {
        if (std::fabs(f[i]) == out.value) {
            out.at = int32_t(i);
            break;
        }
    }
    return out;
}

// Tokens [t0, t1) of expert_norms_host.
//
// reap-renorm of a token's n_used selected experts (outputs f_k, applied gates g_k, G = sum g_m,
// W = sum g_m f_m): out_k = |g_k| * ||f_k - ybar_-k||, ybar_-k = (W - g_k f_k) / R_k, R_k = G - g_k,
// the layer output's change when k is dropped and the others' weights are renormalised. Since
// f_k - ybar_-k = (G f_k - W) / R_k, its squared norm is (G^2 ||f_k||^2 - 2 G <f_k, W> + ||W||^2) / R_k^2:
// one dot product per expert next to the norm REAP needs anyway, instead of a pass over a
// difference vector (half the collector's time). Without other weight (R_k = 0) ybar is 0 and
// the value is REAP's |g_k| ||f_k||.
static void norms_of_tokens(const uint8_t * data, size_t nb1, size_t nb2, int64_t n_embd, int64_t n_used, int64_t t0,
                            int64_t t1, const float * gates, ExpertNorms & out) {
    std::vector<double> weighted(gates != nullptr ? size_t(n_embd) : 0);
    double *            w = weighted.data();
    for (int64_t tok = t0; tok < t1; tok++) {
        const uint8_t * row   = data + size_t(tok) * nb2;
        const float *   g     = gates != nullptr ? gates + tok * n_used : nullptr;
        double          g_all = 0.0, ww = 0.0;
        if (g != nullptr) {
            std::fill(weighted.begin(), weighted.end(), 0.0);
            for (int64_t m = 0; m < n_used; m++) {
                const float * f  = reinterpret_cast<const float *>(row + size_t(m) * nb1);
                const double  gm = double(g[m]);
                for (int64_t i = 0; i < n_embd; i++)
                    w[i] += gm * double(f[i]);
                g_all += gm;
            }
            ww = lane_sum(n_embd, [&](int64_t i) { return w[i] * w[i]; });
        }
        for (int64_t k = 0; k < n_used; k++) {
            const float * f   = reinterpret_cast<const float *>(row + size_t(k) * nb1);
            const double  ss  = lane_sum(n_embd, [&](int64_t i) { return double(f[i]) * double(f[i]); });
            const PeakAbs pk  = peak_abs(f, n_embd);
            const size_t  idx = size_t(tok * n_used + k);
            out.norm[idx]     = std::sqrt(ss);
            out.peak[idx]     = double(pk.value);
            out.peak_at[idx]  = pk.at;
            if (g != nullptr) {
                const double gk     = double(g[k]);
                const double g_rest = renorm_rest(g_all, gk);
                double       delta2 = ss;
                if (g_rest != 0.0) {
                    const double fw = lane_sum(n_embd, [&](int64_t i) { return double(f[i]) * w[i]; });
                    delta2          = std::max(0.0, g_all * g_all * ss - 2.0 * g_all * fw + ww) / (g_rest * g_rest);
                }
                out.renorm[idx] = std::fabs(gk) * std::sqrt(delta2);
            }
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
