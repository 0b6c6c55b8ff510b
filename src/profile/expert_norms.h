// What the collector needs from one MoE layer's expert output f [n_embd, n_used, n_tokens] (the
// ffn_moe_down node) per (token, slot): ||f||, the reap-renorm delta (moe_collector.h) and the
// largest |f_i| with its channel. Computed where the tensor lives: from host memory here, or on
// its device with a small ggml graph (device_norms.h), so that only these values cross to the host.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace reap {

struct ExpertNorms {
    // [token * n_used + slot]
    std::vector<double>  norm;     // ||f||_2
    std::vector<double>  renorm;   // g_k * ||f_k - ybar_-k|| (empty without gates)
    std::vector<double>  peak;     // max_i |f_i|
    std::vector<int32_t> peak_at;  // its channel i (the first one on ties)
    void                 resize(size_t n, bool with_renorm);
};

// From host memory: `data` with byte strides nb1 (slot) and nb2 (token), rows of n_embd floats.
// `gates`: the applied gate weights [token * n_used + slot], or null when the gate scales the
// expert's input (llama4): then no renorm. On up to n_threads threads (the decode's: the eval
// callback runs while llama.cpp's own threads wait).
void expert_norms_host(const uint8_t * data, size_t nb1, size_t nb2, int64_t n_embd, int64_t n_used, int64_t n_tokens,
                       const float * gates, ExpertNorms & out, int n_threads = 1);

// sum_{m != k} g_m = g_all - g_k, or 0 when the others carry no weight (top-1, or their gates all
// 0): reap-renorm then falls back to REAP's g_k ||f_k||. One rule for the host and the device.
double renorm_rest(double g_all, double g_k);

}  // namespace reap
