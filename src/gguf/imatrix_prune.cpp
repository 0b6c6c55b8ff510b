#include "gguf/imatrix_prune.h"

#include "core/error.h"
#include "core/tensor_codec.h"
#include "gguf/gguf_pruner.h"

#include "ggml.h"

#include <algorithm>
#include <cmath>
#include <map>

namespace reap {

namespace {

// The expert tensors whose outer axis is the matrix axis of llama.cpp's MUL_MAT_ID (an entry of
// one matrix per expert or adjugate expert), by name.
std::map<std::string, const ExpertTensor *> sliced_tensors(const MoeLayout & layout) {
    std::map<std::string, const ExpertTensor *> out;
    for (const ExpertTensor & e : layout.expert_tensors) {
        if ((e.role == ExpertRole::expert_weights || e.role == ExpertRole::chunk_weights) && e.info->n_dims == 3) {
            out.emplace(e.info->name, &e);
        }
    }
    return out;
}

// ‖column j‖² of each expert's matrix of `t` ([ne0 columns, ne1 rows, ne2 experts]): ne2 rows of
// ne0, the values dequantized by core/tensor_codec.
std::vector<double> column_norms_sq(const GgufFile & f, const TensorInfo & t) {
    const int64_t ne0 = t.ne[0], ne1 = t.ne[1], ne2 = t.ne[2];
    if (!can_dequantize(t.type)) {
        fail("%s: tensor %s is %s, which cannot be read as floats", f.path().c_str(), t.name.c_str(),
             ggml_type_name(t.type));
    }
    std::vector<double>  out(size_t(ne0 * ne2), 0.0);
    std::vector<uint8_t> bytes(ggml_row_size(t.type, ne0) * size_t(ne1));
    std::vector<float>   v(size_t(ne0 * ne1));
    for (int64_t e = 0; e < ne2; e++) {
        f.read(t, uint64_t(e) * bytes.size(), bytes.data(), bytes.size());
        dequantize(t.type, bytes.data(), v.data(), ne0 * ne1);
        double * col = &out[size_t(e * ne0)];
        for (int64_t r = 0; r < ne1; r++) {
            const float * row = &v[size_t(r * ne0)];
            for (int64_t j = 0; j < ne0; j++)
                col[j] += double(row[j]) * double(row[j]);
        }
    }
    return out;
}

}  // namespace

void check_imatrix_for_model(const Imatrix & m, const std::string & path, const GgufFile & f,
                             const MoeLayout & layout) {
    const auto sliced = sliced_tensors(layout);
    for (const auto & [name, e] : m.entries) {
        const TensorInfo * t = f.find_tensor(name);
        if (t == nullptr) {
            fail("%s: entry %s names no tensor of %s: an importance matrix of another model", path.c_str(),
                 name.c_str(), f.path().c_str());
        }
        if (sliced.count(name) == 0) {
            // A dense weight: llama-quantize takes n_cols x n_mat values for ne[0] x ne[2]; a 3-D one
            // (MLA's attn_k_b) is one matrix of its matrices' columns side by side, as llama-imatrix
            // files it.
            if (e.n_cols * int64_t(e.n_mat()) != t->ne[0] * t->ne[2] || e.n_cols % t->ne[0] != 0) {
                fail(
                    "%s: entry %s has %lld columns x %zu matrices, the tensor's input is %lld wide x %lld: an "
                    "importance matrix of another model",
                    path.c_str(), name.c_str(), (long long) e.n_cols, e.n_mat(), (long long) t->ne[0],
                    (long long) t->ne[2]);
            }
            continue;
        }
        if (e.n_cols != t->ne[0]) {
            fail(
                "%s: entry %s has %lld columns, the tensor's input width is %lld: an importance matrix of another "
                "model",
                path.c_str(), name.c_str(), (long long) e.n_cols, (long long) t->ne[0]);
        }
        if (int64_t(e.n_mat()) != t->ne[2]) {
            fail(
                "%s: entry %s has %zu matrices, the tensor %lld experts: an importance matrix of another model (or "
                "of the model before pruning)",
                path.c_str(), name.c_str(), e.n_mat(), (long long) t->ne[2]);
        }
    }
}

Imatrix prune_imatrix(const Imatrix & m, const MoeLayout & layout, const Plan & plan) {
    const auto sliced = sliced_tensors(layout);
    Imatrix    out    = m;
    for (auto & [name, e] : out.entries) {
        const auto it = sliced.find(name);
        if (it != sliced.end()) e = select_matrices(e, kept_slices(layout, *it->second, plan));
    }
    return out;
}

ExpertStats imatrix_expert_stats(const Imatrix & m, const std::string & path, const GgufFile & f,
                                 const MoeLayout & layout) {
    ExpertStats stats;
    for (const LayerInfo & L : layout.layers) {
        if (L.kind != LayerKind::moe || L.is_nextn) continue;
        const std::string  name = "blk." + std::to_string(L.index) + ".ffn_down_exps.weight";
        const auto         it   = m.entries.find(name);
        const TensorInfo * t    = f.find_tensor(name);
        if (t == nullptr) {
            fail("%s: layer %d has no %s; the imatrix criteria read the experts' down projections", f.path().c_str(),
                 L.index, name.c_str());
        }
        if (it == m.entries.end()) {
            fail("%s: no entry for %s; the imatrix criteria need every MoE layer's down projections", path.c_str(),
                 name.c_str());
        }
        const ImatrixEntry &      e    = it->second;  // checked against t by check_imatrix_for_model
        const std::vector<double> norm = column_norms_sq(f, *t);
        LayerStats                ls(e.n_mat());
        ls.imatrix_sum.assign(e.n_mat(), 0.0);
        double all = 0;
        for (size_t x = 0; x < e.n_mat(); x++) {
            double s = 0;
            for (int64_t j = 0; j < e.n_cols; j++) {
                const size_t at = x * size_t(e.n_cols) + size_t(j);
                s += norm[at] * e.in_sum2[at];
            }
            ls.imatrix_sum[x] = s;
            ls.count[x]       = uint64_t(std::llround(e.counts[x]));
            all += e.counts[x];
        }
        const uint64_t max_count = *std::max_element(ls.count.begin(), ls.count.end());
        ls.total_tokens = std::max(max_count, uint64_t(std::llround(all / double(std::max(1u, L.n_expert_used)))));
        stats.layers.emplace(L.index, std::move(ls));
    }
    if (stats.layers.empty()) fail("%s: no MoE layer to score", f.path().c_str());
    return stats;
}

}  // namespace reap
