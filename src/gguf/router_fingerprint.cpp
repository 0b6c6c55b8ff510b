#include "gguf/router_fingerprint.h"

#include "core/error.h"
#include "core/hash.h"
#include "core/tensor_codec.h"

#include "ggml.h"

#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace reap {

std::string router_fingerprint(const GgufFile & f, const MoeLayout & layout) {
    const MoeShape shape = layout.shape();
    if (shape.moe_layers.empty()) return "";
    const TensorInfo * t = f.find_tensor("blk." + std::to_string(shape.moe_layers.front()) + ".ffn_gate_inp.weight");
    if (t == nullptr || t->type != GGML_TYPE_F32) return "";
    Fnv1a                hash;
    std::vector<uint8_t> buf(1 << 20);
    for (uint64_t off = 0; off < t->nbytes; off += buf.size()) {
        const uint64_t n = std::min<uint64_t>(buf.size(), t->nbytes - off);
        f.read(*t, off, buf.data(), n);
        hash.bytes(buf.data(), size_t(n));
    }
    return strfmt("%016llx", (unsigned long long) hash.h);
}

RouterNorms router_row_norms(const GgufFile & f, const MoeLayout & layout) {
    RouterNorms norms;
    for (int il : layout.shape().moe_layers) {
        const TensorInfo * t = f.find_tensor("blk." + std::to_string(il) + ".ffn_gate_inp.weight");
        if (t == nullptr || t->n_dims != 2 || !can_dequantize(t->type)) continue;
        const size_t         row_bytes = ggml_row_size(t->type, t->ne[0]);
        std::vector<uint8_t> row(row_bytes);
        std::vector<float>   x(size_t(t->ne[0]));
        for (int64_t r = 0; r < t->ne[1]; r++) {
            f.read(*t, uint64_t(r) * row_bytes, row.data(), row_bytes);
            dequantize(t->type, row.data(), x.data(), t->ne[0]);
            double sum = 0;
            for (float v : x)
                sum += double(v) * double(v);
            // Six significant digits: far below the tolerance, and a short stats file.
            const double v = std::strtod(strfmt("%.6g", std::sqrt(sum)).c_str(), nullptr);
            norms[il].push_back(v > FLT_MAX ? INFINITY : float(v));
        }
    }
    return norms;
}

MoeShape model_shape(const GgufFile & f, const MoeLayout & layout) {
    MoeShape s           = layout.shape();
    s.router_fingerprint = router_fingerprint(f, layout);
    s.router_norms       = router_row_norms(f, layout);
    return s;
}

}  // namespace reap
