#include "synth/synth_hf_map.h"

#include "core/error.h"
#include "core/tensor_codec.h"
#include "core/text.h"

#include "ggml.h"

#include <cmath>
#include <cstring>

namespace reap::synth {

const TensorInfo & GgufValues::info(const std::string & name) const {
    const TensorInfo * t = f_.find_tensor(name);
    if (t == nullptr) fail("%s: no tensor '%s'", f_.path().c_str(), name.c_str());
    return *t;
}

const std::vector<float> & GgufValues::get(const std::string & name) {
    const auto it = cache_.find(name);
    if (it != cache_.end()) return it->second;
    if (cache_.size() >= 3) cache_.clear();
    const TensorInfo &   t = info(name);
    std::vector<uint8_t> raw(t.nbytes);
    f_.read(t, 0, raw.data(), raw.size());
    const int64_t      n = t.ne[0] * t.ne[1] * t.ne[2] * t.ne[3];
    std::vector<float> v(size_t(n), 0.0f);
    if (!can_dequantize(t.type)) fail("%s: cannot dequantize '%s'", f_.path().c_str(), name.c_str());
    dequantize(t.type, raw.data(), v.data(), n);
    return cache_[name] = std::move(v);
}

namespace {

// The names one architecture gives its parts.
struct Names {
    std::string layers;   // "model.layers." / "backbone.layers."
    std::string block;    // the MoE block: "mlp", "block_sparse_moe", "mixer"
    std::string router;   // "gate" / "router"
    std::string proj[3];  // gate, up, down projections of one expert
    bool        nemotron      = false;
    uint64_t    rope_head_dim = 0;  // > 0: q/k rows in HF's rotary layout (the converter permutes)
};

Names names_for(const std::string & arch) {
    if (arch == "llama") return {"model.layers.", "block_sparse_moe", "gate", {"w1", "w3", "w2"}};
    if (arch == "gpt-oss") return {"model.layers.", "mlp", "router", {"gate_proj", "up_proj", "down_proj"}};
    if (arch == "nemotron_h_moe")
        return {"backbone.layers.", "mixer", "gate", {"gate_proj", "up_proj", "down_proj"}, true};
    return {"model.layers.", "mlp", "gate", {"gate_proj", "up_proj", "down_proj"}};
}

// Non-expert tensors of a layer: GGUF suffix -> HF suffix (after "<layers><il>.").
std::string layer_name(const Names & n, const std::string & rest) {
    static const std::map<std::string, std::string> common = {
        {"attn_norm.weight", "input_layernorm.weight"},
        {"attn_q.weight", "self_attn.q_proj.weight"},
        {"attn_k.weight", "self_attn.k_proj.weight"},
        {"attn_v.weight", "self_attn.v_proj.weight"},
        {"attn_output.weight", "self_attn.o_proj.weight"},
        {"attn_output.bias", "self_attn.o_proj.bias"},
        {"attn_q_norm.weight", "self_attn.q_norm.weight"},
        {"attn_k_norm.weight", "self_attn.k_norm.weight"},
        {"attn_sinks.weight", "self_attn.sinks"},
        {"attn_kv_a_norm.weight", "self_attn.kv_a_layernorm.weight"},
        {"attn_kv_a_mqa.weight", "self_attn.kv_a_proj_with_mqa.weight"},
        {"ffn_norm.weight", "post_attention_layernorm.weight"},
        {"post_attention_norm.weight", "post_attention_layernorm.weight"},
        {"ffn_gate.weight", "mlp.gate_proj.weight"},
        {"ffn_up.weight", "mlp.up_proj.weight"},
        {"ffn_down.weight", "mlp.down_proj.weight"},
    };
    static const std::map<std::string, std::string> nemotron = {
        {"attn_norm.weight", "norm.weight"},
        {"attn_q.weight", "mixer.q_proj.weight"},
        {"attn_k.weight", "mixer.k_proj.weight"},
        {"attn_v.weight", "mixer.v_proj.weight"},
        {"attn_output.weight", "mixer.o_proj.weight"},
        {"ssm_in.weight", "mixer.in_proj.weight"},
        {"ssm_conv1d.weight", "mixer.conv1d.weight"},
        {"ssm_conv1d.bias", "mixer.conv1d.bias"},
        {"ssm_dt.bias", "mixer.dt_bias"},
        {"ssm_a", "mixer.A_log"},
        {"ssm_d", "mixer.D"},
        {"ssm_norm.weight", "mixer.norm.weight"},
        {"ssm_out.weight", "mixer.out_proj.weight"},
    };
    const auto & m  = n.nemotron ? nemotron : common;
    const auto   it = m.find(rest);
    if (it != m.end()) return it->second;
    const std::string shexp = n.block + (n.nemotron ? ".shared_experts." : ".shared_experts.");
    if (rest == "ffn_gate_shexp.weight") return shexp + "gate_proj.weight";
    if (rest == "ffn_up_shexp.weight") return shexp + "up_proj.weight";
    if (rest == "ffn_down_shexp.weight") return shexp + "down_proj.weight";
    if (rest == "ffn_gate_inp.weight") return n.block + "." + n.router + ".weight";
    if (rest == "ffn_gate_inp.bias") return n.block + "." + n.router + ".bias";
    if (rest == "exp_probs_b.bias") return n.block + ".gate.e_score_correction_bias";
    return "";
}

std::vector<uint64_t> reversed_shape(const TensorInfo & t) {
    std::vector<uint64_t> s;
    for (int d = t.n_dims - 1; d >= 0; d--)
        s.push_back(uint64_t(t.ne[d]));
    return s;
}

// Values copied as they are (the HF tensor is the GGUF tensor, dimensions reversed).
HfPiece plain(const std::string & name, const TensorInfo & t, std::vector<uint64_t> shape,
              const char * dtype = "BF16") {
    const std::string g = t.name;
    return {name, std::move(shape), dtype, [g](GgufValues & v, std::vector<float> & out) { out = v.get(g); }};
}

// The pieces of the expert tensors of layer `il` ("ffn_{gate,up,down}_exps.{weight,bias}").
void expert_pieces(const GgufFile & f, const Names & n, int il, const std::string & rest, HfExperts experts,
                   bool gpt_oss, std::vector<HfPiece> & out) {
    const std::string  blk  = "blk." + std::to_string(il) + ".";
    const std::string  base = n.layers + std::to_string(il) + "." + n.block + ".experts.";
    const TensorInfo & t    = *f.find_tensor(blk + rest);
    const int          proj = starts_with(rest, "ffn_gate") ? 0 : starts_with(rest, "ffn_up") ? 1 : 2;
    const bool         bias = ends_with(rest, ".bias");
    const uint64_t E = uint64_t(t.ne[t.n_dims - 1]), A = uint64_t(t.ne[0]), B = t.n_dims == 3 ? uint64_t(t.ne[1]) : 1;
    const std::string g = t.name, up = blk + (bias ? "ffn_up_exps.bias" : "ffn_up_exps.weight");
    if (experts == HfExperts::per_expert) {
        for (uint64_t j = 0; j < E; j++) {
            std::vector<uint64_t> shape = bias ? std::vector<uint64_t>{A} : std::vector<uint64_t>{B, A};
            out.push_back({base + std::to_string(j) + "." + n.proj[proj] + (bias ? ".bias" : ".weight"), shape, "BF16",
                           [g, j, A, B](GgufValues & v, std::vector<float> & o) {
                               const auto & x = v.get(g);
                               o.assign(x.begin() + long(j * A * B), x.begin() + long((j + 1) * A * B));
                           }});
        }
        return;
    }
    if (proj == 1) return;  // fused into gate_up_proj
    const std::string sfx = bias ? (gpt_oss ? "_bias" : ".bias") : "";
    if (proj == 2) {
        if (!gpt_oss || bias) {
            out.push_back(plain(base + "down_proj" + sfx, t, reversed_shape(t)));
            return;
        }
        // gpt-oss keeps down_proj as [E, ff, hidden]: the converter transposes it.
        out.push_back({base + "down_proj", {E, A, B}, "BF16", [g, E, A, B](GgufValues & v, std::vector<float> & o) {
                           const auto & x = v.get(g);
                           o.resize(E * A * B);
                           for (uint64_t e = 0; e < E; e++)
                               for (uint64_t h = 0; h < B; h++)
                                   for (uint64_t k = 0; k < A; k++)
                                       o[(e * A + k) * B + h] = x[(e * B + h) * A + k];
                       }});
        return;
    }
    // gate_up_proj: gate then up rows [E, 2ff, hidden]; gpt-oss: interleaved columns [E, hidden, 2ff].
    const uint64_t        ff = bias ? A : B, hid = bias ? 1 : A;
    std::vector<uint64_t> shape = bias      ? std::vector<uint64_t>{E, 2 * ff}
                                  : gpt_oss ? std::vector<uint64_t>{E, hid, 2 * ff}
                                            : std::vector<uint64_t>{E, 2 * ff, hid};
    out.push_back({base + "gate_up_proj" + sfx, shape, "BF16",
                   [g, up, E, ff, hid, gpt_oss](GgufValues & v, std::vector<float> & o) {
                       const std::vector<float> gate = v.get(g);
                       const auto &             upv  = v.get(up);
                       o.resize(E * 2 * ff * hid);
                       for (uint64_t e = 0; e < E; e++)
                           for (uint64_t k = 0; k < ff; k++)
                               for (uint64_t h = 0; h < hid; h++) {
                                   const size_t src = size_t((e * ff + k) * hid + h);
                                   if (gpt_oss) {
                                       o[(e * hid + h) * 2 * ff + 2 * k]     = gate[src];
                                       o[(e * hid + h) * 2 * ff + 2 * k + 1] = upv[src];
                                   } else {
                                       o[(e * 2 * ff + k) * hid + h]      = gate[src];
                                       o[(e * 2 * ff + ff + k) * hid + h] = upv[src];
                                   }
                               }
                   }});
}

// DeepSeek's kv_b_proj [H * (nope + v_head), kv_lora], which the converter splits into
// attn_k_b {nope, kv_lora, H} (transposed per head) and attn_v_b {kv_lora, v_head, H}.
HfPiece kv_b_piece(const GgufFile & f, const Names & n, int il) {
    const std::string  blk  = "blk." + std::to_string(il) + ".";
    const TensorInfo & kb   = *f.find_tensor(blk + "attn_k_b.weight");
    const TensorInfo & vb   = *f.find_tensor(blk + "attn_v_b.weight");
    const uint64_t     nope = uint64_t(kb.ne[0]), lora = uint64_t(kb.ne[1]), H = uint64_t(kb.ne[2]),
                   vh    = uint64_t(vb.ne[1]);
    const std::string kn = kb.name, vn = vb.name;
    return {n.layers + std::to_string(il) + ".self_attn.kv_b_proj.weight",
            {H * (nope + vh), lora},
            "BF16",
            [=](GgufValues & v, std::vector<float> & o) {
                const std::vector<float> k = v.get(kn);
                const auto &             x = v.get(vn);
                o.resize(H * (nope + vh) * lora);
                for (uint64_t h = 0; h < H; h++) {
                    for (uint64_t r = 0; r < nope; r++)
                        for (uint64_t c = 0; c < lora; c++)
                            o[(h * (nope + vh) + r) * lora + c] = k[(h * lora + c) * nope + r];
                    for (uint64_t r = 0; r < vh; r++)
                        for (uint64_t c = 0; c < lora; c++)
                            o[(h * (nope + vh) + nope + r) * lora + c] = x[(h * vh + r) * lora + c];
                }
            }};
}

// HF's rotary layout of q/k rows, which llama.cpp's Llama converter (Mixtral, and NemotronH
// through Granite) undoes with permute(): each head's rows (pairs interleaved in GGUF) are
// stored as two halves. `head_dim` rows per head.
HfPiece rope_rows_piece(const std::string & name, const TensorInfo & t, uint64_t head_dim) {
    const std::string g    = t.name;
    const uint64_t    cols = uint64_t(t.ne[0]), rows = uint64_t(t.ne[1]), half = head_dim / 2;
    return {name, {rows, cols}, "BF16", [=](GgufValues & v, std::vector<float> & o) {
                const auto & x = v.get(g);
                o.resize(rows * cols);
                for (uint64_t h = 0; h < rows / head_dim; h++)
                    for (uint64_t j = 0; j < half; j++)
                        for (uint64_t s = 0; s < 2; s++)
                            std::memcpy(&o[(h * head_dim + s * half + j) * cols], &x[(h * head_dim + 2 * j + s) * cols],
                                        cols * sizeof(float));
            }};
}

// Tensors whose HF shape or values differ from the GGUF's beyond the reversed dimensions.
HfPiece layer_piece(const Names & n, const TensorInfo & t, const std::string & name, const std::string & rest) {
    if (n.rope_head_dim > 0 && (rest == "attn_q.weight" || rest == "attn_k.weight")) {
        return rope_rows_piece(name, t, n.rope_head_dim);
    }
    if (rest == "ssm_conv1d.weight") return plain(name, t, {uint64_t(t.ne[1]), 1, uint64_t(t.ne[0])});
    if (rest == "ssm_d") return plain(name, t, {uint64_t(t.ne[1])});
    if (rest == "ssm_norm.weight") return plain(name, t, {uint64_t(t.ne[0] * t.ne[1])});
    if (rest == "ssm_a") {  // the converter stores A = -exp(A_log)
        const std::string g = t.name;
        return {name, {uint64_t(t.ne[1])}, "BF16", [g](GgufValues & v, std::vector<float> & o) {
                    o = v.get(g);
                    for (float & x : o)
                        x = std::log(-x);
                }};
    }
    if (rest == "exp_probs_b.bias") return plain(name, t, reversed_shape(t), "F32");
    (void) n;
    return plain(name, t, reversed_shape(t));
}

}  // namespace

std::vector<HfPiece> hf_pieces(const GgufFile & f, HfExperts experts) {
    const std::string arch = f.arch();
    Names             n    = names_for(arch);
    if (arch == "llama" || arch == "nemotron_h_moe") {
        // head_dim = rows of attn_q / heads
        const TensorInfo * q = nullptr;
        for (const auto & t : f.tensors()) {
            if (q == nullptr && ends_with(t.name, ".attn_q.weight")) q = &t;
        }
        const uint64_t heads = f.get_uint(arch + ".attention.head_count").value_or(0);
        if (q != nullptr && heads > 0) n.rope_head_dim = uint64_t(q->ne[1]) / heads;
    }
    const bool           oss = arch == "gpt-oss";
    std::vector<HfPiece> out;
    for (const auto & t : f.tensors()) {
        std::string rest;
        const int   il = tensor_layer(t.name, &rest);
        if (il < 0) {
            const std::string name = t.name == "token_embd.weight"
                                         ? (n.nemotron ? "backbone.embeddings.weight" : "model.embed_tokens.weight")
                                     : t.name == "output_norm.weight"
                                         ? (n.nemotron ? "backbone.norm_f.weight" : "model.norm.weight")
                                     : t.name == "output.weight" ? "lm_head.weight"
                                                                 : "";
            if (name.empty()) fail("%s: no Hugging Face name for tensor '%s'", f.path().c_str(), t.name.c_str());
            out.push_back(plain(name, t, reversed_shape(t)));
        } else if (rest.find("_exps.") != std::string::npos) {
            expert_pieces(f, n, il, rest, experts, oss, out);
        } else if (rest == "attn_k_b.weight") {
            out.push_back(kv_b_piece(f, n, il));
        } else if (rest != "attn_v_b.weight") {
            const std::string sub = layer_name(n, rest);
            if (sub.empty()) fail("%s: no Hugging Face name for tensor '%s'", f.path().c_str(), t.name.c_str());
            out.push_back(layer_piece(n, t, n.layers + std::to_string(il) + "." + sub, rest));
        }
    }
    return out;
}

}  // namespace reap::synth
