#include "profile/merge_stats_collector.h"

#include "core/error.h"
#include "core/text.h"

#include "ggml-backend.h"

#include <cstring>

namespace reap {

uint32_t parse_merge_stats(const std::string & value) {
    uint64_t n = 0;
    if (!parse_canonical_uint(value, 1u << 20, n) || n == 0) {
        fail_usage("--merge-stats %s: expected the number of tokens sampled per micro-batch, from 1 to %u",
                   value.c_str(), 1u << 20);
    }
    return uint32_t(n);
}

MergeStatsCollector::MergeStatsCollector(uint32_t sample_per_batch, std::string arch)
    : sample_(sample_per_batch), arch_(std::move(arch)) {}

// The activations llama.cpp's build_moe_ffn names, other than plain SwiGLU ("ffn_moe_swiglu").
static bool is_other_activation(const std::string & base) {
    static const char * const names[] = {
        "ffn_moe_silu", "ffn_moe_swiglu_limited", "ffn_moe_up_clamped", "ffn_moe_situ",     "ffn_moe_geglu",
        "ffn_moe_gelu", "ffn_moe_reglu",          "ffn_moe_relu",       "ffn_moe_relu_sqr", "ffn_moe_swiglu_oai"};
    for (const char * n : names)
        if (base == n) return true;
    return false;
}

void MergeStatsCollector::discover(const ggml_tensor * t, int il, const std::string & base) {
    Layer &    L      = layers_[il];
    const bool mm_id  = t->op == GGML_OP_MUL_MAT_ID;
    const bool add_id = t->op == GGML_OP_ADD_ID;
    auto       refuse = [&](const std::string & why) {
        if (L.unsupported.empty()) L.unsupported = why;
    };
    if (base == "ffn_moe_logits") {
        L.logits = t->name;
    } else if (base == "ffn_moe_probs") {
        L.probs = t->name;
    } else if (base == "ffn_moe_weighted" && L.w.down == nullptr) {
        refuse("the router weights scale the experts' input (the gate before the expert)");
    } else if (base == "ffn_moe_up" && mm_id) {
        L.w.up  = t->src[0];
        L.input = t->name;
    } else if (base == "ffn_moe_gate" && mm_id) {
        L.w.gate = t->src[0];
    } else if (base == "ffn_moe_gate_up" && mm_id) {
        L.w.gate_up = t->src[0];
        L.input     = t->name;
    } else if (base == "ffn_moe_down" && mm_id) {
        L.w.down = t->src[0];
    } else if (add_id && base == "ffn_moe_up_biased") {
        L.w.up_b = t->src[1];
    } else if (add_id && base == "ffn_moe_gate_biased") {
        L.w.gate_b = t->src[1];
    } else if (add_id && base == "ffn_moe_gate_up_biased") {
        L.w.gate_up_b = t->src[1];
    } else if (add_id && base == "ffn_moe_down_biased") {
        L.w.down_b = t->src[1];
    } else if (base == "ffn_moe_swiglu") {
        L.swiglu = t->op == GGML_OP_GLU;
        if (!L.swiglu) refuse("its expert activation is not ggml's SwiGLU");
    } else if (is_other_activation(base)) {
        refuse("its expert activation is " + base.substr(std::strlen("ffn_moe_")) + ", not SwiGLU");
    } else if (base.rfind("ffn_moe_", 0) == 0 && ends_with(base, "_scaled") && base != "ffn_moe_weights_scaled") {
        refuse("its experts have per-expert scales (" + base + ")");
    }
}

std::vector<std::pair<std::string, int>> MergeStatsCollector::end_discovery(const std::vector<int> & layers) {
    std::vector<std::pair<std::string, int>> wanted;
    for (int il : layers) {
        Layer &      L       = layers_[il];
        const char * missing = L.logits.empty()      ? "ffn_moe_logits"
                               : L.probs.empty()     ? "ffn_moe_probs"
                               : L.input.empty()     ? "ffn_moe_up (a MUL_MAT_ID)"
                               : L.w.down == nullptr ? "ffn_moe_down (a MUL_MAT_ID)"
                               : L.w.gate_up == nullptr && (L.w.gate == nullptr || L.w.up == nullptr)
                                   ? "ffn_moe_gate (a MUL_MAT_ID)"
                               : !L.swiglu ? "ffn_moe_swiglu"
                                           : nullptr;
        if (L.unsupported.empty() && missing != nullptr) {
            L.unsupported = std::string("llama.cpp's graph has no ") + missing + " node";
        }
        if (!L.unsupported.empty()) {
            fail("--merge-stats does not support architecture %s: layer %d: %s", arch_.c_str(), il,
                 L.unsupported.c_str());
        }
        wanted.emplace_back(L.logits, il);
        wanted.emplace_back(L.probs, il);
        wanted.emplace_back(L.input, il);
    }
    return wanted;
}

void MergeStatsCollector::read_rows(const ggml_tensor * t, std::vector<float> & dst) {
    const int64_t E = t->ne[0], T = t->ne[1];
    if (t->type != GGML_TYPE_F32 || t->ne[2] != 1 || t->ne[3] != 1) {
        fail("%s: expected F32 router values [n_expert, n_tokens], got %s [%lld, %lld, %lld]", t->name,
             ggml_type_name(t->type), (long long) t->ne[0], (long long) t->ne[1], (long long) t->ne[2]);
    }
    const uint8_t * d = static_cast<const uint8_t *>(t->data);
    if (t->buffer != nullptr && !ggml_backend_buffer_is_host(t->buffer)) {
        host_.resize(ggml_nbytes(t));
        ggml_backend_tensor_get(t, host_.data(), 0, host_.size());
        host_bytes_read_ += host_.size();
        d = host_.data();
    }
    dst.resize(size_t(E * T));
    for (int64_t tok = 0; tok < T; tok++)
        for (int64_t e = 0; e < E; e++)
            dst[size_t(tok * E + e)] = *reinterpret_cast<const float *>(d + tok * t->nb[1] + e * t->nb[0]);
}

void MergeStatsCollector::collect(ggml_tensor * t, int il, LayerStats & S) {
    Layer &       L = layers_.at(il);
    const int64_t E = int64_t(S.n_expert());
    if (!S.has_merge_stats()) fail("layer %d: the statistics hold no merge Grams to add to", il);
    if (L.logits == t->name || L.probs == t->name) {
        if (t->ne[0] != E) {
            fail("%s: %lld router values per token, but the layer has %lld experts", t->name, (long long) t->ne[0],
                 (long long) E);
        }
        const int64_t T = t->ne[1];
        if (L.probs == t->name) {
            read_rows(t, L.probs_v);
            L.probs_tokens = T;
            return;
        }
        read_rows(t, rows_);
        // Σ_t l l^T in double, the upper triangle then mirrored (the Gram is symmetric).
        std::vector<double> & G = S.router_gram;
        for (int64_t tok = 0; tok < T; tok++) {
            const float * l = rows_.data() + tok * E;
            for (int64_t i = 0; i < E; i++) {
                const double li  = double(l[i]);
                double *     row = G.data() + i * E;
                for (int64_t j = i; j < E; j++)
                    row[j] += li * double(l[j]);
            }
        }
        for (int64_t i = 0; i < E; i++)
            for (int64_t j = 0; j < i; j++)
                G[size_t(i * E + j)] = G[size_t(j * E + i)];
        S.router_gram_tokens += uint64_t(T);
        return;
    }
    // The input node: x is its src[1], [n_embd, 1, T].
    ggml_tensor * x = t->src[1];
    const int64_t T = x->ne[2];
    if (L.probs_tokens != T) {
        fail("%s: %lld tokens, but the router probabilities of layer %d were %s", t->name, (long long) T, il,
             L.probs_tokens < 0 ? "not observed in this micro-batch" : "of another micro-batch");
    }
    L.probs_tokens = -1;
    if (T == 0) return;
    const std::vector<int32_t> tokens = merge_sample_tokens(T, sample_);
    gates_.resize(tokens.size() * size_t(E));
    for (size_t s = 0; s < tokens.size(); s++)
        for (int64_t e = 0; e < E; e++)
            gates_[s * size_t(E) + size_t(e)] = L.probs_v[size_t(tokens[s]) * size_t(E) + size_t(e)];
    gram_.accumulate(L.w, x, tokens, gates_, S.output_gram);
    S.output_gram_tokens += tokens.size();
}

}  // namespace reap
