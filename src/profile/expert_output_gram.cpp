#include "profile/expert_output_gram.h"

#include "core/error.h"
#include "profile/device_norms.h"

#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml.h"

#include <string>

namespace reap {

std::vector<int32_t> merge_sample_tokens(int64_t n_tokens, uint32_t n) {
    std::vector<int32_t> out;
    if (n_tokens <= 0 || n == 0) return out;
    if (n_tokens <= int64_t(n)) {
        for (int64_t t = 0; t < n_tokens; t++)
            out.push_back(int32_t(t));
        return out;
    }
    for (int64_t k = 0; k < int64_t(n); k++)
        out.push_back(int32_t((2 * k + 1) * n_tokens / (2 * int64_t(n))));
    return out;
}

ExpertOutputGram::~ExpertOutputGram() {
    for (auto & [dev, d] : devices_) {
        if (d.galloc != nullptr) ggml_gallocr_free(d.galloc);
        if (d.backend != nullptr) ggml_backend_free(d.backend);
    }
}

ExpertOutputGram::Device & ExpertOutputGram::device_for(ggml_backend_dev_t dev, const ggml_tensor * t) {
    Device & d = devices_[dev];
    if (d.backend == nullptr) {
        d.backend = ggml_backend_dev_init(dev, nullptr);
        if (d.backend == nullptr) fail("%s: cannot start a backend on device %s", t->name, ggml_backend_dev_name(dev));
        d.galloc = ggml_gallocr_new(ggml_backend_get_default_buffer_type(d.backend));
    }
    // The CPU backend computes with its own thread count: the decode's, not ggml's default.
    ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(dev);
    if (reg != nullptr) {
        auto set_threads =
            (ggml_backend_set_n_threads_t) ggml_backend_reg_get_proc_address(reg, "ggml_backend_set_n_threads");
        if (set_threads != nullptr) set_threads(d.backend, n_threads_);
    }
    return d;
}

// Checks that `w` is an expert tensor of `rows` x `cols` x E (cols 0: any), on `dev`.
static void check_weight(const ggml_tensor * w, int64_t rows, int64_t cols, int64_t E, ggml_backend_dev_t dev) {
    if (w->ne[0] != rows || (cols != 0 && w->ne[1] != cols) || w->ne[2] != E || w->ne[3] != 1) {
        fail("%s: shape [%lld, %lld, %lld] is not that of an expert tensor of this layer", w->name,
             (long long) w->ne[0], (long long) w->ne[1], (long long) w->ne[2]);
    }
    if (buffer_device(w) != dev) {
        fail(
            "%s: the expert tensors and the MoE input are on different devices; --merge-stats runs the experts on "
            "their own device",
            w->name);
    }
}

static void check_bias(const ggml_tensor * b, int64_t rows, int64_t E) {
    if (b != nullptr && (b->ne[0] != rows || b->ne[1] != E || b->ne[2] != 1 || b->type != GGML_TYPE_F32)) {
        fail("%s: expected an F32 expert bias of [%lld, %lld]", b->name, (long long) rows, (long long) E);
    }
}

void ExpertOutputGram::accumulate(const ExpertFfnTensors & w, ggml_tensor * x, const std::vector<int32_t> & tokens,
                                  const std::vector<float> & gates, std::vector<double> & gram) {
    const bool fused = w.gate_up != nullptr;
    if (w.down == nullptr || (!fused && (w.gate == nullptr || w.up == nullptr))) {
        fail("%s: the expert tensors of this layer were not found", x->name);
    }
    const int64_t n_embd = x->ne[0], T = x->ne[2], S = int64_t(tokens.size());
    const int64_t E    = w.down->ne[2];
    const int64_t n_ff = w.down->ne[0];
    if (x->type != GGML_TYPE_F32 || x->nb[0] != sizeof(float) || x->ne[1] != 1 || x->ne[3] != 1) {
        fail("%s: expected the MoE input as F32 [n_embd, 1, n_tokens] with contiguous rows", x->name);
    }
    if (gates.size() != size_t(S * E) || gram.size() != size_t(E * E)) {
        fail("%s: %zu gate values and a Gram of %zu for %lld tokens x %lld experts", x->name, gates.size(), gram.size(),
             (long long) S, (long long) E);
    }
    if (S == 0) return;
    for (int32_t t : tokens) {
        if (t < 0 || t >= T) fail("%s: sampled token %d out of [0, %lld)", x->name, t, (long long) T);
    }
    ggml_backend_dev_t dev = buffer_device(x);
    if (dev == nullptr) fail("%s: the MoE input is in no device's buffer", x->name);
    check_weight(w.down, n_ff, n_embd, E, dev);
    if (fused) {
        check_weight(w.gate_up, n_embd, 2 * n_ff, E, dev);
    } else {
        check_weight(w.gate, n_embd, n_ff, E, dev);
        check_weight(w.up, n_embd, n_ff, E, dev);
    }
    check_bias(w.gate_b, n_ff, E);
    check_bias(w.up_b, n_ff, E);
    check_bias(w.gate_up_b, 2 * n_ff, E);
    check_bias(w.down_b, n_embd, E);
    Device & d = device_for(dev, x);

    graph_mem_.resize(ggml_tensor_overhead() * 48 + ggml_graph_overhead_custom(64, false));
    ggml_init_params params{graph_mem_.size(), graph_mem_.data(), true};
    ggml_context *   ctx = ggml_init(params);
    if (ctx == nullptr) fail("%s: cannot set up the merge-statistics graph", x->name);
    struct CtxGuard {
        ggml_context * c;
        ~CtxGuard() { ggml_free(c); }
    } guard{ctx};

    // A tensor of our own over x's bytes: x itself would pull its producers (the model graph) in.
    // The weights are leaves with data: the graph reads them where they are.
    ggml_tensor * alias = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, int64_t(ggml_nbytes(x) / sizeof(float)));
    if (ggml_backend_tensor_alloc(x->buffer, alias, x->data) != GGML_STATUS_SUCCESS) {
        fail("%s: cannot address the MoE input in its device buffer", x->name);
    }
    ggml_tensor * xv  = ggml_view_2d(ctx, alias, n_embd, T, x->nb[2], 0);
    ggml_tensor * idx = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, S);
    ggml_tensor * ids = ggml_new_tensor_2d(ctx, GGML_TYPE_I32, E, S);
    ggml_tensor * g   = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, 1, E, S);
    ggml_set_input(idx);
    ggml_set_input(ids);
    ggml_set_input(g);
    ggml_tensor * xs = ggml_reshape_3d(ctx, ggml_get_rows(ctx, xv, idx), n_embd, 1, S);

    ggml_tensor *gate = nullptr, *up = nullptr;
    if (fused) {
        ggml_tensor * gu = ggml_mul_mat_id(ctx, w.gate_up, xs, ids);  // [2 n_ff, E, S]
        if (w.gate_up_b != nullptr) gu = ggml_add_id(ctx, gu, w.gate_up_b, ids);
        gate = ggml_view_3d(ctx, gu, n_ff, E, S, gu->nb[1], gu->nb[2], 0);
        up   = ggml_view_3d(ctx, gu, n_ff, E, S, gu->nb[1], gu->nb[2], size_t(n_ff) * gu->nb[0]);
    } else {
        gate = ggml_mul_mat_id(ctx, w.gate, xs, ids);
        up   = ggml_mul_mat_id(ctx, w.up, xs, ids);
        if (w.gate_b != nullptr) gate = ggml_add_id(ctx, gate, w.gate_b, ids);
        if (w.up_b != nullptr) up = ggml_add_id(ctx, up, w.up_b, ids);
    }
    ggml_tensor * f = ggml_mul_mat_id(ctx, w.down, ggml_swiglu_split(ctx, gate, up), ids);  // [n_embd, E, S]
    if (w.down_b != nullptr) f = ggml_add_id(ctx, f, w.down_b, ids);
    ggml_tensor * fg = ggml_mul(ctx, f, g);
    ggml_tensor * a  = ggml_reshape_2d(ctx, ggml_cont(ctx, ggml_permute(ctx, fg, 0, 2, 1, 3)), n_embd * S, E);
    ggml_tensor * G  = ggml_mul_mat(ctx, a, a);  // [E, E]
    ggml_set_output(G);
    ggml_cgraph * gf = ggml_new_graph_custom(ctx, 64, false);
    ggml_build_forward_expand(gf, G);
    if (!ggml_gallocr_alloc_graph(d.galloc, gf)) {
        fail("%s: cannot allocate the merge-statistics graph on its device", x->name);
    }

    ids_.resize(size_t(E * S));
    for (int64_t t = 0; t < S; t++)
        for (int64_t e = 0; e < E; e++)
            ids_[size_t(t * E + e)] = int32_t(e);
    ggml_backend_tensor_set(ids, ids_.data(), 0, ggml_nbytes(ids));
    ggml_backend_tensor_set(idx, tokens.data(), 0, ggml_nbytes(idx));
    ggml_backend_tensor_set(g, gates.data(), 0, ggml_nbytes(g));
    if (ggml_backend_graph_compute(d.backend, gf) != GGML_STATUS_SUCCESS) {
        fail("%s: computing the expert-output Gram on device %s failed", x->name, ggml_backend_name(d.backend));
    }
    result_.resize(size_t(E * E));
    ggml_backend_tensor_get(G, result_.data(), 0, ggml_nbytes(G));
    bytes_read_ += ggml_nbytes(G);
    for (size_t i = 0; i < result_.size(); i++)
        gram[i] += double(result_[i]);
}

}  // namespace reap
