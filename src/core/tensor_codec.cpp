#include "core/tensor_codec.h"

#include "core/error.h"

#include <cstring>

namespace reap {

bool can_dequantize(ggml_type type) {
    if (type < 0 || type >= GGML_TYPE_COUNT) return false;
    return type == GGML_TYPE_F32 || ggml_get_type_traits(type)->to_float != nullptr;
}

void dequantize(ggml_type type, const void * src, float * dst, int64_t n) {
    if (!can_dequantize(type)) {
        fail("cannot read %s values as floats", type >= 0 && type < GGML_TYPE_COUNT ? ggml_type_name(type) : "unknown");
    }
    if (n % ggml_blck_size(type) != 0) {
        fail("%lld values are not whole %s blocks of %lld", (long long) n, ggml_type_name(type),
             (long long) ggml_blck_size(type));
    }
    if (type == GGML_TYPE_F32) {
        std::memcpy(dst, src, size_t(n) * sizeof(float));
    } else {
        ggml_get_type_traits(type)->to_float(src, dst, n);
    }
}

bool can_quantize(ggml_type type, int64_t n_per_row, bool with_imatrix) {
    switch (type) {
        // the types ggml_quantize_chunk encodes (any other aborts inside ggml)
        case GGML_TYPE_F32:
        case GGML_TYPE_F16:
        case GGML_TYPE_BF16:
        case GGML_TYPE_Q4_0:
        case GGML_TYPE_Q4_1:
        case GGML_TYPE_Q5_0:
        case GGML_TYPE_Q5_1:
        case GGML_TYPE_Q8_0:
        case GGML_TYPE_MXFP4:
        case GGML_TYPE_Q2_K:
        case GGML_TYPE_Q3_K:
        case GGML_TYPE_Q4_K:
        case GGML_TYPE_Q5_K:
        case GGML_TYPE_Q6_K:
        case GGML_TYPE_TQ1_0:
        case GGML_TYPE_TQ2_0:
        case GGML_TYPE_IQ2_XXS:
        case GGML_TYPE_IQ2_XS:
        case GGML_TYPE_IQ3_XXS:
        case GGML_TYPE_IQ3_S:
        case GGML_TYPE_IQ2_S:
        case GGML_TYPE_IQ1_S:
        case GGML_TYPE_IQ1_M:
        case GGML_TYPE_IQ4_NL:
        case GGML_TYPE_IQ4_XS: break;
        default: return false;
    }
    if (ggml_quantize_requires_imatrix(type) && !with_imatrix) return false;
    return n_per_row > 0 && n_per_row % ggml_blck_size(type) == 0;
}

size_t quantize(ggml_type type, const float * src, void * dst, int64_t n_rows, int64_t n_per_row,
                const float * imatrix) {
    if (!can_quantize(type, n_per_row, imatrix != nullptr)) {
        fail("cannot write rows of %lld values as %s", (long long) n_per_row,
             type >= 0 && type < GGML_TYPE_COUNT ? ggml_type_name(type) : "an unknown type");
    }
    return ggml_quantize_chunk(type, src, dst, 0, n_rows, n_per_row, imatrix);
}

ggml_type ggml_type_of_dtype(const std::string & dtype) {
    if (dtype == "F32") return GGML_TYPE_F32;
    if (dtype == "F16") return GGML_TYPE_F16;
    if (dtype == "BF16") return GGML_TYPE_BF16;
    return GGML_TYPE_COUNT;
}

}  // namespace reap
