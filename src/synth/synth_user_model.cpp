#include "synth/synth_user_model.h"

#include "core/error.h"
#include "core/text.h"
#include "gguf/gguf_file.h"

#include "llama.h"

#include <cmath>
#include <cstring>
#include <set>

namespace reap::synth {

namespace {

bool contains(const std::string & s, const char * part) { return s.find(part) != std::string::npos; }

// llama-quantize's rule (llama-quant.cpp tensor_allows_quantization): 2-D and 3-D weights
// except norms, routers, convolutions and the recurrent-mixing parameters that ggml reads as F32.
bool quantizable(const std::string & name, size_t n_dims) {
    if (n_dims < 2 || !ends_with(name, "weight")) return false;
    for (const char * keep_f32 :
         {"_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid", "altup", "laurel", "per_layer_model_proj",
          "position_embd", "token_types", "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight",
          "indexer.q_proj.weight", "time_mix_", "attn_rel_b.weight"}) {
        if (contains(name, keep_f32)) return false;
    }
    return true;
}

struct Discovery {
    std::vector<std::pair<std::string, std::vector<int64_t>>> tensors;
    std::set<std::string>                                     seen;
};

void record_tensor(ggml_tensor * t, void * user) {
    auto & d = *static_cast<Discovery *>(user);
    if (!d.seen.insert(t->name).second) {
        return;  // a tensor llama.cpp uses twice (tied embeddings) is stored once
    }
    std::vector<int64_t> ne(size_t(ggml_n_dims(t)));
    for (size_t i = 0; i < ne.size(); i++) {
        ne[i] = t->ne[i];
    }
    d.tensors.emplace_back(t->name, std::move(ne));
}

bool quiet_progress(float, void *) { return true; }

}  // namespace

TensorSpec spec_for_tensor(const std::string & name, const std::vector<int64_t> & ne, int64_t n_embd, int n_layer) {
    TensorSpec t;
    t.name            = name;
    t.ne              = ne;
    const size_t nd   = ne.size();
    const bool   bias = ends_with(name, ".bias");
    if (name == "token_embd.weight") {
        t.init = Init::embedding, t.scale = 0.1f, t.matrix = true;
    } else if (ends_with(name, ".ffn_gate_inp.weight")) {
        t.init = Init::normal, t.scale = 0.3f;  // the router: F32, one row per expert
    } else if (ends_with(name, ".exp_probs_b.bias") || ends_with(name, ".exp_probs_b")) {
        t.init = Init::normal, t.scale = 0.01f;
    } else if (contains(name, "norm") || ends_with(name, ".scale") || ends_with(name, ".input_scale") ||
               starts_with(name, "rope_freqs") || starts_with(name, "rope_factors")) {
        // Norms, the per-tensor scales of FP8/FP4 checkpoints and RoPE frequency factors:
        // one is the identity (llama.cpp multiplies by them wherever they exist).
        t.init = Init::ones;
    } else if (ends_with(name, ".ssm_a") || contains(name, "ssm_a.")) {
        t.init = Init::ssm_a;
    } else if (contains(name, "ssm_dt")) {
        t.init = Init::ssm_dt_bias;
    } else if (ends_with(name, ".ssm_d") || contains(name, "ssm_d.")) {
        t.init = Init::ones;
    } else if (contains(name, "attn_sinks") || (contains(name, "conv") && bias)) {
        t.init = Init::zeros;
    } else if (contains(name, "conv")) {
        t.init = Init::normal, t.scale = 0.5f;
    } else if (quantizable(name, nd)) {
        // A matmul weight {n_in, n_out[, n_expert]}: N(0, gain^2 / n_in). Outputs onto the
        // residual stream are scaled down with depth (GPT-2's initialisation), so the residual
        // norm, and with it the routing anchor's strength, stays steady across layers.
        t.matrix          = true;
        t.writes_residual = ne[1] == n_embd;
        t.reads_residual  = ne[0] == n_embd;
        float gain        = 1.0f;
        if (t.writes_residual) {
            gain = 0.5f * std::sqrt(8.0f / std::max(8.0f, float(n_layer)));
        }
        t.init  = Init::normal;
        t.scale = gain / std::sqrt(float(ne[0]));
    } else {
        // Biases and the few per-channel parameters of special blocks: small values.
        t.init            = Init::normal;
        t.scale           = 0.02f;
        t.writes_residual = bias && ne[0] == n_embd;
    }
    return t;
}

ArchSpec discover_arch(gguf_context * meta, int64_t n_embd, int n_layer) {
    llama_backend_init();
    Discovery          d;
    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers       = 0;
    mp.progress_callback  = quiet_progress;
    llama_model * model   = llama_model_init_from_user(meta, record_tensor, &d, mp);
    if (model == nullptr) {
        // Its log (reap -v) says why: hyperparameters it refuses, or no memory for the F32 tensors
        // it allocates while building (4 bytes per parameter; a deep --preset needs --layers).
        fail(
            "synth: llama.cpp could not build a '%s' model (hyperparameters refused, or no memory for an F32 "
            "copy of it while laying it out: use fewer --layers); reap -v shows llama.cpp's reason",
            gguf_get_val_str(meta, gguf_find_key(meta, "general.architecture")));
    }
    llama_model_free(model);

    ArchSpec spec;
    for (auto & [name, ne] : d.tensors) {
        spec.tensors.push_back(spec_for_tensor(name, ne, n_embd, n_layer));
        if (ends_with(name, ".ffn_gate_inp.weight")) {
            spec.moe_layers.push_back(tensor_layer(name));
        }
    }
    return spec;
}

}  // namespace reap::synth
