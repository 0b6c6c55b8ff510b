#include "gguf/content_id.h"

#include "core/error.h"

#include "core/hash.h"
#include "core/text.h"

#include <algorithm>
#include <vector>

namespace reap {

namespace {

size_t scalar_size(gguf_type t) {
    switch (t) {
        case GGUF_TYPE_UINT8:
        case GGUF_TYPE_INT8:
        case GGUF_TYPE_BOOL: return 1;
        case GGUF_TYPE_UINT16:
        case GGUF_TYPE_INT16: return 2;
        case GGUF_TYPE_UINT32:
        case GGUF_TYPE_INT32:
        case GGUF_TYPE_FLOAT32: return 4;
        case GGUF_TYPE_UINT64:
        case GGUF_TYPE_INT64:
        case GGUF_TYPE_FLOAT64: return 8;
        default: return 0;
    }
}

void hash_u64(Fnv1a & h, uint64_t v) { h.bytes(&v, sizeof(v)); }

void hash_string(Fnv1a & h, const char * s) {
    const std::string v = s ? s : "";
    hash_u64(h, v.size());  // lengths first: "ab"+"c" and "a"+"bc" differ
    h.str(v);
}

void hash_key_value(Fnv1a & h, const gguf_context * c, int64_t k) {
    const gguf_type t = gguf_get_kv_type(c, k);
    hash_string(h, gguf_get_key(c, k));
    hash_u64(h, uint64_t(t));
    if (t == GGUF_TYPE_STRING) {
        hash_string(h, gguf_get_val_str(c, k));
    } else if (t == GGUF_TYPE_ARRAY) {
        const gguf_type at = gguf_get_arr_type(c, k);
        const size_t    n  = gguf_get_arr_n(c, k);
        hash_u64(h, uint64_t(at));
        hash_u64(h, n);
        if (at == GGUF_TYPE_STRING) {
            for (size_t i = 0; i < n; i++)
                hash_string(h, gguf_get_arr_str(c, k, i));
        } else {
            h.bytes(gguf_get_arr_data(c, k), n * scalar_size(at));
        }
    } else {
        h.bytes(gguf_get_val_data(c, k), scalar_size(t));
    }
}

}  // namespace

uint64_t model_content_id(const GgufFile & f) {
    constexpr uint64_t   k_sample = 4096;
    Fnv1a                h;
    const gguf_context * meta = f.meta();
    for (int64_t k = 0; k < gguf_get_n_kv(meta); k++) {
        if (!starts_with(gguf_get_key(meta, k), "split.")) hash_key_value(h, meta, k);
    }
    std::vector<uint8_t> buf(k_sample);
    for (const TensorInfo & t : f.tensors()) {
        hash_string(h, t.name.c_str());
        hash_u64(h, uint64_t(t.type));
        for (int64_t n : t.ne)
            hash_u64(h, uint64_t(n));
        const uint64_t mid     = t.nbytes / 2 > k_sample / 2 ? t.nbytes / 2 - k_sample / 2 : 0;
        const uint64_t last    = t.nbytes > k_sample ? t.nbytes - k_sample : 0;
        uint64_t       covered = 0;  // samples that overlap (a small tensor) are read once
        for (uint64_t at : {uint64_t(0), mid, last}) {
            const uint64_t from = std::max(at, covered), to = std::min(t.nbytes, at + k_sample);
            if (from >= to) continue;
            f.read(t, from, buf.data(), to - from);
            h.bytes(buf.data(), to - from);
            covered = to;
        }
    }
    return h.h;
}

std::string model_content_id_text(const GgufFile & f) {
    return strfmt("%016llx", (unsigned long long) model_content_id(f));
}

}  // namespace reap
