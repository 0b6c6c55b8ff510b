#include "profile/imatrix_collector.h"

#include "core/error.h"

#include "ggml-backend.h"

#include <cmath>
#include <cstring>

namespace reap {

namespace {

// A tensor's bytes on the host: its own when it is in host memory, else a copy into `buf`.
const uint8_t * host_bytes(const ggml_tensor * t, std::vector<uint8_t> & buf) {
    if (t->buffer == nullptr || ggml_backend_buffer_is_host(t->buffer)) {
        return static_cast<const uint8_t *>(t->data);
    }
    buf.resize(ggml_nbytes(t));
    ggml_backend_tensor_get(t, buf.data(), 0, buf.size());
    return buf.data();
}

void add_squares(double * acc, const float * x, int64_t n) {
    for (int64_t j = 0; j < n; j++)
        acc[j] += double(x[j]) * double(x[j]);
}

ImatrixEntry & entry_for(Imatrix & m, const std::string & name, int64_t n_cols, size_t n_mat) {
    ImatrixEntry & e = m.entries[name];
    if (e.counts.empty()) {
        e.n_cols = n_cols;
        e.in_sum2.assign(size_t(n_cols) * n_mat, 0.0);
        e.counts.assign(n_mat, 0.0);
    } else if (e.n_cols != n_cols || e.n_mat() != n_mat) {
        fail("imatrix: %s multiplies %lld columns x %zu matrices here, %lld x %zu before", name.c_str(),
             (long long) n_cols, n_mat, (long long) e.n_cols, e.n_mat());
    }
    return e;
}

}  // namespace

std::string ImatrixCollector::weight_name(const ggml_tensor * t) {
    const char * name = t->src[0]->name;
    const char * p    = std::strchr(name, '#');
    if (p == nullptr) return name;
    const char * q = std::strchr(p + 1, '#');
    return q == nullptr ? std::string(p + 1) : std::string(p + 1, size_t(q - p - 1));
}

bool ImatrixCollector::collects_kind(const ggml_tensor * t) {
    if (t->op == GGML_OP_MUL_MAT_ID) return true;
    return t->op == GGML_OP_MUL_MAT && weight_name(t).compare(0, 4, "blk.") == 0;
}

bool ImatrixCollector::wants(const ggml_tensor * t) {
    if (t->op == GGML_OP_MUL_MAT_ID) return true;
    return collects_kind(t) && t->src[1]->ne[1] >= 16 && t->src[1]->type == GGML_TYPE_F32;
}

void ImatrixCollector::collect(const ggml_tensor * t) {
    const ggml_tensor * src0 = t->src[0];
    const ggml_tensor * src1 = t->src[1];
    const std::string   name = weight_name(t);
    if (src1->type != GGML_TYPE_F32 || src1->nb[0] != sizeof(float)) {
        fail("imatrix: the input of %s is %s, not row-contiguous F32", name.c_str(), ggml_type_name(src1->type));
    }
    const uint8_t * data = host_bytes(src1, src1_);
    const int64_t   ne0  = src1->ne[0];
    if (t->op == GGML_OP_MUL_MAT_ID) {
        // ids [n_used, n_tokens] (not contiguous); src1 [cols, n_used or 1 (broadcast), n_tokens].
        const ggml_tensor * ids      = t->src[2];
        const int64_t       n_as     = src0->ne[2];
        const int64_t       n_ids    = ids->ne[0];
        const int64_t       n_tokens = src1->ne[2];
        if (ids->ne[1] != n_tokens || ggml_nrows(src1) != src1->ne[1] * src1->ne[2]) {
            fail("imatrix: %s: expert ids [%lld, %lld] for an input [%lld, %lld, %lld, %lld]", name.c_str(),
                 (long long) ids->ne[0], (long long) ids->ne[1], (long long) src1->ne[0], (long long) src1->ne[1],
                 (long long) src1->ne[2], (long long) src1->ne[3]);
        }
        const uint8_t * idd = host_bytes(ids, ids_);
        ImatrixEntry &  e   = entry_for(m_, name, ne0, size_t(n_as));
        for (int64_t idx = 0; idx < n_ids; idx++) {
            for (int64_t row = 0; row < n_tokens; row++) {
                const int32_t ex = *reinterpret_cast<const int32_t *>(idd + row * ids->nb[1] + idx * ids->nb[0]);
                if (ex < 0 || ex >= n_as) fail("imatrix: %s: expert id %d of %lld", name.c_str(), ex, (long long) n_as);
                const int64_t i11 = idx % src1->ne[1];
                add_squares(e.in_sum2.data() + size_t(ex) * size_t(ne0),
                            reinterpret_cast<const float *>(data + i11 * src1->nb[1] + row * src1->nb[2]), ne0);
                e.counts[size_t(ex)] += 1;
            }
        }
        return;
    }
    // One count per dense weight: a 3-D one (MLA's attn_k_b) keeps its matrices side by side in
    // one row of n_mat x ne0 values, as llama-imatrix files it.
    const int64_t  n_mat = src0->ne[2] * src0->ne[3];
    ImatrixEntry & e     = entry_for(m_, name, ne0 * n_mat, 1);
    for (int64_t i3 = 0; i3 < src1->ne[3]; i3++) {
        for (int64_t i2 = 0; i2 < src1->ne[2]; i2++) {
            // a 3-D+ input over a 2-D weight is flattened onto its one matrix
            const int64_t mat = (i3 % src0->ne[3]) * src0->ne[2] + (i2 % src0->ne[2]);
            for (int64_t row = 0; row < src1->ne[1]; row++) {
                add_squares(
                    e.in_sum2.data() + size_t(mat) * size_t(ne0),
                    reinterpret_cast<const float *>(data + row * src1->nb[1] + i2 * src1->nb[2] + i3 * src1->nb[3]),
                    ne0);
            }
        }
    }
    for (double & c : e.counts)
        c += double(ggml_nrows(src1) / n_mat);
}

Imatrix ImatrixCollector::imatrix(const std::vector<std::string> & datasets, uint32_t chunk_size,
                                  uint64_t tokens) const {
    Imatrix m     = m_;
    m.datasets    = datasets;
    m.chunk_size  = chunk_size;
    m.chunk_count = chunk_size > 0 ? uint32_t(tokens / chunk_size) : 0;
    for (const auto & [name, e] : m.entries) {
        for (double v : e.in_sum2) {
            if (!std::isfinite(v)) fail("imatrix: non-finite sums in %s", name.c_str());
        }
    }
    return m;
}

void ImatrixCollector::resume_from(const Imatrix & from) { m_ = from; }

}  // namespace reap
