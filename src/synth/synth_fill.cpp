#include "synth/synth_fill.h"

#include "core/tensor_codec.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace reap::synth {

void fill_slice(const TensorSpec & t, Rng & rng, int64_t outer, std::vector<float> & v) {
    for (auto & x : v) {
        switch (t.init) {
            case Init::normal:
            case Init::embedding: x = t.scale * rng.normal(); break;
            case Init::ones: x = 1.0f; break;
            case Init::zeros: x = 0.0f; break;
            case Init::ssm_a: x = -float(0.1 + 0.9 * rng.uniform()); break;
            case Init::ssm_dt_bias: {
                const double dt = 0.01 + 0.09 * rng.uniform();  // softplus(bias) = dt
                x               = float(std::log(std::expm1(dt)));
                break;
            }
        }
    }
    if (t.init == Init::embedding) {
        v[0] = 1.0f;
    }
    if (t.reads_residual) {
        // Only routers read residual dimension 0: every other input ignores the anchor, so it
        // adds no token-independent component to attention or FFN outputs.
        for (size_t i = 0; i < v.size(); i += size_t(t.ne[0])) {
            v[i] = 0.0f;
        }
    }
    if (t.writes_residual && t.ne.size() == 1) {
        v[0] = 0.0f;  // a bias on the residual stream
    } else if (t.writes_residual) {
        // Keep residual dimension 0 constant: zero this tensor's contribution to it.
        const size_t n_dims  = t.ne.size();
        const bool   is_bias = !t.matrix;
        const size_t res_dim = is_bias ? 0 : 1;
        if (res_dim == n_dims - 1) {
            if (outer == 0) {
                std::fill(v.begin(), v.end(), 0.0f);
            }
        } else if (res_dim == 0) {
            for (size_t i = 0; i < v.size(); i += size_t(t.ne[0])) {
                v[i] = 0.0f;
            }
        } else {  // res_dim == 1 inside a 3-D slice
            const size_t row = size_t(t.ne[0]), plane = row * size_t(t.ne[1]);
            for (size_t p = 0; p < v.size(); p += plane) {
                std::fill(v.begin() + long(p), v.begin() + long(p + row), 0.0f);
            }
        }
    }
}

void encode(ggml_type type, const float * src, int64_t n, int64_t row, std::vector<uint8_t> & out) {
    out.resize(ggml_row_size(type, row) * size_t(n / row));
    quantize(type, src, out.data(), n / row, row);
}

RowDictionary::RowDictionary(const TensorSpec & t, ggml_type type, uint64_t seed, size_t n_rows, float scale) {
    const int64_t row = t.ne[0];
    row_bytes_        = ggml_row_size(type, row);
    n_rows_           = n_rows;
    // Rows drawn as fill_slice draws a 2-D tensor's rows past the first (the first of a plane is
    // the zero row where the tensor writes the residual stream).
    TensorSpec one      = t;
    one.ne              = {row, 2};
    one.writes_residual = false;
    Rng                rng{seed ^ fnv1a(t.name + "#rows")};
    std::vector<float> v(static_cast<size_t>(row) * n_rows), r(static_cast<size_t>(row));
    for (size_t i = 0; i < n_rows; i++) {
        fill_slice(one, rng, 1, r);
        for (size_t j = 0; j < r.size(); j++)
            v[i * size_t(row) + j] = scale * r[j];
    }
    encode(type, v.data(), int64_t(v.size()), row, rows_);
    const std::vector<float> zeros(size_t(row), 0.0f);
    encode(type, zeros.data(), row, row, zero_);
}

}  // namespace reap::synth
