#include "profile/device_norms.h"

#include "core/error.h"

#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

namespace reap {

NormsPlacement norms_placement_from_env() {
    const char * v = std::getenv("REAP_DEVICE_NORMS");
    if (v == nullptr || *v == '\0' || std::strcmp(v, "auto") == 0) return NormsPlacement::automatic;
    if (std::strcmp(v, "always") == 0) return NormsPlacement::always_device;
    if (std::strcmp(v, "off") == 0) return NormsPlacement::off;
    fail("REAP_DEVICE_NORMS=%s: expected auto, always or off", v);
}

DeviceNorms::~DeviceNorms() {
    for (auto & [dev, d] : devices_) {
        if (d.galloc != nullptr) ggml_gallocr_free(d.galloc);
        if (d.backend != nullptr) ggml_backend_free(d.backend);
    }
}

// The device of t's buffer. ggml's CPU buffer types name no device (ggml-cpu leaves it unset):
// memory the host can read is the CPU backend's.
ggml_backend_dev_t buffer_device(const ggml_tensor * t) {
    if (t->buffer == nullptr) return nullptr;
    ggml_backend_dev_t dev = ggml_backend_buft_get_device(ggml_backend_buffer_get_type(t->buffer));
    if (dev == nullptr && ggml_backend_buffer_is_host(t->buffer)) {
        dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    }
    return dev;
}

bool DeviceNorms::has_device(const ggml_tensor * t) { return buffer_device(t) != nullptr; }

DeviceNorms::Device & DeviceNorms::device_for(const ggml_tensor * t) {
    ggml_backend_dev_t dev = buffer_device(t);
    Device &           d   = devices_[dev];
    if (d.backend == nullptr) {
        d.backend = ggml_backend_dev_init(dev, nullptr);
        if (d.backend == nullptr) fail("%s: cannot start a backend on device %s", t->name, ggml_backend_dev_name(dev));
        d.galloc = ggml_gallocr_new(ggml_backend_get_default_buffer_type(d.backend));
    }
    return d;
}

// The graph, for f [E, U, T] (E = n_embd, U = n_used slots, T tokens), R = U * T rows:
//   norm^2      sum_rows(f^2)                                      [1, U, T]
//   peak_at     argmax(|f|) over each row                          [R] I32
//   peak        |f| at peak_at: get_rows over [1, E, R] by [1, R]  [1, 1, R]
// with gates g [1, U, T] and r [1, U, T] = 1 / sum_{m != k} g_m (0 when alone, renorm_rest):
//   W           sum_k g_k f_k, a sum over U: permute U first, sum_rows  -> [E, 1, T]
//   ybar_-k     (W - g_k f_k) * r_k
//   renorm^2    sum_rows((f_k - ybar_-k)^2)  = sum_rows((f + (g f - W) * r)^2)
// concatenated into one F32 vector so that one copy brings them back (plus peak_at's).
void DeviceNorms::compute(ggml_tensor * t, const float * gates, ExpertNorms & out) {
    const int64_t E = t->ne[0], U = t->ne[1], T = t->ne[2], R = U * T;
    Device &      d = device_for(t);

    graph_mem_.resize(ggml_tensor_overhead() * 48 + ggml_graph_overhead_custom(64, false));
    ggml_init_params params{graph_mem_.size(), graph_mem_.data(), true};
    ggml_context *   ctx = ggml_init(params);
    if (ctx == nullptr) fail("%s: cannot set up the norms graph", t->name);
    struct CtxGuard {
        ggml_context * c;
        ~CtxGuard() { ggml_free(c); }
    } guard{ctx};

    // A tensor of our own over t's bytes: a view of t itself would pull t's producers (the whole
    // model graph) into this graph.
    ggml_tensor * alias = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, int64_t(ggml_nbytes(t) / sizeof(float)));
    if (ggml_backend_tensor_alloc(t->buffer, alias, t->data) != GGML_STATUS_SUCCESS) {
        fail("%s: cannot address the expert output in its device buffer", t->name);
    }
    ggml_tensor * f = ggml_view_3d(ctx, alias, E, U, T, t->nb[1], t->nb[2], 0);
    if (!ggml_is_contiguous(f)) f = ggml_cont(ctx, f);

    ggml_tensor * a       = ggml_abs(ctx, f);
    ggml_tensor * peak_at = ggml_argmax(ctx, ggml_reshape_2d(ctx, a, E, R));
    ggml_tensor * peak    = ggml_get_rows(ctx, ggml_reshape_3d(ctx, a, 1, E, R), ggml_reshape_2d(ctx, peak_at, 1, R));
    ggml_tensor * norm_sq = ggml_sum_rows(ctx, ggml_sqr(ctx, f));
    ggml_tensor * values  = ggml_concat(ctx, ggml_reshape_1d(ctx, norm_sq, R), ggml_reshape_1d(ctx, peak, R), 0);
    ggml_tensor * g = nullptr, *r = nullptr;
    if (gates != nullptr) {
        g = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, 1, U, T);
        r = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, 1, U, T);
        ggml_set_input(g);
        ggml_set_input(r);
        ggml_tensor * gf   = ggml_mul(ctx, f, g);
        ggml_tensor * w    = ggml_sum_rows(ctx, ggml_cont(ctx, ggml_permute(ctx, gf, 1, 0, 2, 3)));
        ggml_tensor * diff = ggml_add(ctx, f, ggml_mul(ctx, ggml_sub(ctx, gf, ggml_reshape_3d(ctx, w, E, 1, T)), r));
        ggml_tensor * renorm_sq = ggml_sum_rows(ctx, ggml_sqr(ctx, diff));
        values                  = ggml_concat(ctx, values, ggml_reshape_1d(ctx, renorm_sq, R), 0);
    }
    ggml_set_output(values);
    ggml_set_output(peak_at);
    ggml_cgraph * gf = ggml_new_graph_custom(ctx, 64, false);
    ggml_build_forward_expand(gf, values);
    ggml_build_forward_expand(gf, peak_at);
    if (!ggml_gallocr_alloc_graph(d.galloc, gf)) fail("%s: cannot allocate the norms graph on its device", t->name);

    if (gates != nullptr) {
        upload_.resize(size_t(2 * R));
        float * gv = upload_.data();
        float * rv = upload_.data() + R;
        for (int64_t tok = 0; tok < T; tok++) {
            const float * gt    = gates + tok * U;
            double        g_all = 0.0;
            for (int64_t m = 0; m < U; m++)
                g_all += double(gt[m]);
            for (int64_t k = 0; k < U; k++) {
                const double rest = renorm_rest(g_all, double(gt[k]));
                gv[tok * U + k]   = gt[k];
                rv[tok * U + k]   = rest == 0.0 ? 0.0f : float(1.0 / rest);
            }
        }
        ggml_backend_tensor_set(g, gv, 0, size_t(R) * sizeof(float));
        ggml_backend_tensor_set(r, rv, 0, size_t(R) * sizeof(float));
    }
    if (ggml_backend_graph_compute(d.backend, gf) != GGML_STATUS_SUCCESS) {
        fail("%s: computing the expert output norms on device %s failed", t->name, ggml_backend_name(d.backend));
    }
    values_.resize(size_t(ggml_nelements(values)));
    argmax_.resize(size_t(R));
    ggml_backend_tensor_get(values, values_.data(), 0, ggml_nbytes(values));
    ggml_backend_tensor_get(peak_at, argmax_.data(), 0, ggml_nbytes(peak_at));
    bytes_read_ += ggml_nbytes(values) + ggml_nbytes(peak_at);

    out.resize(size_t(R), gates != nullptr);
    for (int64_t i = 0; i < R; i++) {
        out.norm[size_t(i)]    = std::sqrt(double(values_[size_t(i)]));
        out.peak[size_t(i)]    = double(values_[size_t(R + i)]);
        out.peak_at[size_t(i)] = argmax_[size_t(i)];
        if (gates != nullptr) {
            out.renorm[size_t(i)] = std::fabs(double(gates[i])) * std::sqrt(double(values_[size_t(2 * R + i)]));
        }
    }
}

}  // namespace reap
