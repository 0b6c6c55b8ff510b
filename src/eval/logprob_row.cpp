#include "eval/logprob_row.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace reap {

namespace {

// Log-probabilities more than this far below the most likely token are stored as "probability
// 0": each such token has p < e^-30 (about 1e-13), far below anything KL or PPL can see.
constexpr float k_range = 30.0f;

// Stored per row, before the quantized entries.
struct RowHead {
    float   p_log_p;
    float   next_logprob;
    int32_t argmax;
    float   floor;  // log-probability of quantized value 0
    float   step;   // log-probability per quantization step
};

}  // namespace

size_t compact_row_bytes(uint32_t n_vocab) { return sizeof(RowHead) + size_t(n_vocab) * sizeof(uint16_t); }

void exact_row(const std::vector<float> & lp, int32_t next, BaseRow & row) {
    row.logprobs = lp;
    row.p_log_p  = 0;
    row.argmax   = 0;
    for (size_t v = 0; v < lp.size(); v++) {
        row.p_log_p += std::exp(double(lp[v])) * double(lp[v]);
        if (lp[v] > lp[size_t(row.argmax)]) row.argmax = int32_t(v);
    }
    row.next_logprob = lp[size_t(next)];
}

void encode_row(const std::vector<float> & lp, int32_t next, std::vector<uint8_t> & out) {
    BaseRow exact;
    exact_row(lp, next, exact);
    const float top = lp[size_t(exact.argmax)];
    const float low = *std::min_element(lp.begin(), lp.end());
    RowHead     h{float(exact.p_log_p), exact.next_logprob, exact.argmax, std::max(low, top - k_range), 0.0f};
    h.step = (top - h.floor) / 65534.0f;
    out.resize(compact_row_bytes(uint32_t(lp.size())));
    std::memcpy(out.data(), &h, sizeof(h));
    // 0: below the floor (probability 0); 1..65535: floor .. top.
    for (size_t v = 0; v < lp.size(); v++) {
        uint16_t q = 0;
        if (lp[v] >= h.floor) {
            const float x = h.step > 0 ? std::round((lp[v] - h.floor) / h.step) : 65534.0f;
            q             = uint16_t(1 + std::clamp(x, 0.0f, 65534.0f));
        }
        std::memcpy(out.data() + sizeof(h) + v * sizeof(q), &q, sizeof(q));
    }
}

bool decode_row(const uint8_t * bytes, uint32_t n_vocab, BaseRow & row) {
    RowHead h;
    std::memcpy(&h, bytes, sizeof(h));
    const bool sane = std::isfinite(h.p_log_p) && h.p_log_p <= 0 && std::isfinite(h.next_logprob) &&
                      h.next_logprob <= 0 && h.argmax >= 0 && uint32_t(h.argmax) < n_vocab && std::isfinite(h.floor) &&
                      h.floor <= 0 && std::isfinite(h.step) && h.step >= 0 && h.floor + 65534.0f * h.step <= 1e-3f;
    if (!sane) return false;
    row.p_log_p      = h.p_log_p;
    row.next_logprob = h.next_logprob;
    row.argmax       = h.argmax;
    row.logprobs.resize(n_vocab);
    for (uint32_t v = 0; v < n_vocab; v++) {
        uint16_t q;
        std::memcpy(&q, bytes + sizeof(h) + size_t(v) * sizeof(q), sizeof(q));
        row.logprobs[v] = q == 0 ? -INFINITY : h.floor + float(q - 1) * h.step;
    }
    return true;
}

}  // namespace reap
