// Tensor values as floats and back: the one place reap dequantizes and quantizes, through ggml's
// type traits (`to_float`) and `ggml_quantize_chunk`, so every caller (router norms, HF row norms,
// synth's weights, the importance-matrix criteria, a merged expert) agrees on the arithmetic and
// no caller reaches ggml's abort on a type it cannot convert.
#pragma once

#include "ggml.h"

#include <cstddef>
#include <cstdint>
#include <string>

namespace reap {

// Whether values of `type` can be read as floats (F32, F16, BF16 and every quantized type with a
// dequantizer).
bool can_dequantize(ggml_type type);

// `n` values of `type` at `src` (a whole number of blocks) into `dst`; throws naming the type when
// it cannot be read.
void dequantize(ggml_type type, const void * src, float * dst, int64_t n);

// Whether rows of `n_per_row` floats can be written as `type` (ggml_quantize_chunk knows it, the
// row is a whole number of its blocks, and an importance matrix is given where the type needs one).
bool can_quantize(ggml_type type, int64_t n_per_row, bool with_imatrix = false);

// `n_rows` rows of `n_per_row` floats as `type` into `dst` (ggml_row_size(type, n_per_row) bytes a
// row); `imatrix`: n_per_row importance weights, or null. Returns the bytes written; throws naming
// the type when can_quantize says no.
size_t quantize(ggml_type type, const float * src, void * dst, int64_t n_rows, int64_t n_per_row,
                const float * imatrix = nullptr);

// The ggml type of a safetensors dtype reap converts ("F32", "F16", "BF16"); GGML_TYPE_COUNT for others.
ggml_type ggml_type_of_dtype(const std::string & dtype);

}  // namespace reap
