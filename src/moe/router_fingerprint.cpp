#include "moe/router_fingerprint.h"

#include "core/error.h"
#include "core/hash.h"

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

MoeShape model_shape(const GgufFile & f, const MoeLayout & layout) {
    MoeShape s           = layout.shape();
    s.router_fingerprint = router_fingerprint(f, layout);
    return s;
}

}  // namespace reap
