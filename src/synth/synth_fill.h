// The values of a synthetic tensor: seeded draws slice by slice, their encoding in the weight
// type, and the row dictionary that lets a full-size model (Qwen3-30B-A3B: 29 billion expert
// weights) be written at disk speed instead of hours of Q4_K quantization.
#pragma once

#include "core/hash.h"
#include "synth/synth_arch.h"

#include "ggml.h"

#include <cmath>
#include <cstdint>
#include <vector>

namespace reap::synth {

// splitmix64: a small, portable generator, so the same seed gives the same file everywhere.
struct Rng : SplitMix64 {
    float normal() {  // Box-Muller
        const double u1 = 1.0 - uniform(), u2 = uniform();
        return float(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
    }
};

// Fills one outer-dimension slice (one expert, one row of a matrix, ...) of tensor `t`: its
// initialisation, the routing anchor in residual dimension 0 (+1 in embeddings, read only by
// routers, written by nothing).
void fill_slice(const TensorSpec & t, Rng & rng, int64_t outer, std::vector<float> & v);

// Converts `n` floats (whole rows of length `row`) to `type` into `out`, with ggml's own
// quantizer (ggml_quantize_chunk) for the quantized types.
void encode(ggml_type type, const float * src, int64_t n, int64_t row, std::vector<uint8_t> & out);

// Tensors of at least this many values take their rows from a RowDictionary: drawing and
// quantizing every value costs ~0.1 us (Q4_K), an hour per 30 billion.
constexpr int64_t k_dictionary_min_values = int64_t(1) << 26;
constexpr size_t  k_dictionary_rows       = 2048;

// A seeded dictionary of rows of a large matrix, each drawn as fill_slice draws that tensor's
// rows and encoded once; a slice is then assembled from rows picked by the tensor's generator.
// `scale` multiplies the drawn values (a planted expert's output scale). zero_row() is the
// encoded zero row: fill_slice zeroes the row that writes residual dimension 0.
class RowDictionary {
public:
    RowDictionary(const TensorSpec & t, ggml_type type, uint64_t seed, size_t n_rows, float scale);
    size_t          row_bytes() const { return row_bytes_; }
    size_t          size() const { return n_rows_; }
    const uint8_t * row(size_t i) const { return rows_.data() + i * row_bytes_; }
    const uint8_t * zero_row() const { return zero_.data(); }

private:
    size_t               row_bytes_ = 0, n_rows_ = 0;
    std::vector<uint8_t> rows_, zero_;
};

}  // namespace reap::synth
