#include "eval/logprob_codec.h"

#include <algorithm>
#include <cmath>

namespace reap {

void encode_logprob_row(const float * lp, size_t n, int32_t next, QuantizedRow & out) {
    size_t top = 0;  // the first of equal maxima, as compare_token's argmax
    float  lo  = lp[0];
    for (size_t v = 1; v < n; v++) {
        if (lp[v] > lp[top]) top = v;
        lo = std::min(lo, lp[v]);
    }
    const double hi    = lp[top];
    const double floor = std::max(double(lo), hi - k_logprob_range);
    out.floor          = float(floor);
    out.scale          = float((hi - double(out.floor)) / (k_top_code - 1));
    out.next_logprob   = lp[next];
    out.codes.assign(n, 1);
    const double inv = out.scale > 0 ? 1.0 / double(out.scale) : 0.0;
    for (size_t v = 0; v < n; v++) {
        if (!(lp[v] >= out.floor)) {  // below the floor (or NaN)
            out.codes[v] = 0;
        } else if (inv > 0) {
            const double c = 1 + std::nearbyint((double(lp[v]) - double(out.floor)) * inv);
            out.codes[v]   = uint16_t(std::clamp(c, 1.0, double(k_top_code - 1)));
        }
    }
    out.codes[top] = k_top_code;
}

// The log-probability of a code other than 0.
static double code_logprob(const QuantizedRow & row, uint16_t code) {
    return double(row.floor) + double(row.scale) * (code - 1);
}

void decode_logprob_row(const QuantizedRow & row, std::vector<float> & out) {
    out.resize(row.codes.size());
    for (size_t v = 0; v < row.codes.size(); v++) {
        // The float rounding of scale may put the top a hair above 0: a log-probability is not.
        out[v] = row.codes[v] == 0 ? -INFINITY : float(std::min(0.0, code_logprob(row, row.codes[v])));
    }
}

const char * invalid_quantized_row(const QuantizedRow & row, int32_t next) {
    const double scale = row.scale, floor = row.floor, next_lp = row.next_logprob;
    if (!std::isfinite(scale) || !std::isfinite(floor) || !std::isfinite(next_lp) || scale < 0) {
        return "a non-finite or negative scale, floor or log-probability";
    }
    const double top = code_logprob(row, k_top_code);
    if (next_lp > 0 || top > 1e-4 || top - floor > k_logprob_range + 1e-3) {
        return "a log-probability above 0 or a range wider than 32 nats";
    }
    if (std::find(row.codes.begin(), row.codes.end(), k_top_code) == row.codes.end()) {
        return "no top entry";
    }
    // The exact next-token log-probability and its code agree within a step (rounding, or the
    // top code held by an equal entry); code 0 is an entry below the floor.
    const uint16_t code  = row.codes[size_t(next)];
    const double   slack = 1.01 * scale + 1e-5 * (1 + std::fabs(floor));
    const bool     fits  = code == 0 ? next_lp <= floor + slack : std::fabs(next_lp - code_logprob(row, code)) <= slack;
    if (!fits) return "a next-token log-probability that its code contradicts";
    return nullptr;
}

}  // namespace reap
